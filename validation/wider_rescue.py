"""The stars NPE-IS's wider rescue takes over from the SMC fallback: the two engines on the same stars.

    python validation/wider_rescue.py RUN [--catalog STARS] [--out DIR]

RUN is a finished ``sedppl fit --method npe-is`` folder at the defaults (e.g. the whole-process benchmark's
``whole-npe-is-10000``); STARS the catalogue it fitted (default: ``RUN/../stars.parquet``). The stars whose
weights came from the wider rescue (summary column ``proposals`` above the first pass's, ``method`` still
npe-is) are fitted again
with SMC at its defaults -- the fallback they reached before the wider rescue existed -- and the report
(``DIR/wider_rescue.md``) gives, for each engine, how many it trusts, where both trust a star how far apart
their medians lie in SMC half-widths, and on simulated stars how often the truth lies in each 68% interval.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import numpy as np
from astropy.table import Table

from sedppl.inference.importance import ISConfig
from sedppl.io.fit import fit_catalog

PARAMS = ("teff", "logg", "mh", "av", "rv")


def half_width(t: Table, p: str) -> np.ndarray:
    return 0.5 * (np.asarray(t[f"{p}_p84"], float) - np.asarray(t[f"{p}_p16"], float))


def inside_68(t: Table, p: str) -> np.ndarray:
    truth = np.asarray(t[f"true_{p}"], float)
    return (truth >= np.asarray(t[f"{p}_p16"], float)) & (truth <= np.asarray(t[f"{p}_p84"], float))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--catalog", type=Path)
    parser.add_argument("--out", type=Path, default=Path("validation/results/wider_rescue"))
    args = parser.parse_args()
    summary = Table.read(args.run / "summary.parquet")
    stars = Table.read(args.catalog or args.run.parent / "stars.parquet")
    widened = np.asarray(summary["proposals"]) > ISConfig().proposals
    kept = widened & (np.asarray(summary["method"]) == "npe-is")  # the others went on to the fallback
    if not kept.any():
        raise SystemExit(f"no star of {args.run} kept the wider rescue's weights")
    is_fit = summary[kept]
    by_id = {s: i for i, s in enumerate(np.asarray(stars["id"]).astype(str))}
    subset = stars[[by_id[s] for s in np.asarray(is_fit["id"]).astype(str)]]
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    smc = fit_catalog(subset, method="smc", progress=False).summary
    seconds = time.perf_counter() - t0
    is_trusted = np.asarray(is_fit["trusted"], bool)
    smc_trusted = np.asarray(smc["trusted"], bool)
    both = is_trusted & smc_trusted
    simulated = all(f"true_{p}" in subset.colnames for p in PARAMS)
    lines = [
        f"# NPE-IS's wider rescue against SMC on the same stars ({date.today().isoformat()})", "",
        f"Run: `{args.run}`; {widened.sum()} of its {len(summary)} stars reached the wider rescue "
        f"({ISConfig().wider_rescue} x {ISConfig().proposals} proposals per round), {kept.sum()} of them kept its "
        f"weights (the rest went on to the fallback). SMC at its defaults on those {kept.sum()}: "
        f"{seconds:.0f} s ({seconds / kept.sum():.1f} s per star).", "",
        f"- trusted: npe-is (wider rescue) {is_trusted.sum()}, SMC {smc_trusted.sum()}, both {both.sum()}",
        "", "| parameter | both trusted: median / max abs(median difference) / SMC half-width | stars > 1 half-width |"
        + (" 68% truth, npe-is trusted | 68% truth, SMC trusted |" if simulated else ""),
        "|---|---|---|" + ("---|---|" if simulated else ""),
    ]
    for p in PARAMS:
        d = np.abs(np.asarray(is_fit[f"{p}_median"], float) - np.asarray(smc[f"{p}_median"], float)) / half_width(smc, p)
        row = (f"| {p} | {np.median(d[both]):.2f} / {np.max(d[both]):.2f} | {int(np.sum(d[both] > 1))} |"
               if both.any() else f"| {p} | — | — |")
        if simulated:
            row += (f" {inside_68(is_fit, p)[is_trusted].mean():.2f} ({is_trusted.sum()}) |"
                    f" {inside_68(smc, p)[smc_trusted].mean():.2f} ({smc_trusted.sum()}) |")
        lines.append(row)
    far = both & (np.abs(np.asarray(is_fit["teff_median"]) - np.asarray(smc["teff_median"])) > half_width(smc, "teff"))
    if far.any():
        lines += ["", "Stars both trust whose Teff medians lie more than one SMC half-width apart:", ""]
        for i in np.flatnonzero(far):
            truth = f", truth {subset['true_teff'][i]:.0f} K / A_V {subset['true_av'][i]:.2f}" if simulated else ""
            lines.append(f"- {is_fit['id'][i]}: npe-is {is_fit['teff_median'][i]:.0f} K / A_V {is_fit['av_median'][i]:.2f}"
                         f" (chi2 {is_fit['chi2'][i]:.2f}), SMC {smc['teff_median'][i]:.0f} K / A_V "
                         f"{smc['av_median'][i]:.2f} (chi2 {smc['chi2'][i]:.2f}){truth}")
    (args.out / "wider_rescue.md").write_text("\n".join(lines) + "\n")
    smc.write(args.out / "smc.parquet", overwrite=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
