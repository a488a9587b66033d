"""One section of the GPU benchmark (``benchmarks/gpu.sh`` runs them all, each under its own time limit).

    python benchmarks/bench_gpu.py SECTION [--out DIR] [--budget SECONDS]

Sections: ``env``, ``forward``, ``npe``, ``npe-is``, ``nuts``, ``smc``. Each prints one line per
figure, ``figure: value (goal: ...)``, and writes ``DIR/gpu_SECTION.json``. Compilation is never
timed except in ``npe-is``, which is end to end (simulated catalogue in memory to per-star summaries).
A section that cannot reach its full size in ``--budget`` seconds runs what fits, says so, and
reports the measured rate with the time the full size would take at that rate (``extrapolated``).
NUTS and SMC compile one call ahead (its time printed apart) and time that call. A NUTS call that
has not ended within the budget is timed by the steps it has reported and extrapolated; an SMC call
gives the bound its wait implies; a call that sampled but whose fit had not ended gives its rate with
no trusted share. Either way the section then exits without waiting.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from datetime import date
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from bench_forward import _median_time  # a sibling script (benchmarks/ is on sys.path when run)

MODEL = Path(__file__).parents[1] / "models" / "default"
START = time.perf_counter()
GOALS = {"forward": 1e8, "npe": 1e7, "npe-is": 120.0, "nuts": 1000.0, "smc": 1000.0}


def _stage(what: str) -> None:
    """Where the section is, on stderr: a section stopped at its time limit still says where its time went."""
    print(f"[{time.perf_counter() - START:7.1f} s] {what}", file=sys.stderr, flush=True)


def _device() -> str:
    d = jax.devices()[0]
    return f"{d.platform}:{d.device_kind} x{jax.device_count()}"


def _catalog(n: int, seed: int = 0):
    from sedppl.inference.npe.card import load_npe
    from sedppl.io.catalog import read_catalog
    from sedppl.model.simulate import simulate_catalog

    _stage("loading the NPE model")
    posterior, card = load_npe(MODEL)
    _stage(f"simulating {n} stars")
    cat = read_catalog(simulate_catalog(jax.random.key(seed), n, card.model()))
    _stage("simulated")
    return posterior, card, cat


def env(args) -> dict:
    import importlib.metadata as md

    versions = {p: md.version(p) for p in ("jax", "jaxlib", "equinox", "flowjax", "blackjax", "numpyro", "arviz")}
    return {"device": _device(), "python": platform.python_version(), **versions}


def forward(args) -> dict:
    from sedppl.model.forward import PARAMS
    from sedppl.model.generative import sed_model
    from sedppl.model.simulate import NoiseModel, prior_predictive

    model = sed_model("phoenix")
    err, mask = NoiseModel(p_missing=0.0).draw(jax.random.key(0), 4096, len(model.bands))
    pool = prior_predictive(jax.random.key(1), model, err, mask)
    idx = np.resize(np.arange(4096), args.batch)
    params = jnp.asarray(np.column_stack([pool[p] for p in PARAMS])[idx])
    theta = jnp.asarray(pool["log10_theta"][idx])
    seconds = _median_time(jax.jit(jax.vmap(model.forward.magnitudes)), params, theta, repeats=5)
    return {"batch": args.batch, "bands": len(model.bands), "seconds": seconds,
            "evaluations_per_second": args.batch / seconds, "goal": GOALS["forward"]}


def npe(args) -> dict:
    from sedppl.inference.npe.estimator import NPEEstimator

    posterior, card, cat = _catalog(args.stars)
    est = NPEEstimator(posterior, card.model(marginalize_scale=True), draws=1000, stars_per_call=args.stars_per_call)
    n = args.stars_per_call  # one compiled call's shape, then the whole catalogue
    _stage(f"compiling and running one call of {n} stars")
    est.sample(jax.random.key(1), cat.err[:n], cat.mask[:n], cat.mag[:n], progress=False)
    _stage(f"timing {args.stars} stars")
    t0 = time.perf_counter()
    out = est.sample(jax.random.key(2), cat.err, cat.mask, cat.mag, progress=False)
    seconds = time.perf_counter() - t0
    return {"stars": args.stars, "draws_per_star": 1000, "seconds": seconds,
            "draws_per_second": args.stars * 1000 / seconds, "rejected": int(out.n_rejected.sum()),
            "goal": GOALS["npe"]}


def npe_is(args) -> dict:
    """End to end: simulate the catalogue, NPE + IS (default adaptation and rescue), per-star summaries."""
    from sedppl.inference.importance import ImportanceSampler, ISConfig

    start = time.perf_counter()
    posterior, card, cat = _catalog(args.stars)
    model = card.model(marginalize_scale=True)
    cfg = ISConfig(proposals=1000, draws=args.draws, stars_per_call=args.stars_per_call)
    sampler = ImportanceSampler(posterior, model, model, cfg)
    probe = min(args.stars, 4 * args.stars_per_call)
    _stage(f"compiling and running a probe of {probe} stars")
    t0 = time.perf_counter()
    sampler.sample(jax.random.key(0), cat.err[:probe], cat.mask[:probe], cat.mag[:probe], progress=False)
    probe_seconds = time.perf_counter() - t0  # compiles, then runs `probe` stars
    t0 = time.perf_counter()
    sampler.sample(jax.random.key(0), cat.err[:probe], cat.mask[:probe], cat.mag[:probe], progress=False)
    rate = probe / (time.perf_counter() - t0)
    _stage(f"probe: {rate:.0f} stars/s")
    fits = max(probe, int(rate * max(args.budget - (time.perf_counter() - start) - 30, 0)))
    n = min(args.stars, fits)
    _stage(f"running {n} stars")
    t0 = time.perf_counter()
    res = sampler.sample(jax.random.key(1), cat.err[:n], cat.mask[:n], cat.mag[:n], progress=False)
    medians = {p: np.median(v[:, 0], axis=-1) for p, v in res.params.items()}  # per-star summaries
    run_seconds = time.perf_counter() - t0
    total = time.perf_counter() - start
    out = {"stars_requested": args.stars, "stars_run": n, "proposals_per_round": 1000,
           "adapt_rounds": cfg.adapt_rounds, "rescued": int((res.rounds > cfg.adapt_rounds).sum()),
           "widened": int((res.proposals > cfg.proposals).sum()),
           "reliable_fraction": float(res.reliable.mean()), "compile_and_probe_seconds": probe_seconds,
           "sampling_seconds": run_seconds, "end_to_end_seconds": total, "stars_per_second": n / run_seconds,
           "median_teff": float(np.median(medians["teff"])), "goal_seconds": GOALS["npe-is"]}
    if n < args.stars:
        out["extrapolated_end_to_end_seconds"] = total - run_seconds + args.stars / out["stars_per_second"]
    return out


def _exact(args, method: str) -> dict:
    """One call of ``stars_per_call`` stars, compiled ahead (timed apart) and then timed as ``sedppl fit`` runs
    it (no retry of flagged stars, as bench_nuts). When the budget comes first: a NUTS call still sampling is
    timed by the steps it reported (every 50 of its 2000) and extrapolated; an SMC call, whose loop has no
    fixed length, gives the bound its wait implies; a call that sampled but whose fit had not ended gives its
    measured rate without a trusted share. The section then exits without waiting."""
    from sedppl.inference.batching import STEPS_PER_REPORT, listen_to_steps
    from sedppl.inference.npe.card import read_card
    from sedppl.inference.nuts import NUTSConfig
    from sedppl.inference.smc import SMCConfig
    from sedppl.io.catalog import read_catalog
    from sedppl.io.fit import Fitter
    from sedppl.model.simulate import simulate_catalog

    n = args.stars_per_call
    _stage(f"simulating {n} stars")  # under the default NPE's training prior and noise, its network not loaded
    catalog = read_catalog(simulate_catalog(jax.random.key(3), n, read_card(MODEL).model()))
    config = NUTSConfig(stars_per_call=n, batch="vmap", retry=False)
    settings = {"config": config} if method == "nuts" else {"smc": SMCConfig(stars_per_call=n, retry=False)}
    fitter = Fitter(catalog, method, **settings)
    sampler = fitter.sampler(method)  # the one the fit below uses (samplers are shared within a process)
    _stage(f"compiling one call of {n} stars")
    compile_seconds = sampler.compile(catalog.err, catalog.mask, catalog.mag)
    out = {"stars": n, "stars_per_call": n, "compile_seconds": compile_seconds, "goal": GOALS[method]}
    left = args.budget - (time.perf_counter() - START)
    _stage(f"compiled in {compile_seconds:.1f} s; {left:.0f} s left to fit the {n} stars in that call")
    if left < 10:
        return out | {"finished": False, "not_run": True}
    reports, done = [], {}
    t0 = time.perf_counter()
    sample = sampler.sample

    def timed_sample(*a, **kw):  # when the sampling itself ends, before the fit's checks and tables
        result = sample(*a, **kw)
        done.setdefault("sampled", time.perf_counter() - t0)
        return result

    def fit() -> None:
        try:
            done["summary"] = fitter.fit_rows(np.arange(n), progress=False).summary
        except BaseException as error:  # raised again below: a failure must not read as a timeout
            done["error"] = error

    sampler.sample = timed_sample
    with listen_to_steps(lambda steps: reports.append(time.perf_counter() - t0)):
        worker = threading.Thread(target=fit, daemon=True)
        worker.start()
        worker.join(timeout=left)
    wall = time.perf_counter() - t0
    if "error" in done:
        raise done["error"]
    if "sampled" in done and "summary" not in done:  # sampled, still checking
        return out | {"finished": False, "sampled_seconds": done["sampled"],
                      "stars_per_minute": 60 * n / done["sampled"]}
    if "summary" not in done:
        out |= {"finished": False, "unfinished_after_seconds": wall}
        if method == "nuts" and reports:  # the k-th report of each device's vmapped part: 50 k steps done
            steps = STEPS_PER_REPORT * len(reports) // len(jax.local_devices())
            total = config.warmup + config.draws
            out |= {"steps_done": steps, "steps": total, "seconds_at_last_report": reports[-1],
                    "extrapolated_call_seconds": reports[-1] * total / steps,
                    "extrapolated_stars_per_minute": 60 * n * steps / (reports[-1] * total)}
        return out
    summary = done["summary"]
    call = float(np.sum(summary["seconds"]))  # the sampler's call; the fit's checks and tables add the rest
    trusted = np.asarray(summary["trusted"], bool)
    return out | {"finished": True, "fit_seconds": wall, "call_seconds": call, "stars_per_minute": 60 * n / call,
                  "trusted": int(trusted.sum()), "trusted_per_minute": 60 * trusted.sum() / call}


SECTIONS = {"env": env, "forward": forward, "npe": npe, "npe-is": npe_is,
            "nuts": lambda a: _exact(a, "nuts"), "smc": lambda a: _exact(a, "smc")}
DEFAULTS = {"forward": {"batch": 4_000_000}, "npe": {"stars": 20_000, "stars_per_call": 5_000},
            "npe-is": {"stars": 250_000, "stars_per_call": 2_048, "draws": 100},
            "nuts": {"stars_per_call": 4096}, "smc": {"stars_per_call": 256}}


def _line(section: str, r: dict) -> str:
    if section == "env":
        return "env: " + ", ".join(f"{k} {v}" for k, v in r.items())
    if section == "forward":
        return f"forward model: {r['evaluations_per_second']:.3g} evaluations/s (goal >= 1e8)"
    if section == "npe":
        return f"NPE: {r['draws_per_second']:.3g} posterior draws/s (goal >= 1e7)"
    if section == "npe-is":
        size = f"{r['stars_run']} stars run"
        if "extrapolated_end_to_end_seconds" in r:
            size += f"; {r['stars_requested']} stars extrapolated: {r['extrapolated_end_to_end_seconds']:.0f} s"
        return (f"NPE + IS, 1000 proposals/star: {r['end_to_end_seconds']:.1f} s end to end for {size}, "
                f"{r['stars_per_second']:.0f} stars/s, {r['reliable_fraction']:.1%} reliable (goal < 120 s for 250000)")
    compiled = f"compiled apart in {r['compile_seconds']:.0f} s"
    goal = "goal >= 1000 trusted/min"
    if r.get("not_run"):
        return f"{section.upper()}: not timed: {compiled}, the section's time was spent ({goal})"
    if not r["finished"] and "sampled_seconds" in r:
        return (f"{section.upper()}: {r['stars_per_minute']:.0f} stars/min: one call of {r['stars']} stars sampled in "
                f"{r['sampled_seconds']:.0f} s; its checks had not ended at the time limit, so its trusted share is "
                f"unmeasured ({compiled}; {goal})")
    if not r["finished"] and "extrapolated_stars_per_minute" in r:
        return (f"{section.upper()}: ~{r['extrapolated_stars_per_minute']:.0f} stars/min, extrapolated: one call of "
                f"{r['stars']} stars had done {r['steps_done']} of its {r['steps']} steps after "
                f"{r['seconds_at_last_report']:.0f} s ({compiled}; trusted share unmeasured; {goal})")
    if not r["finished"]:
        return (f"{section.upper()}: < {60 * r['stars'] / r['unfinished_after_seconds']:.0f} stars/min: one call of "
                f"{r['stars']} stars had not ended after {r['unfinished_after_seconds']:.0f} s ({compiled}; {goal})")
    return (f"{section.upper()}: {r['trusted_per_minute']:.0f} trusted stars/min ({r['trusted']}/{r['stars']} "
            f"trusted, {r['stars_per_minute']:.0f} stars/min, one call of {r['stars_per_call']} stars in "
            f"{r['call_seconds']:.0f} s, {compiled}; {goal})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("section", choices=sorted(SECTIONS))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--budget", type=float, default=150.0, help="seconds this section may use")
    for name in ("batch", "stars", "stars_per_call", "draws"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None)
    args = parser.parse_args()
    for name, value in DEFAULTS.get(args.section, {}).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    result = {"section": args.section, "date": date.today().isoformat(), "device": _device(),
              **SECTIONS[args.section](args)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"gpu_{args.section}.json").write_text(json.dumps(result, indent=2, default=float))
    print(_line(args.section, result), flush=True)
    if result.get("finished") is False:
        os._exit(0)  # the unfinished fit runs on in its thread; nothing of it is waited for


if __name__ == "__main__":
    main()
