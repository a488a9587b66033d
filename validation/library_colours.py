"""How far Phoenix colours are from the BOSZ table's (and Kurucz's) at shared grid nodes.

    python validation/library_colours.py [--out validation/results]

Writes ``library_colours.md`` with the median and 90th percentile of |colour
difference| per colour, over every (Teff, logg, [M/H]) node present in both
libraries. Colours, not magnitudes, so the libraries' different flux
normalisations (Phoenix integrates to 0.988 sigma T^4) drop out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sedppl.model.forward import forward_model
from sedppl.model.library_floor import shared_nodes

COLOURS = [("gaia_bp", "gaia_rp"), ("gaia_g", "2mass_ks"), ("2mass_j", "2mass_ks"), ("wise_w1", "wise_w2"),
           ("ps1_g", "ps1_r"), ("sdss_u", "sdss_g"), ("skymapper_v", "skymapper_g"), ("galex_nuv", "gaia_g")]


def compare(reference: str, other: str) -> tuple[int, list[tuple[str, float, float, float]]]:
    bands = tuple(dict.fromkeys(b for pair in COLOURS for b in pair))
    nodes = shared_nodes(reference, other)
    params = jnp.asarray(np.column_stack([nodes, np.zeros(len(nodes)), np.full(len(nodes), 3.1)]), jnp.float32)
    mags = {lib: np.asarray(jax.vmap(forward_model(lib, bands).surface_magnitudes)(params)) for lib in (reference, other)}
    rows = []
    for blue, red in COLOURS:
        i, j = bands.index(blue), bands.index(red)
        diff = (mags[other][:, i] - mags[other][:, j]) - (mags[reference][:, i] - mags[reference][:, j])
        diff = diff[np.isfinite(diff) & (np.abs(diff) < 5)]  # FUV/NUV of cool stars are ~ empty bands
        rows.append((f"{blue} - {red}", float(np.median(diff)), float(np.median(np.abs(diff))),
                     float(np.percentile(np.abs(diff), 90))))
    return len(nodes), rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    t0 = time.time()
    lines = ["# Library colours at shared nodes (A_V = 0)", ""]
    for other in ("bosz", "kurucz"):
        n, rows = compare("phoenix", other)
        lines += [f"## {other} minus phoenix, {n} shared nodes", "",
                  "| colour | median difference | median abs | 90th pct abs |", "|---|---|---|---|"]
        lines += [f"| {c} | {m:+.3f} | {a:.3f} | {p:.3f} |" for c, m, a, p in rows]
        lines.append("")
    lines.append(f"Ran in {time.time() - t0:.0f} s: `python validation/library_colours.py`.")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "library_colours.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
