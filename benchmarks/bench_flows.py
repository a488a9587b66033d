"""Where NPE sampling time goes, and what a coupling flow saves: draws/s of each flow, side by side.

    python benchmarks/bench_flows.py [--model models/default] [--stars 64] [--draws 1000]

Profiles the trained model (encoder summaries; the flow's ``sample_and_log_prob``; its ``log_prob`` of
the same draws), then untrained flows of the model's sizes built both ways (MAF: a draw inverts each
layer one dimension at a time; coupling: one pass per layer). Compiled runs, the first one excluded,
the best of three timed. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from sedppl.inference.npe.card import load_npe
from sedppl.inference.npe.posterior import Architecture, NPEPosterior


def best_of_three(f, *args) -> float:
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t0)
    return min(times)


def flow_rates(posterior, keys, condition, draws: int) -> dict[str, float]:
    """Draws/s of the flow's sample_and_log_prob and densities/s of its log_prob, given summaries."""
    sample = eqx.filter_jit(jax.vmap(lambda k, c: posterior.flow.sample_and_log_prob(k, (draws,), condition=c)))
    density = eqx.filter_jit(jax.vmap(lambda x, c: jax.vmap(lambda xi: posterior.flow.log_prob(xi, condition=c))(x)))
    x, _ = sample(keys, condition)
    n = len(keys) * draws
    return {"sample_per_s": n / best_of_three(sample, keys, condition),
            "log_prob_per_s": n / best_of_three(density, x, condition)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=Path(__file__).parents[1] / "models" / "default")
    parser.add_argument("--stars", type=int, default=64)
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args()
    posterior, card = load_npe(args.model)
    nb = len(card.bands)
    rng = np.random.default_rng(0)
    err, mask = jnp.full((args.stars, nb), 0.02), jnp.ones((args.stars, nb), bool)
    mag = jnp.asarray(rng.normal(12.0, 1.0, (args.stars, nb)), jnp.float32)
    keys = jax.random.split(jax.random.key(0), args.stars)
    summary = eqx.filter_jit(jax.vmap(posterior.summary))
    condition = summary(err, mask, mag)
    out = {"date": date.today().isoformat(), "device": f"{jax.default_backend()} ({jax.devices()[0].device_kind})",
           "model": str(args.model), "stars": args.stars, "draws": args.draws,
           "encoder_seconds": best_of_three(summary, err, mask, mag),
           "trained": flow_rates(posterior, keys, condition, args.draws)}
    sizes = Architecture.from_card(card.architecture)
    for flow in ("maf", "coupling"):
        untrained = NPEPosterior(jax.random.key(1), nb, card.model().support(), 0.02, replace(sizes, flow=flow))
        out[f"untrained_{flow}"] = flow_rates(untrained, keys, condition, args.draws)
    out["coupling_over_maf_sampling"] = out["untrained_coupling"]["sample_per_s"] / out["untrained_maf"]["sample_per_s"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
