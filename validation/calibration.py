"""Calibration of npe, npe-is and nuts on one simulated catalog: SBC, coverage curves and TARP.

    python validation/calibration.py [--n 200 --nuts-n 50] [--chains 4 --draws 1000 --warmup 1000] [--out DIR]

Stars come from the pretrained NPE's model and training prior; each method
answers under that prior. Writes into ``--out`` (default
``validation/results/methods``): ``calibration.md``, ``sbc_<method>.png``
(ECDF of PIT values with simultaneous 95% bands, ArviZ ``plot_ecdf_pit``) and
``coverage.png`` (expected coverage per parameter and TARP per method).
The fits are cached there and shared with ``validation/accuracy.py``.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import jax
import numpy as np
from simulated_fits import NOISE, METHODS, Study, draws_and_truths, simulated_fits

from sedppl.diagnostics.coverage import (
    LEVELS, coverage_curve, max_coverage_error, plot_coverage, tarp_coverage, tarp_credibility,
)
from sedppl.diagnostics.sbc import binomial_band, interval_coverage, pit_values, plot_sbc, uniformity_pvalue
from sedppl.inference.importance import ISConfig
from sedppl.io.fit import REPORTED

KS_ALPHA = 0.01  # a parameter "fails" SBC when the KS test of its PIT values rejects uniformity at this level


def method_calibration(draws, truth, stars) -> dict:
    """PIT values, interval coverage, KS p-values, coverage curves and TARP of one method on ``stars``."""
    pits = {p: pit_values(draws[p][stars], truth[p][stars]) for p in REPORTED}
    joint = np.stack([draws[p][stars] for p in REPORTED], axis=-1)
    joint_truth = np.stack([truth[p][stars] for p in REPORTED], axis=-1)
    curves = {p: coverage_curve(pits[p]) for p in REPORTED}
    curves["tarp"] = tarp_coverage(tarp_credibility(joint, joint_truth))
    return {"n": int(np.sum(stars)) if stars.dtype == bool else len(stars), "pits": pits, "curves": curves,
            "cov68": {p: interval_coverage(u, 0.68) for p, u in pits.items()},
            "cov95": {p: interval_coverage(u, 0.95) for p, u in pits.items()},
            "ks": {p: uniformity_pvalue(u) for p, u in pits.items()}}


def table_rows(name: str, cal: dict) -> list[str]:
    n = cal["n"]
    lo68, hi68 = binomial_band(0.68, n)
    lo95, hi95 = binomial_band(0.95, n)
    rows = []
    for p in REPORTED:
        c68, c95, ks = cal["cov68"][p], cal["cov95"][p], cal["ks"][p]
        verdict = "pass" if ks >= KS_ALPHA and lo68 <= c68 <= hi68 and lo95 <= c95 <= hi95 else "**fail**"
        rows.append(f"| {name} | {p} | {n} | {c68:.3f} ({c68 - 0.68:+.3f}) | {c95:.3f} ({c95 - 0.95:+.3f}) | "
                    f"{ks:.3g} | {max_coverage_error(cal['curves'][p]):+.3f} | {verdict} |")
    rows.append(f"| {name} | TARP (joint) | {n} | | | | {max_coverage_error(cal['curves']['tarp']):+.3f} | |")
    return rows


def cross_checked(fits: dict, minutes: dict) -> list[str]:
    """Report lines: the stars with a cross-checked exact reference (``diagnostics.crosscheck``), as
    ``sedppl compare`` builds it from the NUTS and SMC fits."""
    from sedppl.diagnostics.crosscheck import AGREE_Z, LABELS, UNTRUSTED
    from sedppl.io.compare import exact_references

    if not {"nuts", "smc"} <= set(fits):
        return []
    ids = [str(i) for i in fits["nuts"].summary["id"]]
    rows = {m: np.asarray([{str(i): k for k, i in enumerate(fits[m].summary["id"])}[i] for i in ids])
            for m in ("nuts", "smc")}
    _, checks = exact_references({m: fits[m] for m in ("nuts", "smc")}, ids, rows)
    label = np.asarray(checks["reference"])
    trusted = ~np.isin(label, UNTRUSTED)
    count = {k: int(np.sum(label == k)) for k in LABELS}
    both = minutes["nuts"] + minutes["smc"]
    return [f"Cross-checked exact reference (NUTS and SMC on every star; `sedppl compare`'s reference): "
            f"**{int(trusted.sum())}/{len(ids)} trusted** ({trusted.sum() / max(both, 1e-9):.1f} per minute of "
            f"NUTS + SMC): both engines pass and agree on {count['nuts+smc']}, NUTS alone {count['nuts']}, SMC "
            f"alone {count['smc']}; disputed {count['disputed']}, no engine passes {count['none']}. Largest "
            f"quantile gap between the engines: median {np.nanmedian(checks['reference_gap']):.3f} sd, "
            f"{np.nanmedian(checks['reference_gap_z']):.2f} standard errors (disputed above {AGREE_Z:g}).", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    Study.add_arguments(parser)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "methods")
    args = parser.parse_args()
    study = Study.from_args(args)
    t0 = time.time()
    catalog, truths, fits, minutes = simulated_fits(study, args.out, args.methods)

    results, lines = {}, []
    for method, fit in fits.items():
        draws, truth, rows = draws_and_truths(fit, truths, catalog)
        everyone = np.ones(len(rows), bool)
        results[method] = method_calibration(draws, truth, everyone)
        lines += table_rows(method, results[method])
        if method == "npe-is":
            summary = fit.summary[rows]
            reliable = np.asarray((summary["khat"] <= 0.7) & (summary["ess"] >= 100))
            if 0 < reliable.sum() < len(reliable):
                lines += table_rows("npe-is, reliable stars", method_calibration(draws, truth, reliable))
        plot_sbc(results[method]["pits"], args.out / f"sbc_{method}.png", draws_per_star=draws["teff"].shape[1])
    plot_coverage({m: r["curves"] for m, r in results.items()}, min(r["n"] for r in results.values()),
                  args.out / "coverage.png", LEVELS)
    seconds = time.time() - t0

    report = [
        f"# Calibration of {', '.join(fits)} ({date.today().isoformat()})", "",
        f"`python validation/calibration.py {study.command()}` on {jax.default_backend()}; "
        f"{seconds / 60:.1f} min in all (fits reused from the cache count as 0).", "",
        f"{study.n} stars simulated from `{Path(study.model).name}`'s model and training prior "
        f"({NOISE[study.noise]}); NUTS fits the first {study.nuts_n} at "
        f"{study.chains} × ({study.warmup} + {study.draws}) with its retry (flagged stars refitted once with twice "
        f"the warm-up); SMC with its defaults (and retry); NPE-IS uses {study.proposals} "
        f"proposals per round, {ISConfig().adapt_rounds} adaptation rounds ({ISConfig().rescue_rounds} for the stars "
        "it rescues) and no fallback. θ is compared as log10.", "",
        "Fit minutes (sampling time, compile included): "
        + ", ".join(f"{m} {v:.1f}" for m, v in minutes.items()) + ".", "",
        "Trusted stars (an exact method whose own diagnostics pass; `summary.trusted`): "
        + ", ".join(f"{m} {int(f.summary['trusted'].sum())}/{len(f.summary)} "
                    f"({f.summary['trusted'].sum() / max(minutes[m], 1e-9):.1f} per minute)"
                    for m, f in fits.items() if m != "npe") + ".", "",
        *cross_checked(fits, minutes),
        f"Verdict: *pass* when the KS test keeps uniform PIT values (p ≥ {KS_ALPHA}) and both interval coverages "
        "lie in their 3σ binomial bands. \"Max error\" is the signed largest gap between the coverage curve and "
        "the diagonal over 41 levels (negative: overconfident).", "",
        "| method | parameter | stars | 68% coverage | 95% coverage | KS p | max error | verdict |",
        "|---|---|---|---|---|---|---|---|", *lines, "",
        "![coverage](coverage.png)", "",
        *[f"![SBC {m}](sbc_{m}.png)" for m in fits],
    ]
    (args.out / "calibration.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
