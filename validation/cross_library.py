"""Stars from one atmosphere library fitted with another: coverage, bias and misfit flags, under the
single 0.02 mag floor and under the library floor (``sedppl.model.library_floor``).

    python validation/cross_library.py [--n 200] [--method npe-is] [--out validation/results/cross_library]
    python validation/cross_library.py --pairs [--n 100] [--method smc|nuts|npe-is] [--floor 0.02|libraries]
                                       [--noise survey|ideal]

Each row simulates ``--n`` stars with ``sedppl simulate``'s defaults from one library (Kurucz, BOSZ, or
Phoenix as the control), keeps those inside the Phoenix grid, and fits them with the default Phoenix model
under one floor. ``--pairs`` runs every ordered pair of Phoenix, Kurucz and BOSZ (simulated with one,
fitted with another, both at ``--floor``: 0.02 mag, or the libraries' floor of the default prior) and the
average of Phoenix and Kurucz (``fit --library phoenix,kurucz``; smc and npe-is) on stars of each; every
library then has one prior, bounded to the range all of them and the Phoenix NPE cover
(``averaging.shared_prior``), and only stars inside every fitted library's validity region are kept.
npe-is fits another library with the Phoenix NPE as its proposal. Coverage is of the central 68% and 95%
intervals, over the stars the misfit check does not flag (``diagnostics.ood.misfit``: "photometry not
fitted by the model") and over all. "Phoenix, libraries floor" simulates with that floor too, so its model
is the fitted one exactly and its coverage must sit in the binomial band: the floor's own calibration.
Each row also counts the wrong answers (some parameter's truth outside its central 99% interval) and how
many of them the misfit check flags.

A finished row is kept beside its fit (``row.json``, with the options, prior and proposal it was run
with): a stopped study, run again, fits only the rows it had not finished, and ``--rows`` runs some rows
while the report still shows every finished one and names those not run. Writes
``cross_library_<method>.md``; the targets are issue 25's (Kurucz -> Phoenix, unflagged stars: 68%
coverage >= 0.60 for every parameter, at most 20% flagged).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sedppl.diagnostics.sbc import binomial_band, interval_coverage, outside_interval, pit_values
from sedppl.io.catalog import read_catalog
from sedppl.inference.importance import ISConfig
from sedppl.inference.npe.card import read_card
from sedppl.io.fit import DEFAULT_NPE_MODEL, REPORTED, FitResult, fit_catalog
from sedppl.io.run import code_fingerprint
from sedppl.inference.averaging import shared_prior
from sedppl.model.generative import log_prior, sed_model
from sedppl.model.priors import Prior
from sedppl.model.simulate import NoiseModel, simulate_catalog
from sedppl.model.surveys import SurveyNoise
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


LIBRARIES = ("phoenix", "kurucz", "bosz")
PAIRS = tuple((simulated, fitted, 0.02, 0.02) for simulated in LIBRARIES for fitted in LIBRARIES) + tuple(
    (simulated, "phoenix,kurucz", 0.02, 0.02) for simulated in ("phoenix", "kurucz"))  # (simulated, fitted, floors)


def simulate_inside(library: str, fitted: tuple[str, ...], n: int, seed: int, floor=0.02, noise: str = "survey"):
    """``n`` stars from ``library`` under the one prior of ``pair_prior``, keeping those whose true parameters
    every fitted library's model holds (its log prior is finite there). ``noise``: simulate's survey noise
    (its default) or the idealised one (many-band stars, on which NUTS is fast)."""
    prior = pair_prior(floor)
    table = simulate_catalog(jax.random.key(seed), 3 * n, sed_model(library, prior=prior),
                             NoiseModel() if noise == "ideal" else SurveyNoise())
    truth = {p: jnp.asarray(np.asarray(table[f"true_{p}"], float), jnp.float32) for p in PARAMETERS}
    inside = np.ones(len(table), bool)
    for name in fitted:
        model = sed_model(name, prior=prior, marginalize_scale=True)
        inside &= np.isfinite(np.asarray(jax.vmap(lambda v: log_prior(model, v))(truth)))
    if inside.sum() < n:
        raise RuntimeError(f"only {inside.sum()} of {3 * n} {library} stars lie inside {', '.join(fitted)}")
    return table[np.flatnonzero(inside)[:n]]


def pair_prior(floor) -> Prior:
    """The default prior (with ``floor``) bounded to the range every library and the Phoenix NPE cover."""
    return shared_prior(prior_with_floor(floor), LIBRARIES)


def row_folder(out: Path, library: str, fitted: str, sim_floor, fit_floor, method: str, pairs: bool,
               noise: str) -> Path:
    """Where a row's fit and ``row.json`` live; each floor and noise setting has its own folder."""
    if not pairs:
        return out / f"{library}_{sim_floor}_{fit_floor}"
    suffix = ("" if fit_floor == 0.02 else f"_{fit_floor}") + ("_ideal" if noise == "ideal" else "")
    return out / f"{library}_{fitted.replace(',', '+')}_{method}{suffix}"


