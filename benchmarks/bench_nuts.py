"""NUTS throughput: converged stars per minute, and the NumPyro reference's time per star.

    python benchmarks/bench_nuts.py [--sizes 1 16] [--chains 4 --draws 1000 --warmup 1000] [--batch auto]

For each catalog size, stars are simulated from the default prior; one call's
worth of stars is sampled first to compile, then the whole catalog is timed,
one call at a time; each call's cumulative time and converged count are
appended to ``<out>.calls.jsonl`` so that a run cut short still leaves a record.
"Converged" means the star passes the ArviZ criteria (R-hat <= 1.01, bulk and
tail ESS >= 400, no divergence). As in the CLI, every CPU core is a JAX device
(``--cpu-devices 1`` turns that off).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from sedppl.io.cli import use_cpu_cores


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--batch", default="auto", choices=("auto", "map", "vmap"))
    parser.add_argument("--reference-stars", type=int, default=2, help="stars timed on the NumPyro path")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "nuts.json"))
    parser.add_argument("--cpu-devices", type=int, default=0, help="JAX CPU devices (0: one per core)")
    args = parser.parse_args()
    if args.cpu_devices:  # before blackjax is imported: importing it starts JAX's backend
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    else:
        use_cpu_cores()
    from sedppl.diagnostics.convergence import star_diagnostics
    from sedppl.inference.nuts import NUTSConfig, NUTSSampler, numpyro_reference
    from sedppl.io.catalog import read_catalog
    from sedppl.io.fit import REPORTED
    from sedppl.model.generative import sed_model
    from sedppl.model.simulate import simulate_catalog

    print(f"{len(jax.local_devices())} JAX device(s): {jax.local_devices()}", flush=True)
    model = sed_model()
    config = NUTSConfig(chains=args.chains, draws=args.draws, warmup=args.warmup, batch=args.batch)
    device = jax.devices()[0]

    def converged(draws, i) -> bool:
        diag = star_diagnostics({p: draws.params[p][i] for p in REPORTED}, draws.diverging[i],
                                draws.tree_depth[i], draws.step_size[i], config.max_tree_depth)
        return not diag["flag"]

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix(".calls.jsonl")  # one line per compiled call: a cut-short run still leaves data
    log.write_text("")
    rows = []
    for n in args.sizes:
        catalog = read_catalog(simulate_catalog(jax.random.key(n), n, model))
        per_call = min(n, 16)
        sampler = NUTSSampler(model, NUTSConfig(**{**config.__dict__, "stars_per_call": per_call}))
        first = slice(0, per_call)  # same call shape as the timed run: compiles it
        sampler.sample(jax.random.key(0), catalog.err[first], catalog.mask[first], catalog.mag[first], progress=False)
        keys = jax.random.split(jax.random.key(1), -(-n // per_call))
        seconds, n_converged = 0.0, 0
        for call, start in enumerate(tqdm(range(0, n, per_call), desc=f"{n} stars", unit="call")):
            stars = np.arange(start, min(start + per_call, n))
            padded = np.resize(stars, per_call)  # the last call keeps the compiled shape
            t0 = time.perf_counter()
            draws = sampler.sample(keys[call], catalog.err[padded], catalog.mask[padded], catalog.mag[padded],
                                   progress=False)
            seconds += time.perf_counter() - t0
            n_converged += sum(converged(draws, i) for i in range(len(stars)))
            done = int(stars[-1]) + 1
            with log.open("a") as f:
                f.write(json.dumps({"catalog": n, "stars_done": done, "seconds": seconds,
                                    "converged": n_converged}) + "\n")
        rows.append({"stars": n, "seconds": seconds, "converged": n_converged,
                     "converged_per_min": n_converged / (seconds / 60), "stars_per_min": n / (seconds / 60)})
        print(rows[-1], flush=True)
    ref = None
    if args.reference_stars:
        catalog = read_catalog(simulate_catalog(jax.random.key(99), args.reference_stars, model))
        t0 = time.perf_counter()
        for i in range(args.reference_stars):
            numpyro_reference(jax.random.key(i), model, catalog.err[i], catalog.mask[i], catalog.mag[i],
                              args.chains, args.draws, args.warmup)
        ref = (time.perf_counter() - t0) / args.reference_stars
    result = {"date": date.today().isoformat(), "device": f"{device.platform}:{device.device_kind}",
              "devices": len(jax.local_devices()),
              "jax": jax.__version__, "config": config.__dict__, "blackjax": rows,
              "numpyro_reference_seconds_per_star": ref}
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
