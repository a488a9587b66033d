"""NPE-IS throughput, and its cost against NUTS at equal posterior quality.

    python benchmarks/bench_is.py [--stars 64] [--proposals 1000] [--nuts-stars 24] [--chains 4 --draws 1000 --warmup 1000]

NPE-IS: ``stars`` stars simulated from the model (``--model``, default models/default) under its card's
survey noise, or for a model trained on idealised noise under ``simulate``'s idealised ``NoiseModel``
(narrower errors than its training noise, as the stars it was evaluated on before survey noise existed),
``proposals`` per round: the NPE's draws alone, 3 adaptation rounds, 3 rounds with the rescue of the
unreliable stars (the default until 2026-12-02), and the default, the NPE's draws with only the unreliable
stars rescued, which is compared with NUTS.
NUTS then samples the first ``nuts-stars`` of them. Each timed run follows a
compiling run (NPE-IS: on all stars, so that a rescue is compiled too; NUTS: on one chunk). "Equal quality" is per star the time to 400
effective draws (the NUTS convergence criterion): seconds / ESS x 400, with
the bulk-ESS minimum over parameters for NUTS and the PSIS ESS for NPE-IS, on
stars where NUTS's chains agree (R-hat <= 1.01, so its ESS means something;
divergences allowed) and IS is reliable (k-hat <= 0.7, ESS >= 100). That the
two draw sets then describe the same posterior is checked with the sliced
Wasserstein distance (in NUTS sd units) against its noise floor.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

import jax
import numpy as np

from sedppl.diagnostics.comparison import sliced_wasserstein_per_star
from sedppl.diagnostics.convergence import star_diagnostics
from sedppl.inference.importance import ImportanceSampler, ISConfig
from sedppl.inference.npe.card import load_npe
from sedppl.inference.npe.simulations import catalog_noise
from sedppl.inference.nuts import NUTSConfig, NUTSSampler
from sedppl.io.catalog import read_catalog
from sedppl.io.fit import REPORTED
from sedppl.model.forward import PARAMS
from sedppl.model.simulate import simulate_catalog

EFFECTIVE = 400  # effective draws per star that count as "converged" for NUTS


def timed(run, chunk: int | None):
    """Run on the first ``chunk`` stars (all if None; compiling), then on all; return the second result and its
    seconds."""
    run(jax.random.key(0), slice(0, chunk))
    t0 = time.perf_counter()
    out = run(jax.random.key(1), slice(None))
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=Path(__file__).parents[1] / "models" / "default")
    parser.add_argument("--stars", type=int, default=64)
    parser.add_argument("--proposals", type=int, default=1000)
    parser.add_argument("--stars-per-call", type=int, default=16)
    parser.add_argument("--nuts-stars", type=int, default=24, help="0: NPE-IS alone")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=1000)
    args = parser.parse_args()

    posterior, card = load_npe(args.model)
    proposal = card.model(marginalize_scale=True)
    cat = read_catalog(simulate_catalog(jax.random.key(7), args.stars, card.model(), catalog_noise(card.noise)))
    device = jax.devices()[0]
    result = {"date": date.today().isoformat(), "device": f"{device.platform}:{device.device_kind}",
              "jax": jax.__version__, "stars": args.stars, "proposals_per_round": args.proposals, "npe_is": []}
    runs = {}
    default = ISConfig()
    for name, rounds, rescue, wider in (
            ("npe proposals", 0, 0, 1), ("3 adaptation rounds", 3, 0, 1),
            ("3 rounds + rescue (the default until 2026-12-02)", 3, default.rescue_rounds, 1),
            ("npe proposals + rescue (the default until 2026-12-02, afternoon)", default.adapt_rounds,
             default.rescue_rounds, 1),
            ("default: npe proposals + rescue + wider rescue", default.adapt_rounds, default.rescue_rounds,
             default.wider_rescue)):
        cfg = ISConfig(proposals=args.proposals, adapt_rounds=rounds, rescue_rounds=rescue, wider_rescue=wider,
                       stars_per_call=args.stars_per_call)
        sampler = ImportanceSampler(posterior, proposal, proposal, cfg)
        # the compiling run covers every star, so that the rescue (if any star needs it) is compiled too
        res, seconds = timed(lambda k, s: sampler.sample(k, cat.err[s], cat.mask[s], cat.mag[s], progress=False), None)
        runs[name] = (res, seconds)
        rescued, widened = np.sum(res.rounds > rounds), np.sum(res.proposals > args.proposals)
        proposals = args.proposals * (args.stars * (rounds + 1) + (rescued + wider * widened) * (rescue + 1))
        result["npe_is"].append({
            "run": name, "adapt_rounds": rounds, "rescue_rounds": rescue, "rescued": int(rescued), "widened": int(widened),
            "seconds": round(seconds, 2), "stars_per_second": round(args.stars / seconds, 2),
            "proposals_per_second": round(float(proposals) / seconds),
            "median_ess": round(float(np.median(res.ess)), 1), "reliable_fraction": round(float(res.reliable.mean()), 3)})
        print(result["npe_is"][-1], flush=True)

    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    m = min(args.nuts_stars, args.stars)
    if m == 0:  # NPE-IS alone
        (out / "is.json").write_text(json.dumps(result, indent=2))
        return
    chunk = min(8, m)
    config = NUTSConfig(chains=args.chains, draws=args.draws, warmup=args.warmup, stars_per_call=chunk)
    sampler = NUTSSampler(proposal, config)
    draws, nuts_seconds = timed(
        lambda k, s: sampler.sample(k, cat.err[:m][s], cat.mask[:m][s], cat.mag[:m][s], progress=False), chunk)
    diags = [star_diagnostics({p: draws.params[p][i] for p in REPORTED}, draws.diverging[i], draws.tree_depth[i],
                              draws.step_size[i], config.max_tree_depth) for i in range(m)]
    converged = np.array([not d["flag"] for d in diags])
    mixed = np.array([d["rhat_max"] <= 1.01 for d in diags])  # chains agree, so the ESS means what it says
    nuts_per_star = nuts_seconds / m
    nuts_cost = np.array([nuts_per_star / max(d["ess_bulk_min"], 1.0) * EFFECTIVE for d in diags])

    res, is_seconds = runs["default: npe proposals + rescue + wider rescue"]
    is_per_star = is_seconds / args.stars
    is_cost = is_per_star / np.maximum(res.ess[:m], 1.0) * EFFECTIVE
    both = mixed & res.reliable[:m]
    names = PARAMS
    ref = {p: draws.params[p] for p in names}
    other = {p: res.params[p][:m] for p in names}
    swd, floor = sliced_wasserstein_per_star(ref, other, names)
    result["nuts"] = {"stars": m, "config": {"chains": args.chains, "draws": args.draws, "warmup": args.warmup},
                      "seconds": round(nuts_seconds, 1), "seconds_per_star": round(nuts_per_star, 2),
                      "converged": int(converged.sum()), "rhat_ok": int(mixed.sum())}
    result["equal_quality"] = {
        "stars_compared": int(both.sum()),
        "nuts_seconds_per_400_effective": round(float(np.median(nuts_cost[both])), 3) if both.any() else None,
        "npe_is_seconds_per_400_effective": round(float(np.median(is_cost[both])), 3) if both.any() else None,
        "ratio_nuts_over_npe_is": round(float(np.median(nuts_cost[both] / is_cost[both])), 1) if both.any() else None,
        "median_swd_npe_is_vs_nuts": round(float(np.median(swd[both])), 3) if both.any() else None,
        "median_swd_noise_floor": round(float(np.median(floor[both])), 3) if both.any() else None,
        "ratio_per_star_wall_time": round(nuts_per_star / is_per_star, 1)}
    (out / "is.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
