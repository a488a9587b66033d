"""Forward-model and log-density throughput (issue: foundation, step 9).

    python benchmarks/bench_forward.py [--batch 100000] [--repeats 5] [--paths fast spectral multilinear]

Prints one Markdown table row per measurement (paste into BENCHMARKS.md) and
writes benchmarks/results/forward.json. Times exclude compilation; each number
is the median of --repeats runs on a batch of prior draws inside the grid. The
forward model is timed twice: ``jit(vmap(magnitudes))`` on the whole batch (as
the filing code of issue 22 was) and ``many_magnitudes`` (in blocks beyond
``forward.block_sizes()``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sedppl.model.forward import PARAMS, block_sizes, many_magnitudes
from sedppl.model.generative import log_joint, sed_model
from sedppl.model.simulate import NoiseModel, prior_predictive


def _median_time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--library", default="phoenix")
    parser.add_argument("--paths", nargs="+", default=["fast", "spectral", "multilinear"],
                        help="forward-model paths to measure, side by side in one run")
    args = parser.parse_args()

    device = jax.devices()[0]
    machine = (f"{platform.processor() or platform.machine()}, {device.platform}:{device.device_kind}, "
               f"{jax.local_device_count()} device(s), jax {jax.__version__}")
    results = []
    for path in args.paths:
        model = sed_model(args.library, path=path)
        nb = len(model.bands)
        err, mask = NoiseModel(p_missing=0.0).draw(jax.random.key(0), 2048, nb)
        pool = prior_predictive(jax.random.key(1), model, err, mask)
        batch = args.batch if path != "spectral" else max(args.batch // 20, 1)  # the reference is ~25x slower
        idx = np.resize(np.arange(2048), batch)
        params = jnp.asarray(np.column_stack([pool[p] for p in PARAMS])[idx])
        log10_theta = jnp.asarray(pool["log10_theta"][idx])
        mags, errs, masks = jnp.asarray(pool["mag"][idx]), jnp.asarray(err)[idx], jnp.asarray(mask)[idx]

        forward = jax.jit(jax.vmap(model.forward.magnitudes))
        t_fwd = _median_time(forward, params, log10_theta, repeats=args.repeats)
        t_blocks = _median_time(many_magnitudes, model.forward, params, log10_theta, repeats=args.repeats)

        def one_logp(p, t, e, m, y, model=model):
            values = dict(zip(PARAMS, p)) | {"log10_theta": t}
            return log_joint(model, values, e, m, y)

        logp_grad = jax.jit(jax.vmap(jax.value_and_grad(one_logp, argnums=(0, 1))))
        t_grad = _median_time(logp_grad, params, log10_theta, errs, masks, mags, repeats=args.repeats)
        results.append({
            "date": date.today().isoformat(), "machine": machine, "library": args.library, "path": path,
            "bands": nb, "batch": batch, "forward_evals_per_s": batch / t_fwd,
            "forward_in_blocks_evals_per_s": batch / t_blocks,
            "block": block_sizes()[0] if batch > block_sizes()[1] else None,
            "logdensity_grad_evals_per_s": batch / t_grad,
        })
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "forward.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    for r in results:
        print(f"| {r['date']} | {r['machine']} | forward ({r['path']}), {r['bands']} bands, batch {r['batch']} | "
              f"{r['forward_evals_per_s']:.3g} /s |")
        how = f"blocks of {r['block']}" if r["block"] else "one vmap"
        print(f"| {r['date']} | {r['machine']} | forward ({r['path']}, many_magnitudes: {how}), "
              f"batch {r['batch']} | {r['forward_in_blocks_evals_per_s']:.3g} /s |")
        print(f"| {r['date']} | {r['machine']} | log-density + gradient ({r['path']}), batch {r['batch']} | "
              f"{r['logdensity_grad_evals_per_s']:.3g} /s |")


if __name__ == "__main__":
    main()
