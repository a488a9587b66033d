"""Where NUTS diverges, and what removes it: step-size targets and sampler coordinates, on the stars of
the 200-star study whose NUTS fit diverged.

    python validation/divergences.py [--max-stars 60] [--settings target_accept=0.8 target_accept=0.95 ...]

Each setting is a comma-separated list of ``NUTSConfig`` fields, e.g. ``target_accept=0.95,av_map=softplus``,
and optionally the forward model's path, ``forward=multilinear`` (default ``fast``).

Reads the study's catalogue and NUTS summary (``validation/results/methods``, written by
``calibration.py``), refits the diverging stars with each setting (same seed, so the same
per-star keys, 4 × (1000 + 1000), no retry) and writes ``validation/reports/divergences.md``: per
setting the divergences, the stars free of them, the trusted stars, step sizes and seconds per star,
and how far the posteriors move between settings (in posterior sd).
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

from sedppl.io.cli import use_cpu_cores

use_cpu_cores()

import numpy as np  # noqa: E402
from astropy.table import Table  # noqa: E402

from sedppl.inference.npe.card import read_card  # noqa: E402
from sedppl.inference.nuts import NUTSConfig  # noqa: E402
from sedppl.io.catalog import read_catalog  # noqa: E402
from sedppl.io.fit import DEFAULT_NPE_MODEL, REPORTED, fit_catalog  # noqa: E402

HERE = Path(__file__).parent


def _fields(setting: str) -> dict:
    """'target_accept=0.95,av_map=softplus' -> NUTSConfig keyword arguments (numbers as floats)."""
    out = {}
    for item in filter(None, setting.split(",")):
        key, value = item.split("=")
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = value
    return out


def resimulated(catalog, rows, simulated_with: str, forward: str):
    """The catalogue's stars as the ``forward`` path would have simulated them: the same true parameters and
    the same noise draws (observed minus the simulating model's magnitudes), on the other path's magnitudes.
    So each path is fitted to data from its own model, and only the model differs between settings."""
    import jax
    import jax.numpy as jnp

    from sedppl.model.forward import PARAMS, forward_model

    truth = jnp.asarray(np.stack([np.asarray(rows[f"true_{p}"], np.float32) for p in PARAMS], axis=1))
    theta = jnp.asarray(np.asarray(rows["true_log10_theta"], np.float32))
    magnitudes = {path: np.asarray(jax.vmap(forward_model("phoenix", catalog.bands, path).magnitudes)(truth, theta))
                  for path in {simulated_with, forward}}
    table = rows.copy()
    for b, band in enumerate(catalog.bands):
        table[band] = np.asarray(table[band]) - magnitudes[simulated_with][:, b] + magnitudes[forward][:, b]
    return read_catalog(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", type=Path, default=HERE / "results" / "methods")
    parser.add_argument("--max-stars", type=int, default=60)
    parser.add_argument("--resimulate", action="store_true",
                        help="fit each forward path to the stars' photometry as that path simulates it (same truths, "
                        "same noise draws), so that a path is not fitted to another path's model")
    parser.add_argument("--stars", choices=("diverged", "all"), default="diverged",
                        help="the study's stars whose NUTS fit diverged (default), or its first ones")
    parser.add_argument("--settings", nargs="+", default=["target_accept=0.8", "target_accept=0.95"])
    parser.add_argument("--out", type=Path, default=HERE / "reports" / "divergences.md")
    args = parser.parse_args()

    table = Table.read(args.study / "catalog.parquet")
    study = Table.read(args.study / "nuts" / "summary.parquet")
    chosen = np.asarray(study["n_divergent"]) > 0 if args.stars == "diverged" else np.ones(len(study), bool)
    diverged = np.flatnonzero(chosen)[: args.max_stars]
    rows = table[[int(np.flatnonzero(table["id"] == study["id"][i])[0]) for i in diverged]]
    catalog = read_catalog(rows)
    simulated_with = table.meta.get("sedppl_forward", "multilinear")  # catalogues before the field: multilinear
    prior = read_card(DEFAULT_NPE_MODEL).prior()
    fits, minutes = {}, {}
    for setting in args.settings:
        fields = _fields(setting)
        forward = fields.pop("forward", "fast")
        config = NUTSConfig(chains=4, draws=1000, warmup=1000, retry=False, **fields)
        t0 = time.perf_counter()
        fitted = catalog if not args.resimulate else resimulated(catalog, rows, simulated_with, forward)
        fits[setting] = fit_catalog(fitted, "nuts", config=config, seed=1, prior=prior, progress=True,
                                    forward=forward).summary
        minutes[setting] = (time.perf_counter() - t0) / 60

    lines = [f"# NUTS divergences: step-size targets and sampler coordinates ({date.today().isoformat()})", "",
             f"`{' '.join(['python validation/divergences.py', '--max-stars', str(args.max_stars), '--stars', args.stars, *(['--resimulate'] if args.resimulate else []), '--settings', *args.settings])}`",
             f"The {len(catalog)} stars of the 200-star study (`{args.study.relative_to(HERE.parent) if args.study.is_relative_to(HERE.parent) else args.study}`) "
             + ("whose NUTS fit diverged" if args.stars == "diverged" else "listed first") + "; each refitted "
             "with every setting, same seed, 4 chains × (1000 + 1000), no retry.", "",
             "| setting | divergences (all stars) | stars with none | trusted | median step size | "
             "fit minutes (compile included) |", "|---|---|---|---|---|---|"]
    for setting, s in fits.items():
        div = np.asarray(s["n_divergent"])
        lines.append(f"| {setting} | {div.sum()} | {(div == 0).sum()}/{len(s)} | {np.sum(s['trusted'])}/{len(s)} | "
                     f"{np.median(s['step_size']):.3f} | {minutes[setting]:.1f} |")
    base, *others = args.settings
    for setting in others:
        width = (np.asarray(fits[base][[f"{p}_p84" for p in REPORTED]].to_pandas())
                 - np.asarray(fits[base][[f"{p}_p16" for p in REPORTED]].to_pandas())) / 2
        shift = np.abs(np.asarray(fits[setting][[f"{p}_median" for p in REPORTED]].to_pandas())
                       - np.asarray(fits[base][[f"{p}_median" for p in REPORTED]].to_pandas())) / width
        lines += ["", f"Medians at {setting} against {base}, in half 16–84% widths: median "
                  f"{np.median(shift):.3f}, 90th percentile {np.percentile(shift, 90):.3f}, max {shift.max():.2f}."]
        lines += ["", "The largest moves (star, parameter: median ± half-width under each setting; flags):", ""]
        for i, j in zip(*np.unravel_index(np.argsort(shift, axis=None)[::-1][:5], shift.shape)):
            p = REPORTED[j]
            a, b = fits[base][i], fits[setting][i]
            lines.append(f"- {a['id']}, {p}: {a[f'{p}_median']:.4g} ± {width[i, j]:.3g} -> {b[f'{p}_median']:.4g} "
                         f"± {(b[f'{p}_p84'] - b[f'{p}_p16']) / 2:.3g} ({shift[i, j]:.1f} half-widths); flags "
                         f"'{a['flag'] or 'none'}' -> '{b['flag'] or 'none'}'")
    flags = {a: [f for f in s["flag"] if f] for a, s in fits.items()}
    for setting, f in flags.items():
        reasons = {"divergences": sum("diverg" in x for x in f), "ESS": sum("ess" in x.lower() for x in f),
                   "R-hat": sum("rhat" in x.lower() or "r-hat" in x.lower() for x in f)}
        lines.append(f"\nFlags at {setting}: {len(f)} stars; mentioning {reasons}.")
    args.out.write_text("\n".join(lines) + "\n")
    per_star = HERE / "results" / "divergences"  # git-ignored: per star, to look into what the report summarises
    per_star.mkdir(parents=True, exist_ok=True)
    for setting, summary in fits.items():
        summary.write(per_star / f"{args.stars}{'_resimulated' if args.resimulate else ''}_{setting.replace('=', '-').replace(',', '_')}.parquet", overwrite=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
