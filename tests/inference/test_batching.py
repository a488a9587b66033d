"""Stars in fixed-size chunks: every row once, padding skipped, one compiled program for any catalogue."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sedppl.inference.batching import chunks, over_stars, sample_in_chunks


def test_chunks_hold_every_row_once_in_fixed_size_blocks_dealt_over_devices():
    seen = []
    for rows, slots, valid, positions in chunks(11, 8, parts=2):
        assert slots.shape == valid.shape == (8,)
        np.testing.assert_array_equal(slots[positions], rows)
        assert valid.sum() == len(rows) and np.all(valid[positions])
        seen.extend(rows)
    assert seen == list(range(11))
    # the 3 rows of the last chunk: two on the first device's half, one on the second's
    *_, (rows, slots, valid, positions) = chunks(11, 8, parts=2)
    assert list(valid[:4].nonzero()[0]) == [0, 1] and list(valid[4:].nonzero()[0]) == [0]
    with pytest.raises(ValueError, match="split evenly"):
        next(chunks(4, 5, parts=2))


@pytest.mark.parametrize("batch", ["map", "vmap"])
def test_padding_rows_are_zeros_and_real_rows_as_alone(batch):
    def one(x):
        return {"y": jnp.sin(x) * 2.0, "n": jnp.ones((), jnp.int32)}

    run = jax.jit(over_stars(one, batch))
    x = jnp.arange(4.0)
    out = run(jnp.array([True, False, True, False]), x)
    np.testing.assert_array_equal(out["y"][jnp.array([0, 2])], 2.0 * jnp.sin(x[jnp.array([0, 2])]))
    if batch == "map":  # skipped, not computed
        np.testing.assert_array_equal(out["n"], [1, 0, 1, 0])


def test_any_catalogue_size_runs_the_same_compiled_program():
    def one(key, err, mask, mag):
        return jnp.sum(jnp.where(mask, mag / err, 0.0)) + jax.random.normal(key)

    run = jax.jit(over_stars(one, "map"))
    rng = np.random.default_rng(0)
    mag, err = rng.normal(10, 1, (7, 3)), np.full((7, 3), 0.1)
    mask = np.ones((7, 3), bool)
    keys = jax.random.split(jax.random.key(0), 7)
    every, _ = sample_in_chunks(run, keys, err, mask, mag, 4, "t", False)
    first_three, _ = sample_in_chunks(run, keys[:3], err[:3], mask[:3], mag[:3], 4, "t", False)
    assert run._cache_size() == 1  # 7 stars (two chunks) and 3 stars: one shape, one compilation
    np.testing.assert_array_equal(every[:3], first_three)  # a star's number does not depend on its chunk


SHARDED_RUN = """
import json, jax, numpy as np
jax.config.update("jax_num_cpu_devices", 2)
from sedppl.inference.batching import compile_ahead, compile_over_stars, exact_theta, sample_in_chunks
from sedppl.io.catalog import read_catalog
from sedppl.model.forward import PARAMS
from sedppl.model.generative import sed_model
from sedppl.model.simulate import NoiseModel, simulate_catalog
bands = ("gaia_g", "gaia_bp", "gaia_rp", "2mass_j", "2mass_h", "2mass_ks", "wise_w1", "wise_w2")
table = simulate_catalog(jax.random.key(3), 3, sed_model(bands=bands), NoiseModel(p_missing=0.0))
model = sed_model(bands=bands, marginalize_scale=True)
cat = read_catalog(table)
truth = np.stack([np.asarray(table["true_" + p], np.float32) for p in PARAMS], axis=-1)

def one(key, err, mask, mag, params):  # 60 exact draws of theta at the star's true parameters
    draws = {p: jax.numpy.broadcast_to(params[i], (60,)) for i, p in enumerate(PARAMS)}
    return exact_theta(key, model, draws, err, mask, mag)["theta_mas"]

split = compile_over_stars(one)
run = lambda compiled: sample_in_chunks(compiled, jax.random.key(0), cat.err, cat.mask, cat.mag, 3, "", False,
                                        truth)[0]
compiles = []
jax.monitoring.register_event_duration_secs_listener(lambda e, s, fun_name="", **_: compiles.append((e, fun_name)))
compile_ahead(split, jax.random.key(0), cat.err, cat.mask, cat.mag, 3, truth)
program = ("/jax/core/compile/backend_compile_duration", "jit(call_of_stars)")
ahead = compiles.count(program)
compiles.clear()
out = run(split)
in_the_call = compiles.count(program)
one_device = run(lambda *a: split(*a, on=[jax.local_devices()[0]] * 2))  # the same parts, all on device 0
from sedppl.inference import batching  # a vmapped loop that reports, on both devices: the bar waits for what comes
from sedppl.inference.batching import listen_to_steps, over_stars, report_steps
def stepping(key, err, mask, mag):
    def step(x, i):
        report_steps(i)
        return 0.5 * x + jax.random.normal(jax.random.fold_in(key, i)), None
    return jax.lax.scan(step, jax.numpy.sum(mag), jax.numpy.arange(150))[0]
