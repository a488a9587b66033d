"""What lockstep costs NUTS: stars side by side (``vmap``, the GPU's batching) wait at every step for the
longest trajectory among all their chains.

    python benchmarks/bench_lockstep.py [--stars 32]

Fits simulated stars at the defaults one after another (``lax.map``, no lockstep) and reads the leapfrog
steps behind every draw (``StarDraws.n_steps``). For groups of stars drawn from them, a vmapped call's
step costs the longest of its chains' trajectories: the ratio of that to the mean trajectory is the work
lockstep adds. The same ratio for whole chains (each chain's total over its draws, the longest against
the mean) is what a sampler whose chains advance independently would still pay. Draws only: the
warm-up's steps are not kept. Each call's counts are saved as it ends; a rerun resumes after them.
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import date
from pathlib import Path

import jax
import numpy as np


def lockstep_factor(n_steps: np.ndarray, stars: int, rng, repeats: int = 50) -> float:
    """Mean over steps of the longest trajectory among ``stars`` stars' chains, over the mean trajectory.
    ``n_steps``: (star, chain, draw)."""
    longest = [n_steps[rng.choice(len(n_steps), stars, replace=False)].max(axis=(0, 1)).mean() for _ in range(repeats)]
    return float(np.mean(longest) / n_steps.mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stars", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lockstep.json")
    args = parser.parse_args()
    from sedppl.inference.nuts import NUTSConfig, NUTSSampler
    from sedppl.io.catalog import read_catalog
    from sedppl.model.generative import sed_model
    from sedppl.model.simulate import simulate_catalog

    model = sed_model()
    catalog = read_catalog(simulate_catalog(jax.random.key(7), args.stars, model))
    config = NUTSConfig(batch="map", retry=False, stars_per_call=min(args.stars, 16))
    sampler = NUTSSampler(model, config)
    keys = jax.random.split(jax.random.key(0), args.stars)  # a star's draws do not depend on its call
    # each call's counts are kept as it ends: a run stopped half-way resumes where it was
    kept = args.out.with_suffix(f".{args.stars}.n_steps.npy")
    n_steps = np.load(kept) if kept.exists() else np.zeros((0, config.chains, config.draws))
    for start in range(len(n_steps), args.stars, config.stars_per_call):
        rows = slice(start, start + config.stars_per_call)
        draws = sampler.sample(keys[rows], catalog.err[rows], catalog.mask[rows], catalog.mag[rows])
        n_steps = np.concatenate([n_steps, np.asarray(draws.n_steps, float)])  # (star, chain, draw)
        kept.parent.mkdir(parents=True, exist_ok=True)
        np.save(kept, n_steps)
    rng = np.random.default_rng(0)
    groups = [s for s in (1, 4, 8, 16, 32, 64) if s <= args.stars]
    totals = n_steps.sum(axis=2).ravel()
    result = {"date": date.today().isoformat(), "machine": platform.processor() or platform.machine(),
              "stars": args.stars, "chains": config.chains, "draws": config.draws, "warmup": config.warmup,
              "mean_steps_per_draw": float(n_steps.mean()), "p99_steps_per_draw": float(np.percentile(n_steps, 99)),
              "max_steps_per_draw": float(n_steps.max()),
              "lockstep_factor": {str(s * config.chains): lockstep_factor(n_steps, s, rng) for s in groups},
              "independent_chains_factor": float(totals.max() / totals.mean())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
