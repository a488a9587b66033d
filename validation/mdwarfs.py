"""Real stars: CARMENES M dwarfs fitted by npe, npe-is and nuts, against spectroscopic labels.

    python validation/mdwarfs.py [--data ../shared/data/mdwarfs] [--nuts-n 40] [--chains 4 --draws 500 --warmup 500]
                                 [--no-parallax] [--dust-map SFD|Planck13|none]

The photometry (Cifuentes et al., CARMENES input catalogue IX: Gaia DR3,
2MASS, AllWISE) is joined to the labels of Mas-Buitrago et al. (2024) and
turned into a sedppl catalog by ``mdwarfs/mapping.toml`` (flagged bands
dropped, single stars only) -- the same path (``sedppl ingest``) any survey
table takes. npe answers under its training prior; npe-is and nuts under
``mdwarfs/nearby_prior.toml`` (the training prior with A_V ~ 0.05 mag, as all
stars lie within ~170 pc). Nothing was tuned to the labels. Writes
``mdwarfs.md``, ``mdwarfs.png``, the catalog and each method's fit into ``--out``.
"""

from __future__ import annotations

import argparse
import time
import zlib
from datetime import date
from pathlib import Path

import jax
import numpy as np
from astropy.table import Table

from sedppl.diagnostics import ood
from sedppl.inference.importance import ISConfig
from sedppl.inference.nuts import NUTSConfig
from sedppl.io.catalog import read_catalog, write_table
from sedppl.io.fit import fit_catalog
from sedppl.io.survey import SurveyMapping, join_tables, read_survey_table, survey_catalog

HERE = Path(__file__).parent
LABELLED = ("teff", "logg", "mh")
SIZE_LABELS = ("radius_rsun",)  # compared where a fit reports it (the catalogue's parallaxes were used)
OUTLIER_SIGMA = 3.0
IRISML_TEFF_RMSE = 314  # K, Kapusta (2025) on real APOGEE stars: another sample, quoted for scale only


def mdwarf_catalog(data: Path) -> Table:
    labels = read_survey_table(data / "autoencoder_final_table.csv")
    photometry = read_survey_table(data / "cif03.full_table.csv")
    joined = join_tables(labels, photometry, on=("karmn", "Karmn"))
    return survey_catalog(joined, SurveyMapping.load(HERE / "mdwarfs" / "mapping.toml"))


def label_stats(summary: Table, catalog: Table, p: str) -> dict:
    """Bias, RMSE, robust scatter and outliers of the posterior medians against the labels."""
    rows = {s: i for i, s in enumerate(catalog["id"])}
    idx = np.array([rows[s] for s in summary["id"]])
    label = np.asarray(catalog[f"label_{p}"], float)[idx]
    label_sd = 0.5 * (np.asarray(catalog[f"label_{p}_minus"], float) + np.asarray(catalog[f"label_{p}_plus"], float))[idx]
    median = np.asarray(summary[f"{p}_median"], float)
    post_sd = 0.5 * (np.asarray(summary[f"{p}_p84"], float) - np.asarray(summary[f"{p}_p16"], float))
    diff = median - label
    ok = np.isfinite(diff)
    diff, sigma = diff[ok], np.hypot(label_sd[ok], post_sd[ok])
    outliers = np.abs(diff) > OUTLIER_SIGMA * sigma
    return {"n": int(ok.sum()), "cover68": float(np.mean(np.abs(diff) <= sigma)), "bias": float(np.median(diff)), "rmse": float(np.sqrt(np.mean(diff**2))),
            "scatter": float(1.4826 * np.median(np.abs(diff - np.median(diff)))),
            "outliers": int(outliers.sum()), "median_sd": float(np.median(post_sd[ok])),
            "label": label[ok], "median": median[ok], "post_sd": post_sd[ok]}