expected, heard, moving = [], [], batching._moving
batching._moving = lambda bar, stars, reports: (expected.append(reports), moving(bar, stars, reports))[1]
with listen_to_steps(heard.append):
    sample_in_chunks(compile_over_stars(stepping, "vmap"), jax.random.key(0), cat.err, cat.mask, cat.mag, 1, "", True,
                     batch="vmap", steps=150)
print(json.dumps({"devices": len(jax.local_devices()), "shape": list(out.shape),
                  "reports_expected": expected, "reports_heard": len(heard),
                  "compiled_ahead": ahead, "compiled_in_the_call": in_the_call,
                  "same_on_one_device": bool(np.array_equal(out, one_device)),
                  "log10_theta": np.median(np.log10(out), axis=1).tolist(),
                  "truth": np.asarray(table["true_log10_theta"], float).tolist()}))
"""


def test_stars_split_over_cpu_devices_keep_their_rows():
    """Two CPU devices, 3 stars in a block of 4 (one slot is padding): each star's draws land on its own
    row, and are bitwise those of the same program run on one device. The engines (NUTS, SMC) run their
    stars through these same functions; a star's answer once depended on the device count (shard_map).

    ``compile_ahead`` compiled each device's program before the call, which then compiled none; a vmapped
    loop reports once per call and device, as the progress bar expects.
    The three true angular diameters differ by >= 0.6 dex and 8 bands pin each to ~0.01 dex.
    """
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", SHARDED_RUN], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2 and result["shape"] == [3, 60]
    assert result["compiled_ahead"] == 2 and result["compiled_in_the_call"] == 0  # one program per device, ahead
    assert result["reports_expected"] == [4, 4] and result["reports_heard"] == 8  # 2 calls, each on 2 devices
    assert result["same_on_one_device"]  # a star's draws do not depend on the device that ran it
    truth = np.array(result["truth"])
    for row, median in enumerate(result["log10_theta"]):
        assert np.argmin(np.abs(truth - median)) == row and abs(truth[row] - median) < 0.05, result


def test_potential_is_numpyros_own_without_its_start_search():
    """scale_marginal_potential builds the potential and postprocess functions as ``initialize_model`` does
    (it skips only the eager search for a start): the same energy, gradient and constrained values."""
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import initialize_model

    from sedppl.inference.batching import scale_marginal_potential
    from sedppl.model.generative import sed_model

    model, sampled, potential, postprocess = scale_marginal_potential(sed_model(bands=("gaia_g", "gaia_rp", "2mass_ks")))
    data = (jnp.array([0.02, 0.03, 0.05]), jnp.array([True, True, False]), jnp.array([11.0, 10.2, jnp.nan]), None)
    info = initialize_model(jax.random.key(0), sampled, model_args=data, dynamic_args=True)
    z0, unravel = ravel_pytree(info.param_info.z)
    for z in z0 + jax.random.normal(jax.random.key(1), (3, z0.size)):
        ours, theirs = unravel(z), unravel(z)
        np.testing.assert_allclose(potential(*data)(ours), info.potential_fn(*data)(theirs), rtol=1e-6)
        np.testing.assert_allclose(ravel_pytree(jax.grad(potential(*data))(ours))[0],
                                   ravel_pytree(jax.grad(info.potential_fn(*data))(theirs))[0], rtol=1e-5, atol=1e-6)
        for name, value in postprocess(*data)(ours).items():
            np.testing.assert_allclose(value, info.postprocess_fn(*data)(theirs)[name], rtol=1e-6)


def _stepping(steps: int, reports: bool):
    """One star's loop of ``steps`` steps (``report_steps`` in it or not)."""
    from sedppl.inference.batching import report_steps

    def one(key, err, mask, mag):
        def step(x, i):
            if reports:
                report_steps(i)  # each 50 steps done
            return 0.9 * x + jnp.sum(jnp.where(mask, mag, 0.0)) + jax.random.normal(jax.random.fold_in(key, i)), None

        return jax.lax.scan(step, jnp.sum(err), jnp.arange(steps))[0]

    return one