def row_settings(n: int, method: str, seed: int, fallback, noise: str, prior: Prior) -> dict:
    """What a saved row must have been run with to be read back: the options, the fitted prior's content
    and, for npe-is, the proposal's weights (a retrained default makes old rows stale)."""
    content = json.dumps(prior.to_dict(), sort_keys=True, default=str).encode()
    settings = {"n": n, "method": method, "seed": seed, "fallback": fallback, "noise": noise,
                "prior": hashlib.sha256(content).hexdigest()[:16], "code": code_fingerprint()}
    if method == "npe-is":
        settings["npe"] = read_card(DEFAULT_NPE_MODEL).checksums["weights.eqx"][:16]
        settings["importance"] = asdict(ISConfig())  # the fits' (fit_catalog's default): a new default is a new row
    return settings


def saved_row(folder: Path, settings: dict) -> dict | None:
    """The row a run with these settings finished before, or None."""
    saved = folder / "row.json"
    if not saved.exists():
        return None
    row = json.loads(saved.read_text())
    return row if row.pop("settings", None) == settings else None


def run_row(library: str, sim_floor, fit_floor, n: int, method: str, seed: int, out: Path,
            fallback: str | None = None, fitted: str = "phoenix", pairs: bool = False, noise: str = "survey") -> dict:
    """One row: simulate, fit, score. A finished row is kept beside its fit (``row.json``) and read back by a
    later run with the same settings, so a stopped study loses no finished row; a row saved before the
    wrong-answer count existed is scored again from its fit when the fit is there."""
    folder = row_folder(out, library, fitted, sim_floor, fit_floor, method, pairs, noise)
    prior = pair_prior(fit_floor) if pairs else prior_with_floor(fit_floor)
    settings = row_settings(n, method, seed, fallback, noise, prior)

    def simulate():
        if pairs:
            return simulate_inside(library, tuple(fitted.split(",")), n, seed, sim_floor, noise)
        return simulate_inside_phoenix(library, sim_floor, n, seed)

    row = saved_row(folder, settings)
    if row is not None:
        print(f"{folder.name}: finished before, read back", flush=True)
        if "wrong" in row or not (folder / "summary.parquet").exists():
            return row
        again = score(FitResult.read(folder), simulate(), row)
        changed = [k for k, v in row.items() if again[k] != v]
        if changed:  # the simulation no longer reproduces the fitted stars
            raise RuntimeError(f"{folder}: rescoring changes {changed}; refit (delete row.json)")
        row = again
    else:
        (folder / "row.json").unlink(missing_ok=True)  # a stale row must not outlive a refit
        table = simulate()
        t0 = time.perf_counter()
        fit = fit_catalog(read_catalog(table), method, prior=prior, seed=seed, progress=False, fallback=fallback,
                          library=fitted)
        seconds = time.perf_counter() - t0
        fit.write(folder)
        row = score(fit, table, {"library": library, "fitted": fitted, "sim_floor": sim_floor,
                                 "fit_floor": fit_floor, "seconds": seconds})
    (folder / "row.json").write_text(json.dumps({**row, "settings": settings}, indent=1))
    return row


