"""Float64 runs end to end (model and NUTS), and float32 agrees with it: a precision check one can run."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", sys.argv[1] == "64")
    import jax.numpy as jnp
    import numpy as np
    from sedppl.inference.nuts import NUTSConfig, NUTSSampler
    from sedppl.model.generative import log_joint, sed_model
    from sedppl.diagnostics.reference import reference_star

    model = sed_model(marginalize_scale=True)
    err, mask, mag = reference_star(model)
    points = [(5600.0, 4.4, -0.1, 0.5, 3.1), (3500.0, 4.9, 0.2, 0.02, 2.6), (9000.0, 3.9, -1.2, 2.5, 4.1)]
    names = ("teff", "logg", "mh", "av", "rv")
    lj = [float(log_joint(model, dict(zip(names, p)), err[0], mask[0], mag[0])) for p in points]
    result = {"log_joint": lj}
    if sys.argv[2:] == ["nuts"]:  # NUTS end to end in float64 (float32 NUTS is what every other test runs)
        draws = NUTSSampler(model, NUTSConfig(chains=2, draws=20, warmup=20, stars_per_call=1, retry=False)).sample(
            jax.random.key(0), err, mask, mag, progress=False)
        result |= {"dtype": str(draws.params["teff"].dtype), "finite": bool(np.all(np.isfinite(draws.params["teff"])))}
    print(json.dumps(result))
""")


def _run(bits: str, *what: str) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, bits, *what], capture_output=True, text=True, timeout=600,
                         env=os.environ | {"JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_float64_runs_and_float32_agrees_with_it():
    single, double = _run("32"), _run("64")
    # log-joints of tens to thousands of nats: float32 rounding stays below 1e-3 nats here
    np.testing.assert_allclose(single["log_joint"], double["log_joint"], rtol=1e-5, atol=1e-3)
    assert len(set(np.round(double["log_joint"], 3))) == 3  # three different points, not one value thrice


@pytest.mark.slow  # ~50 s (NUTS compiled in float64); passed 2026-11-30, run with -m slow
def test_nuts_runs_in_float64():
    double = _run("64", "nuts")
    assert double["dtype"] == "float64" and double["finite"]
