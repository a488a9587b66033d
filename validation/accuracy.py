"""Accuracy of npe, npe-is and nuts against the truth: posterior-mean errors, binned, side by side.

    python validation/accuracy.py [--n 200 --nuts-n 50] [--chains 4 --draws 1000 --warmup 1000] [--out DIR]

Same simulated catalog and cached fits as ``validation/calibration.py``.
Writes ``accuracy.md`` and ``accuracy.png`` (RMSE per parameter against the
number of bands and against the typical photometric error, one line per
method). Methods are compared on the stars each one fitted; the table also
gives every method on NUTS's stars alone, which is the fair comparison.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import jax
import numpy as np
from simulated_fits import NOISE, METHODS, Study, draws_and_truths, simulated_fits

from sedppl.diagnostics.accuracy import binned_error_stats, error_stats, typical_error
from sedppl.diagnostics.comparison import z_scores
from sedppl.io.fit import REPORTED

BAND_EDGES = [3, 6, 10, 15, 20, 27]
ERROR_EDGES = [0.0, 0.01, 0.02, 0.04, 0.08, 1.0]
UNITS = {"teff": "K", "logg": "dex", "mh": "dex", "av": "mag", "rv": "", "theta_mas": "dex"}


def errors(fit, truths, catalog) -> tuple[dict[str, np.ndarray], np.ndarray]:
    draws, truth, rows = draws_and_truths(fit, truths, catalog)
    return {p: draws[p].mean(axis=1) - truth[p] for p in REPORTED}, rows


def against_converged_nuts(fits, truths, catalog) -> list[str]:
    """On the stars NUTS fitted without a flag: each method's RMSE as a ratio to NUTS's, and the
    z-score of its posterior mean under the NUTS posterior (mean and mean |z|)."""
    reference, truth, nuts_rows = draws_and_truths(fits["nuts"], truths, catalog)
    flag = dict(zip(np.asarray(fits["nuts"].summary["id"]).astype(str), fits["nuts"].summary["flag"]))
    ok = np.array([not flag[i] for i in catalog.ids.astype(str)[nuts_rows]])
    reference, truth = ({p: v[ok] for p, v in d.items()} for d in (reference, truth))
    rmse = lambda d, p: error_stats(d[p].mean(axis=1) - truth[p])["rmse"]  # noqa: E731
    lines = [f"## Against NUTS on the {int(ok.sum())} stars it fitted without a flag", "",
             "z = (mean − NUTS mean) / NUTS sd, per star; θ as log10 θ.", "",
             "| method | measure | " + " | ".join(REPORTED) + " |", "|---|---|" + "---|" * len(REPORTED),
             "| nuts | RMSE | " + " | ".join(f"{rmse(reference, p):.3g}" for p in REPORTED) + " |"]
    for method, fit in fits.items():
        if method == "nuts":
            continue
        draws, _, rows = draws_and_truths(fit, truths, catalog)
        position = {r: k for k, r in enumerate(rows)}
        if not all(r in position for r in nuts_rows[ok]):
            continue
        pick = [position[r] for r in nuts_rows[ok]]
        draws = {p: v[pick] for p, v in draws.items()}
        z = z_scores(reference, draws, REPORTED)
        lines += [f"| {method} | RMSE / NUTS's | " + " | ".join(f"{rmse(draws, p) / rmse(reference, p):.2f}" for p in REPORTED) + " |",
                  f"| {method} | mean z (mean \\|z\\|) | "
                  + " | ".join(f"{z[:, j].mean():+.2f} ({np.abs(z[:, j]).mean():.2f})" for j in range(len(REPORTED))) + " |"]
    return lines


def plot(binned: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(REPORTED), figsize=(3 * len(REPORTED), 6))
    for row, (by, edges) in enumerate((("bands", BAND_EDGES), ("error", ERROR_EDGES))):
        centres = np.arange(len(edges) - 1)
        for col, p in enumerate(REPORTED):
            ax = axes[row, col]
            for method, by_param in binned.items():
                ax.plot(centres, [r["rmse"] for r in by_param[by][p]], "o-", label=method)
            ax.set_xticks(centres, [r["bin"] for r in binned[next(iter(binned))][by][p]], rotation=45, fontsize=7)
            ax.set_title(f"{p} RMSE {UNITS[p]}", fontsize=9)
            ax.set_xlabel("bands" if by == "bands" else "typical error (mag)", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    Study.add_arguments(parser)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "methods")
    args = parser.parse_args()
    study = Study.from_args(args)
    t0 = time.time()
    catalog, truths, fits, minutes = simulated_fits(study, args.out, args.methods)
    n_bands, typical = catalog.mask.sum(axis=1), typical_error(catalog.err, catalog.mask)

    overall, binned = [], {}
    nuts_rows = set(errors(fits["nuts"], truths, catalog)[1]) if "nuts" in fits else None
    for method, fit in fits.items():
        err, rows = errors(fit, truths, catalog)
        subsets = {"all fitted": np.ones(len(rows), bool)}
        if nuts_rows is not None and method != "nuts":
            subsets["NUTS's stars"] = np.isin(rows, list(nuts_rows))
        for label, keep in subsets.items():
            stats = {p: error_stats(err[p][keep]) for p in REPORTED}
            overall.append(f"| {method} | {label} | {int(keep.sum())} | "
                           + " | ".join(f"{stats[p]['rmse']:.3g} ({stats[p]['bias']:+.2g})" for p in REPORTED) + " |")
        binned[method] = {"bands": {p: binned_error_stats(err[p], n_bands[rows], BAND_EDGES) for p in REPORTED},
                          "error": {p: binned_error_stats(err[p], typical[rows], ERROR_EDGES) for p in REPORTED}}
    plot(binned, args.out / "accuracy.png")

    def binned_table(by: str, p: str) -> list[str]:
        head = [f"| {by} bin | " + " | ".join(f"{m} (n)" for m in binned) + " |", "|---|" + "---|" * len(binned)]
        bins = [r["bin"] for r in binned[next(iter(binned))][by][p]]
        return head + [f"| {b} | " + " | ".join(f"{binned[m][by][p][i]['rmse']:.3g} ({binned[m][by][p][i]['n']})"
                                                  for m in binned) + " |" for i, b in enumerate(bins)]

    report = [
        f"# Accuracy of {', '.join(fits)} ({date.today().isoformat()})", "",
        f"`python validation/accuracy.py {study.command()}` on {jax.default_backend()}; "
        f"{(time.time() - t0) / 60:.1f} min (fits reused from the cache count as 0).", "",
        f"Noise: {NOISE[study.noise]}. RMSE of the posterior mean against the truth (bias in brackets); θ as log10 θ. "
        f"Units: {', '.join(f'{p} {u}' for p, u in UNITS.items() if u)}.", "",
        "| method | stars | n | " + " | ".join(REPORTED) + " |", "|---|---|---|" + "---|" * len(REPORTED),
        *overall, "",
        "## Teff RMSE (K) by number of bands", "", *binned_table("bands", "teff"), "",
        "## Teff RMSE (K) by typical photometric error (median over present bands, mag)", "",
        *binned_table("error", "teff"), "",
        "## A_V RMSE (mag) by number of bands", "", *binned_table("bands", "av"), "",
        *(against_converged_nuts(fits, truths, catalog) + [""] if "nuts" in fits else []),
        "![accuracy](accuracy.png)",
    ]
    (args.out / "accuracy.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