def score(fit: FitResult, table, row: dict) -> dict:
    """``row`` with the fit's misfit and trust counts, coverage and bias per parameter, and the wrong answers:
    stars with some parameter's truth outside its central 99% interval (under 5% of stars for a calibrated
    fit), and how many of those the misfit check flags."""
    catalog = read_catalog(table)
    truths = {p: np.asarray(table[f"true_{p}"], float) for p in REPORTED}
    draws, truth, rows = draws_and_truths(fit, truths, catalog)
    flags = np.asarray(fit.summary["flag"][rows]).astype(str)
    misfit = np.char.find(flags, MISFIT) >= 0
    trusted = np.asarray(fit.summary["trusted"][rows], bool)
    pits = {p: pit_values(draws[p], truth[p]) for p in PARAMETERS}
    wrong = np.any([outside_interval(pit, 0.99) for pit in pits.values()], axis=0)
    row = {**row, "n": len(rows), "misfit": int(misfit.sum()), "trusted": int(trusted.sum()),
           "n_trusted_unflagged": int((trusted & ~misfit).sum()), "wrong": int(wrong.sum()),
           "wrong_flagged": int((wrong & misfit).sum())}
    for p, pit in pits.items():
        row[f"{p}_cov68"] = interval_coverage(pit[~misfit], 0.68)
        row[f"{p}_cov95"] = interval_coverage(pit[~misfit], 0.95)
        row[f"{p}_cov68_all"] = interval_coverage(pit, 0.68)
        row[f"{p}_cov68_trusted"] = interval_coverage(pit[~misfit & trusted], 0.68)
        row[f"{p}_bias"] = float(np.median(np.median(draws[p], axis=1) - truth[p]))
    return row