def plot(stats: dict, path: Path, labelled=LABELLED) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(labelled), figsize=(4.2 * len(labelled), 4))
    for ax, p in zip(axes, labelled):
        for method, by_param in stats.items():
            if p not in by_param:
                continue
            s = by_param[p]
            ax.errorbar(s["label"], s["median"], yerr=s["post_sd"], fmt="o", ms=3, lw=0.6, alpha=0.6,
                        label=f"{method} (RMSE {s['rmse']:.3g})")
        lims = np.array([ax.get_xlim(), ax.get_ylim()])
        lo, hi = lims.min(), lims.max()
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=0.8)
        ax.set(xlabel=f"spectroscopic {p}", ylabel=f"sedppl {p} (median ± 1σ)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data" / "mdwarfs")
    parser.add_argument("--methods", nargs="*", default=["npe", "npe-is", "nuts"],
                        help="none: only write the catalog (e.g. a half for sedppl calibrate-offsets)")
    parser.add_argument("--stars", default="all", choices=("all", "half0", "half1"),
                        help="all stars, or one half of a fixed split by id (CRC-32 parity): learn offsets on one "
                        "half, judge them on the other")
    parser.add_argument("--offsets", type=Path, help="band offsets (sedppl calibrate-offsets) applied before fitting")
    parser.add_argument("--prior", type=Path, default=HERE / "mdwarfs" / "nearby_prior.toml")
    parser.add_argument("--nuts-n", type=int, default=40, help="NUTS fits the first N stars (slow on a CPU)")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "mdwarfs")
    parser.add_argument("--no-parallax", action="store_true", help="fit without the parallax and position columns")
    parser.add_argument("--dust-map", default="SFD", help="SFD, Planck13 or none")
    parser.add_argument("--correction", default="default", help="the library's empirical correction: default, none")
    parser.add_argument("--fallback", default="none", choices=("none", "smc", "nuts"),
                        help="npe-is's fallback for unreliable stars (sedppl fit's default: smc)")
    args = parser.parse_args()
    if not args.data.exists():
        parser.error(f"no data folder {args.data}: pass --data (the shared M-dwarf tables)")
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    table = mdwarf_catalog(args.data)
    if args.no_parallax:
        table.remove_columns([c for c in ("parallax", "parallax_error", "ra", "dec") if c in table.colnames])
    if args.stars != "all":
        parity = np.array([zlib.crc32(str(i).encode()) % 2 for i in table["id"]])
        table = table[parity == int(args.stars[-1])]
    write_table(table, args.out / "catalog.parquet")
    if not args.methods:
        print(f"wrote {len(table)} stars to {args.out / 'catalog.parquet'}")
        return
    catalog = read_catalog(table)
    config = NUTSConfig(chains=args.chains, draws=args.draws, warmup=args.warmup)

    fits, minutes = {}, {}
    for method in args.methods:
        stars = catalog if method != "nuts" else read_catalog(table[: args.nuts_n])
        t = time.time()
        fits[method] = fit_catalog(stars, method, out=args.out / method, prior=None if method == "npe" else args.prior,
                                   config=config, importance=ISConfig(), fallback=None if args.fallback == "none" else args.fallback, seed=1,
                                   overwrite=True, dust_map=args.dust_map, offsets=args.offsets,
                                   correction=args.correction)
        minutes[method] = (time.time() - t) / 60
    labelled = lambda f: LABELLED + tuple(p for p in SIZE_LABELS if f"{p}_median" in f.summary.colnames)  # noqa: E731
    stats = {m: {p: label_stats(f.summary, table, p) for p in labelled(f)} for m, f in fits.items()}
    nuts_ids = set(fits["nuts"].summary["id"]) if "nuts" in fits else set()
    same = {m: {p: label_stats(f.summary[np.isin(f.summary["id"], list(nuts_ids))], table, p) for p in labelled(f)}
            for m, f in fits.items() if nuts_ids and m != "nuts"}
    plot(stats, args.out / "mdwarfs.png", LABELLED + SIZE_LABELS if any("radius_rsun" in s for s in stats.values())
         else LABELLED)

    def rows(by_method, label):
        out = []
        for m, by_param in by_method.items():
            cells = [f"{s['bias']:+.3g} / {s['rmse']:.3g} / {s['scatter']:.3g} / {s['outliers']} "
                     f"(σ {s['median_sd']:.2g}; 68%: {s['cover68']:.2f})" for s in by_param.values()]
            out.append(f"| {m} | {label} | {by_param['teff']['n']} | " + " | ".join(cells) + " |")
        return out

    flags = {m: int(np.sum(f.summary["flag"] != "")) for m, f in fits.items()}
    columns = max((tuple(by_param) for by_param in stats.values()), key=len)
    used = {m: int(np.sum(f.summary["parallax_used"])) if "parallax_used" in f.summary.colnames else 0
            for m, f in fits.items()}
    report = [
        f"# Real M dwarfs against spectroscopic labels ({date.today().isoformat()})", "",
        f"`python validation/mdwarfs.py --nuts-n {args.nuts_n} --chains {args.chains} --draws {args.draws} "
        f"--warmup {args.warmup} --dust-map {args.dust_map}{' --no-parallax' if args.no_parallax else ''}"
        f" --methods {' '.join(args.methods)} --stars {args.stars}"
        f"{f' --offsets {args.offsets}' if args.offsets else ''} --prior {args.prior} --correction {args.correction}"
        f" --fallback {args.fallback}` on {jax.default_backend()}; {(time.time() - t0) / 60:.1f} min in all "
        f"({', '.join(f'{m} {v:.1f}' for m, v in minutes.items())} min).", "",
        f"{len(table)} single M dwarfs ({args.stars}; Cifuentes et al. photometry, Mas-Buitrago et al. 2024 labels), "
        f"{int(np.sum(table['dropped'] != ''))} with bands dropped by their quality flags. "
        f"Priors: npe its training prior; npe-is and nuts `{args.prior.name}`. NPE-IS fallback: {args.fallback}; "
        f"library correction: {args.correction} (plain npe: its model card's); "
        f"NUTS on the first {args.nuts_n} stars, {args.chains} × ({args.warmup} + {args.draws}). "
        f"Parallaxes used: " + ", ".join(f"{m} {v}/{len(f.summary)}" for (m, v), f in zip(used.items(), fits.values()))
        + f" (dust map: {args.dust_map}; plain npe cannot use them).", "",
        "Each cell: median bias / RMSE / robust scatter (1.4826 MAD) / outliers "
        f"(|Δ| > {OUTLIER_SIGMA:g}σ, label and posterior σ in quadrature), and the median posterior σ. "
        "Teff in K, logg and [M/H] in dex, radius in R☉ (label: Cifuentes et al.'s, from their L and Teff). "
        "68%: share of stars whose label lies within the posterior's 68% half-width and the label's error in "
        "quadrature.", "",
        "| method | stars | n | " + " | ".join(columns) + " |", "|---|---|---|" + "---|" * len(columns),
        *rows(stats, "all fitted"), *rows(same, "NUTS's stars"), "",
        "Stars flagged (any reason, kept in the statistics): "
        + ", ".join(f"{m} {v}/{len(f.summary)}" for (m, v), f in zip(flags.items(), fits.values())) + ".", "",
        *([f"NPE-IS: {int(np.sum(f.summary['adapt_rounds'] == ISConfig().adapt_rounds))} stars from the first pass "
           f"({ISConfig().adapt_rounds} adaptation rounds), "
           f"{int(np.sum(f.summary['adapt_rounds'] == ISConfig().rescue_rounds))} rescued with "
           f"{ISConfig().rescue_rounds} (column `adapt_rounds`), "
           f"{int(np.sum(f.summary['proposals'] > ISConfig().proposals))} of them with the wider rescue "
           f"(column `proposals`).", ""]
          if (f := fits.get("npe-is")) is not None and "proposals" in f.summary.colnames else []),
        "Flag reasons (stars per reason):", "",
        *[f"- {m}: " + (", ".join(f"{k} {v}" for k, v in ood.reason_counts(f.summary["flag"]).items()) or "none")
          for m, f in fits.items()], "",
        f"For scale only: IrisML reports a Teff RMSE of about {IRISML_TEFF_RMSE} K on real APOGEE stars "
        "(another sample, mostly FGK giants and dwarfs).", "",
        "![M dwarfs](mdwarfs.png)",
    ]
    (args.out / "mdwarfs.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
