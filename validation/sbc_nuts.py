"""Simulation-based calibration of NUTS: simulate from the prior, fit, rank the truths.

    python validation/sbc_nuts.py [--n 200] [--chains 4] [--draws 1000] [--warmup 1000] [--out validation/results/sbc_nuts]

Writes ``report.md`` (coverage at 68/95%, a KS uniformity test per parameter,
flagged stars, timing) and ``sbc_ecdf.png`` (ArviZ ``plot_ecdf_pit``), plus the
fit outputs (``summary.parquet``, ``posterior/``) and the simulated catalog.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import jax
import numpy as np

from sedppl.diagnostics.sbc import binomial_band, interval_coverage, pit_values, plot_sbc, uniformity_pvalue
from sedppl.inference.nuts import NUTSConfig
from sedppl.io.catalog import read_catalog, write_table
from sedppl.io.fit import REPORTED, fit_catalog
from sedppl.model.generative import sed_model
from sedppl.model.simulate import simulate_catalog


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-retry", action="store_true", help="do not refit flagged stars")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sbc_nuts")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    table = simulate_catalog(jax.random.key(args.seed), args.n, sed_model())
    write_table(table, args.out / "catalog.parquet")
    catalog = read_catalog(table)
    config = NUTSConfig(chains=args.chains, draws=args.draws, warmup=args.warmup, retry=not args.no_retry)
    result = fit_catalog(catalog, "nuts", out=args.out, config=config, seed=args.seed + 1, overwrite=True)
    seconds = time.time() - t0

    posterior = result.posterior["posterior"]
    pits = {p: pit_values(np.moveaxis(posterior[p].values, -1, 0), np.asarray(table[f"true_{p}"])) for p in REPORTED}
    plot_sbc(pits, args.out / "sbc_ecdf.png", draws_per_star=posterior["teff"].values[0].size)
    n = len(catalog)
    flagged = int(np.sum(result.summary["flag"] != ""))
    lines = [
        f"# SBC of NUTS ({date.today().isoformat()})", "",
        f"`python validation/sbc_nuts.py --n {args.n} --chains {args.chains} --draws {args.draws} --warmup {args.warmup}"
        f"{' --no-retry' if args.no_retry else ''}`"
        f" on {jax.default_backend()} ({jax.device_count()} device), {seconds / 60:.1f} min in all.", "",
        f"{n} stars from the default prior's predictive (all bands possible, p_missing 0.2, errors 0.005-0.1 mag);"
        f" {flagged} flagged by the convergence criteria (kept in the statistics).", "",
        "| parameter | 68% coverage | 95% coverage | KS p-value (uniform PIT) |", "|---|---|---|---|",
    ]
    band68, band95 = binomial_band(0.68, n), binomial_band(0.95, n)
    for p in REPORTED:
        lines.append(f"| {p} | {interval_coverage(pits[p], 0.68):.3f} | {interval_coverage(pits[p], 0.95):.3f} | "
                     f"{uniformity_pvalue(pits[p]):.3f} |")
    lines += ["", f"Calibrated coverage lies in [{band68[0]:.3f}, {band68[1]:.3f}] (68%) and "
              f"[{band95[0]:.3f}, {band95[1]:.3f}] (95%) with 3-sigma binomial noise for {n} stars.", "",
              "Flag reasons (stars; one star can have several): " + flag_counts(result.summary["flag"]), "",
              outside_note(pits, result.summary["flag"]), "",
              f"Throughput: {np.sum(result.summary['flag'] == '') / (np.sum(result.summary['seconds']) / 60):.1f} "
              f"converged stars per minute (sampling time only).", "", "![SBC](sbc_ecdf.png)"]
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def flag_counts(flags) -> str:
    kinds = {"rhat": "R-hat > 1.01", "modes": "of which R-hat > 1.2 (chains in different modes?)",
             "ess": "ESS < 400", "divergent": "divergences", "input": "input rejected"}
    counts = {k: sum(1 for f in flags if (k in f if k != "modes" else "modes?" in f)) for k in kinds}
    return "; ".join(f"{label} {counts[k]}" for k, label in kinds.items())


def outside_note(pits, flags) -> str:
    """How many truths lie outside every draw (PIT 0 or 1), and in which kind of star."""
    flagged = np.asarray([bool(f) for f in flags])
    parts = []
    for p, u in pits.items():
        out = (u <= 0.0) | (u >= 1.0)
        if out.any():
            parts.append(f"{p} {int(out.sum())} ({int((out & flagged).sum())} in flagged stars)")
    return "Truths outside all draws: " + (", ".join(parts) if parts else "none") + "."


if __name__ == "__main__":
    main()
