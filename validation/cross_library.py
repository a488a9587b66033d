"""Stars from one atmosphere library fitted with another: coverage, bias and misfit flags, under the
single 0.02 mag floor and under the library floor (``sedppl.model.library_floor``).

    python validation/cross_library.py [--n 200] [--method npe-is] [--out validation/results/cross_library]

Each row simulates ``--n`` stars with ``sedppl simulate``'s defaults from one library (Kurucz, BOSZ, or
Phoenix as the control), keeps those inside the Phoenix grid, and fits them with the default Phoenix model under one floor. Coverage is of
the central 68% and 95% intervals, over the stars the misfit check does not flag (``diagnostics.ood.misfit``:
"photometry not fitted by the model") and over all. "Phoenix, libraries floor" simulates with that floor too, so its model is the
fitted one exactly and its coverage must sit in the binomial band: the floor's own calibration.
Writes ``cross_library_<method>.md``; the targets are issue 25's (Kurucz -> Phoenix, unflagged stars: 68%
coverage >= 0.60 for every parameter, at most 20% flagged).
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sedppl.diagnostics.sbc import binomial_band, interval_coverage, pit_values
from sedppl.io.catalog import read_catalog
from sedppl.io.fit import REPORTED, fit_catalog
from sedppl.model.generative import sed_model
from sedppl.model.priors import Prior
from sedppl.model.simulate import simulate_catalog
from npe_accuracy import shown_path  # a sibling script (validation/ is on sys.path)
from simulated_fits import draws_and_truths

ROWS = (("kurucz", 0.02, 0.02), ("kurucz", 0.02, "libraries"), ("bosz", 0.02, 0.02), ("bosz", 0.02, "libraries"),
        ("phoenix", 0.02, 0.02), ("phoenix", "libraries", "libraries"))  # (simulated with, its floor, fitted floor)
PARAMETERS = ("teff", "logg", "mh", "av", "rv")
MISFIT = "photometry not fitted by the model"  # the misfit check's flag (diagnostics.ood.misfit)


def prior_with_floor(floor) -> Prior:
    tables = Prior.default().to_dict()
    tables["likelihood"]["sys_floor"] = floor
    return Prior.from_dict(tables, source=f"default, sys_floor = {floor!r}")


def simulate_inside_phoenix(library: str, floor, n: int, seed: int):
    """``n`` stars from ``library`` under the default prior (with ``floor``), keeping only those whose true
    parameters the Phoenix model can hold (its grid's validity region): a truth outside the fitted model's
    prior would fail coverage for a reason other than the library."""
    phoenix = sed_model("phoenix").forward
    table = simulate_catalog(jax.random.key(seed), 2 * n, sed_model(library, prior=prior_with_floor(floor)))
    truth = jnp.asarray(np.column_stack([np.asarray(table[f"true_{p}"], float) for p in PARAMETERS]), jnp.float32)
    inside = np.asarray(jax.vmap(phoenix.in_grid)(truth))
    if inside.sum() < n:
        raise RuntimeError(f"only {inside.sum()} of {2 * n} {library} stars lie inside the Phoenix grid")
    return table[np.flatnonzero(inside)[:n]]


def run_row(library: str, sim_floor, fit_floor, n: int, method: str, seed: int, out: Path,
            fallback: str | None = None) -> dict:
    table = simulate_inside_phoenix(library, sim_floor, n, seed)
    catalog = read_catalog(table)
    truths = {p: np.asarray(table[f"true_{p}"], float) for p in REPORTED}
    t0 = time.perf_counter()
    fit = fit_catalog(catalog, method, prior=prior_with_floor(fit_floor), seed=seed, progress=False,
                      fallback=fallback)
    seconds = time.perf_counter() - t0
    fit.write(out / f"{library}_{sim_floor}_{fit_floor}")
    draws, truth, rows = draws_and_truths(fit, truths, catalog)
    flags = np.asarray(fit.summary["flag"][rows]).astype(str)
    misfit = np.char.find(flags, MISFIT) >= 0
    trusted = np.asarray(fit.summary["trusted"][rows], bool)
    row = {"library": library, "sim_floor": sim_floor, "fit_floor": fit_floor, "n": len(rows),
           "misfit": int(misfit.sum()), "trusted": int(trusted.sum()),
           "n_trusted_unflagged": int((trusted & ~misfit).sum()), "seconds": seconds}
    for p in PARAMETERS:
        pit = pit_values(draws[p], truth[p])
        row[f"{p}_cov68"] = interval_coverage(pit[~misfit], 0.68)
        row[f"{p}_cov95"] = interval_coverage(pit[~misfit], 0.95)
        row[f"{p}_cov68_all"] = interval_coverage(pit, 0.68)
        row[f"{p}_cov68_trusted"] = interval_coverage(pit[~misfit & trusted], 0.68)
        row[f"{p}_bias"] = float(np.median(np.median(draws[p], axis=1) - truth[p]))
    return row


def report(rows: list[dict], n: int, method: str, seed: int, out: Path, fallback: str | None) -> str:
    lo, hi = binomial_band(0.68, n)
    lines = [f"# Cross-library fits ({date.today()})", "",
             f"`python validation/cross_library.py --n {n} --method {method} --seed {seed}"
             f"{f' --fallback {fallback}' if fallback else ''}`: stars simulated "
             "from one library with `simulate`'s defaults, fitted with the default Phoenix model under the "
             "single 0.02 mag floor or the library floor (`sys_floor = \"libraries\"`). Coverage over the "
             f"stars the misfit check does not flag; in brackets over all stars. Calibrated: 68% coverage in "
             f"[{lo:.2f}, {hi:.2f}] (3σ, {n} stars).", "",
             "| simulated | fitted floor | misfit flagged | trusted | " + " | ".join(f"{p} 68% (all)" for p in PARAMETERS)
             + " | " + " | ".join(f"{p} 95%" for p in PARAMETERS) + " | s/star |",
             "|---|---|---|---|" + "---|" * (2 * len(PARAMETERS) + 1)]
    for r in rows:
        sim = r["library"] + (f" ({r['sim_floor']} floor)" if r["sim_floor"] != 0.02 else "")
        lines.append(f"| {sim} | {r['fit_floor']} | {r['misfit']}/{r['n']} | {r['trusted']}/{r['n']} | "
                     + " | ".join(f"{r[f'{p}_cov68']:.2f} ({r[f'{p}_cov68_all']:.2f})" for p in PARAMETERS) + " | "
                     + " | ".join(f"{r[f'{p}_cov95']:.2f}" for p in PARAMETERS) + f" | {r['seconds'] / r['n']:.2f} |")
    lines += ["", "68% coverage over the stars that are neither misfit-flagged nor untrusted (for npe-is: "
              "k̂ ≤ 0.7 and ESS ≥ 100; without a fallback its untrusted stars keep their weighted draws):", "",
              "| simulated | fitted floor | stars | " + " | ".join(PARAMETERS) + " |", "|---|---|---|" + "---|" * len(PARAMETERS)]
    for r in rows:
        lines.append(f"| {r['library']} | {r['fit_floor']} | {r['n_trusted_unflagged']} | " + " | ".join(
            f"{r[f'{p}_cov68_trusted']:.2f}" for p in PARAMETERS) + " |")
    lines += ["", "Median bias (posterior median − truth):", "",
              "| simulated | fitted floor | " + " | ".join(PARAMETERS) + " |", "|---|---|" + "---|" * len(PARAMETERS)]
    for r in rows:
        lines.append(f"| {r['library']} | {r['fit_floor']} | " + " | ".join(
            f"{r[f'{p}_bias']:+.3g}" for p in PARAMETERS) + " |")
    lines += ["", f"Fits: `{shown_path(out)}/<library>_<simulated floor>_<fitted floor>/`."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--method", default="npe-is", choices=("npe-is", "nuts", "smc"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fallback", choices=("nuts", "smc"), default=None,
                    help="npe-is: refit stars whose weights fail (default: none; they count as untrusted)")
    ap.add_argument("--rows", nargs="+", type=int, default=list(range(len(ROWS))),
                    help=f"which rows to run (indices into {ROWS})")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cross_library")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in args.rows:
        library, sim_floor, fit_floor = ROWS[i]
        rows.append(run_row(library, sim_floor, fit_floor, args.n, args.method, args.seed, args.out, args.fallback))
        print(rows[-1], flush=True)
    text = report(rows, args.n, args.method, args.seed, args.out, args.fallback)
    (args.out / f"cross_library_{args.method}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