def report(rows: list[dict], n: int, method: str, seed: int, out: Path, fallback: str | None, pairs: bool,
           floor=0.02, noise: str = "survey", missing: list[str] = ()) -> str:
    """The study's Markdown report; rows of the table that have not been run are named under its title."""
    lo, hi = binomial_band(0.68, n)
    floor_said = "the 0.02 mag floor" if floor == 0.02 else "the libraries' floor"
    averaged = "" if method == "nuts" else " (and Phoenix + Kurucz averaged by evidence)"  # NUTS yields no evidence
    what = (f"every ordered pair of libraries{averaged}, fitted under one prior "
            f"bounded to the range all three libraries cover, simulated and fitted at {floor_said}" if pairs else
            "fitted with the default Phoenix model under the single 0.02 mag floor or the library floor "
            "(`sys_floor = \"libraries\"`)")
    lines = [f"# Cross-library fits ({date.today()})", "",
             f"`python validation/cross_library.py{' --pairs' if pairs else ''} --n {n} --method {method} --seed {seed}"
             f"{f' --floor {floor}' if pairs and floor != 0.02 else ''}{' --noise ideal' if noise == 'ideal' else ''}"
             f"{f' --fallback {fallback}' if fallback else ''}`: stars simulated "
             f"from one library with `simulate`'s {'idealised noise' if noise == 'ideal' else 'defaults'}, {what}. Coverage over the "
             f"stars the misfit check does not flag; in brackets over all stars. Calibrated: 68% coverage in "
             f"[{lo:.2f}, {hi:.2f}] (3σ, {n} stars).", "",
             *([f"**Incomplete: not run at these settings: {', '.join(missing)}.**", ""] if missing else []),
             "| simulated | fitted | fitted floor | misfit flagged | trusted | "
             + " | ".join(f"{p} 68% (all)" for p in PARAMETERS)
             + " | " + " | ".join(f"{p} 95%" for p in PARAMETERS) + " | s/star |",
             "|---|---|---|---|---|" + "---|" * (2 * len(PARAMETERS) + 1)]
    for r in rows:
        sim = r["library"] + (f" ({r['sim_floor']} floor)" if r["sim_floor"] != 0.02 else "")
        lines.append(f"| {sim} | {r['fitted']} | {r['fit_floor']} | {r['misfit']}/{r['n']} | {r['trusted']}/{r['n']} | "
                     + " | ".join(f"{r[f'{p}_cov68']:.2f} ({r[f'{p}_cov68_all']:.2f})" for p in PARAMETERS) + " | "
                     + " | ".join(f"{r[f'{p}_cov95']:.2f}" for p in PARAMETERS) + f" | {r['seconds'] / r['n']:.2f} |")
    lines += ["", "68% coverage over the stars that are neither misfit-flagged nor untrusted (for npe-is: "
              "k̂ ≤ 0.7 and ESS ≥ 100; without a fallback its untrusted stars keep their weighted draws):", "",
              "| simulated | fitted | fitted floor | stars | " + " | ".join(PARAMETERS) + " |",
              "|---|---|---|---|" + "---|" * len(PARAMETERS)]
    for r in rows:
        lines.append(f"| {r['library']} | {r['fitted']} | {r['fit_floor']} | {r['n_trusted_unflagged']} | " + " | ".join(
            f"{r[f'{p}_cov68_trusted']:.2f}" for p in PARAMETERS) + " |")
    lines += ["", "Median bias (posterior median − truth):", "",
              "| simulated | fitted | fitted floor | " + " | ".join(PARAMETERS) + " |",
              "|---|---|---|" + "---|" * len(PARAMETERS)]
    for r in rows:
        lines.append(f"| {r['library']} | {r['fitted']} | {r['fit_floor']} | " + " | ".join(
            f"{r[f'{p}_bias']:+.3g}" for p in PARAMETERS) + " |")
    lines += ["", "Wrong answers caught: stars with some parameter's truth outside its central 99% interval (under 5% "
              "of stars for a calibrated fit), and how many of them the misfit check flags (– : a row scored before "
              "this count existed whose fit was not kept):", "",
              "| simulated | fitted | fitted floor | wrong | of which flagged | flagged, not wrong |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        counts = (f"{r['wrong']}/{r['n']} | {r['wrong_flagged']} | {r['misfit'] - r['wrong_flagged']}" if "wrong" in r
                  else f"– | – | {r['misfit']} flagged")
        lines.append(f"| {r['library']} | {r['fitted']} | {r['fit_floor']} | {counts} |")
    suffix = ("" if floor == 0.02 else f"_{floor}") + ("_ideal" if noise == "ideal" else "")
    folders = f"<simulated>_<fitted>_{method}{suffix}" if pairs else "<library>_<simulated floor>_<fitted floor>"
    lines += ["", f"Fits: `{shown_path(out)}/{folders}/`."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--method", default="npe-is", choices=("npe-is", "nuts", "smc"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fallback", choices=("nuts", "smc"), default=None,
                    help="npe-is: refit stars whose weights fail (default: none; they count as untrusted)")
    ap.add_argument("--pairs", action="store_true",
                    help="every ordered pair of libraries and the Phoenix + Kurucz average (PAIRS) instead of ROWS")
    ap.add_argument("--rows", nargs="+", type=int, default=None,
                    help="which rows to run (indices into ROWS, or PAIRS with --pairs; default all)")
    ap.add_argument("--floor", default="0.02", choices=("0.02", "libraries"),
                    help="--pairs: the floor stars are simulated and fitted at (default 0.02 mag, as first run)")
    ap.add_argument("--noise", default="survey", choices=("survey", "ideal"),
                    help="--pairs: simulate's noise (default survey; ideal gives many-band stars, fast for NUTS)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cross_library")
    args = ap.parse_args(argv)
    floor = 0.02 if args.floor == "0.02" else args.floor
    if (floor != 0.02 or args.noise != "survey") and not args.pairs:
        ap.error("--floor and --noise are for --pairs (ROWS name each row's floors)")
    args.out.mkdir(parents=True, exist_ok=True)
    table = (tuple((sim, fitted, floor, floor) for sim, fitted, _, _ in PAIRS) if args.pairs
             else tuple((library, "phoenix", sim, fit) for library, sim, fit in ROWS))
    if args.rows is not None and not set(args.rows) <= set(range(len(table))):
        ap.error(f"--rows: indices 0-{len(table) - 1} ({len(table)} rows), got {sorted(args.rows)}")
    rows, missing = [], []
    for i, (library, fitted, sim_floor, fit_floor) in enumerate(table):
        if "," in fitted and args.method == "nuts":
            continue  # NUTS yields no evidence to average by
        if args.rows is None or i in args.rows:
            rows.append(run_row(library, sim_floor, fit_floor, args.n, args.method, args.seed, args.out,
                                args.fallback, fitted, args.pairs, args.noise))
            print(rows[-1], flush=True)
            continue
        prior = pair_prior(fit_floor) if args.pairs else prior_with_floor(fit_floor)
        row = saved_row(row_folder(args.out, library, fitted, sim_floor, fit_floor, args.method, args.pairs,
                                   args.noise), row_settings(args.n, args.method, args.seed, args.fallback,
                                                             args.noise, prior))
        rows.append(row) if row is not None else missing.append(f"{library} ({sim_floor}) → {fitted} ({fit_floor})")  # the report says so
    text = report(rows, args.n, args.method, args.seed, args.out, args.fallback, args.pairs, floor, args.noise,
                  missing)
    name = f"cross_library{'_pairs' if args.pairs else ''}_{args.method}{'' if floor == 0.02 else '_' + floor}"
    (args.out / f"{name}{'_ideal' if args.noise == 'ideal' else ''}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