@pytest.mark.parametrize("batch", ["map", "vmap"])
def test_running_calls_report_their_steps_once_per_batch_and_change_nothing(batch, monkeypatch):
    """A loop of 150 steps reports each 50 done, at the top of steps 50 and 100 (the last 50 are done when
    the call returns): 2 reports per real star under ``lax.map`` (padding is skipped), 2 per call under
    ``vmap`` (the step counter is shared, so one report stands for the batch), as many as the progress bar
    of each call waits for. The values are those of the loop without reports (to the last bits, which XLA
    may fuse differently around them)."""
    from sedppl.inference import batching
    from sedppl.inference.batching import listen_to_steps, reports_in

    expected = []  # what the progress bar of each call waits for

    def moving(bar, stars, reports):
        expected.append(reports)
        return moving_bar(bar, stars, reports)

    moving_bar = batching._moving
    monkeypatch.setattr(batching, "_moving", moving)
    rng = np.random.default_rng(1)
    mag, err, mask = rng.normal(10, 1, (5, 3)), np.full((5, 3), 0.1), np.ones((5, 3), bool)
    heard = []
    with listen_to_steps(heard.append):
        out, _ = sample_in_chunks(jax.jit(over_stars(_stepping(150, True), batch)), jax.random.key(0), err, mask,
                                  mag, 4, "", True, batch=batch, steps=150)
    quiet, _ = sample_in_chunks(jax.jit(over_stars(_stepping(150, False), batch)), jax.random.key(0), err, mask,
                                mag, 4, "", False, batch=batch)
    assert reports_in(150) == 2
    assert heard == [50] * (2 * 5 if batch == "map" else 2 * 2)  # 5 stars; or 2 calls of 4 slots
    assert expected == ([2 * 4, 2 * 1] if batch == "map" else [2, 2])  # the bar waits for what comes
    np.testing.assert_allclose(out, quiet, rtol=1e-6)


def test_progress_bar_moves_within_a_call_by_the_steps_reported():
    import io

    from tqdm import tqdm

    from sedppl.inference.batching import _heard, _moving

    bar = tqdm(total=10, file=io.StringIO())
    bar.update(2)
    seen = []
    with _moving(bar, 8, reports=4):
        for _ in range(6):  # two more than expected: the bar stops at the call's end
            _heard(50)
            seen.append(bar.n)
    assert seen == [4, 6, 8, 10, 10, 10]
    assert bar.n == 2  # back where the call began: the caller then counts its 8 stars


def test_compiled_ahead_a_call_compiles_nothing_more():
    """``compile_ahead`` compiles the very program ``sample_in_chunks`` then runs, on rows of any number:
    no backend compilation happens during the calls."""
    from sedppl.inference.batching import compile_ahead, compile_over_stars

    rng = np.random.default_rng(2)
    mag, err, mask = rng.normal(10, 1, (6, 3)), np.full((6, 3), 0.1), np.ones((6, 3), bool)
    mask[0, 1] = False
    compiled = compile_over_stars(_stepping(7, True), "map")
    compiles = []
    listener = lambda event, seconds, fun_name="", **_: compiles.append((event.split("/")[-1], fun_name))  # noqa: E731
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        assert compile_ahead(compiled, jax.random.key(0), err[:1], mask[:1], mag[:1], 4) > 0
        assert ("backend_compile_duration", "jit(call_of_stars)") in compiles, compiles
        compiles.clear()
        sample_in_chunks(compiled, jax.random.key(0), err, mask, mag, 4, "", False, batch="map")
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert [name for event, name in compiles if "call_of_stars" in name] == [], compiles
    with pytest.raises(ValueError, match="at least one star"):
        compile_ahead(compiled, jax.random.key(0), err[:0], mask[:0], mag[:0], 4)


def test_exact_theta_memory_does_not_grow_with_the_draws():
    """Angular diameters are drawn ``THETA_BATCH`` at a time: the compiled program's temporaries for 4000 draws
    are those for 1000, not four times them (all at once, a NUTS call of 4096 stars asked for 46.5 GB)."""
    from sedppl.inference.batching import exact_theta
    from sedppl.model.forward import PARAMS
    from sedppl.model.generative import sed_model

    model = sed_model(marginalize_scale=True)  # 26 bands: ~10 kB of forward-model work a draw
    nb = len(model.bands)
    data = (jnp.full(nb, 0.05), jnp.ones(nb, bool), jnp.full(nb, 10.0))

    def temporaries(draws: int) -> int:
        x = jnp.tile(jnp.array([5000.0, 4.5, 0.0, 0.5, 3.1]), (draws, 1))
        params = {p: x[:, i] for i, p in enumerate(PARAMS)}
        run = jax.jit(lambda key, params: exact_theta(key, model, params, *data))
        return run.lower(jax.random.key(0), params).compile().memory_analysis().temp_size_in_bytes

    few, many = temporaries(1000), temporaries(4000)
    assert many < 1.5 * few, (few, many)
