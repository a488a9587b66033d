"""NPE against NUTS on the same simulated stars: accuracy ratio and agreement of posterior means.

    python validation/npe_vs_nuts.py [--nuts validation/results/sbc_nuts] [--model models/default]

Takes a NUTS fit with its simulated catalog (``validation/sbc_nuts.py`` writes
one), fits the same stars with NPE, and reports per parameter: the RMSE of the
posterior mean of each method against the truth, their ratio (NPE/NUTS), and
z = (NPE mean - NUTS mean) / NUTS sd, the distance of the NPE answer under the
NUTS posterior (mean and mean |z|). Stars flagged by NUTS are reported apart.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import numpy as np

from sedppl.io.catalog import read_catalog, read_table
from sedppl.io.fit import REPORTED, FitResult, fit_catalog


def compare(nuts_dir: Path, model_dir: Path, draws: int) -> list[str]:
    table = read_table(nuts_dir / "catalog.parquet")
    catalog = read_catalog(table)
    nuts = FitResult.read(nuts_dir).posterior["posterior"]
    flags = read_table(nuts_dir / "summary.parquet")["flag"]
    npe = fit_catalog(catalog, "npe", npe_model=model_dir, draws=draws, progress=False)
    npe_post = npe.posterior["posterior"]
    ok = np.asarray([not f for f in flags])
    rows = []
    for p in REPORTED:
        truth = np.asarray(table[f"true_{p}"])
        a = nuts[p].values.reshape(-1, len(truth))  # (chain*draw, star)
        b = npe_post[p].values.reshape(-1, len(truth))
        if p in ("theta_mas",):  # compare the scale in log10: it spans decades
            a, b, truth = np.log10(a), np.log10(b), np.log10(truth)
        rmse = lambda x, sel: float(np.sqrt(np.mean((x.mean(0)[sel] - truth[sel]) ** 2)))  # noqa: E731
        z = (b.mean(0) - a.mean(0)) / a.std(0)
        name = "log10 theta_mas" if p == "theta_mas" else p
        for label, sel in (("all", np.ones(len(truth), bool)), ("NUTS unflagged", ok)):
            rows.append(f"| {name} | {label} ({int(sel.sum())}) | {rmse(a, sel):.4g} | {rmse(b, sel):.4g} | "
                        f"{rmse(b, sel) / rmse(a, sel):.2f} | {np.mean(z[sel]):+.2f} | {np.mean(np.abs(z[sel])):.2f} |")
    return [
        f"# NPE vs NUTS on the same stars ({date.today().isoformat()})", "",
        f"`python validation/npe_vs_nuts.py --nuts {nuts_dir} --model {model_dir} --draws {draws}`", "",
        f"{len(catalog)} stars simulated from the default prior (catalog and NUTS fit from `validation/sbc_nuts.py`); "
        f"NPE with {draws} draws per star; {int((~ok).sum())} stars flagged by NUTS's convergence checks.", "",
        "| parameter | stars | RMSE NUTS | RMSE NPE | ratio NPE/NUTS | mean z of NPE mean under NUTS | mean abs z |",
        "|---|---|---|---|---|---|---|", *rows,
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nuts", type=Path, default=Path(__file__).parent / "results" / "sbc_nuts")
    parser.add_argument("--model", type=Path, default=Path(__file__).parents[1] / "models" / "default")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "reports" / "npe_vs_nuts.md")
    args = parser.parse_args()
    lines = compare(args.nuts, args.model, args.draws)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
