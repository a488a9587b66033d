"""The forward model's three paths against each other, and which interpolation the grid supports.

    python validation/forward_paths.py [--n 2000]

Writes ``validation/reports/forward_paths.md``:

1. fast (tables) against spectral (the reference), per band, on draws from the default prior of each
   library: the tables' error;
2. spectral against multilinear (sedppl 0.4's model) on the same draws: how much the order
   "integrate, then interpolate" and the cubic scheme change the model;
3. leave-one-out along Teff on the Phoenix grid: every interior Teff node is predicted from its
   neighbours with the node itself removed (neighbours i-2, i-1, i+1, i+2; slopes as in
   ``hermite``), by (a) the cubic Hermite of band magnitudes, (b) linear interpolation of band
   magnitudes, (c) linear interpolation of the spectra, then integration (the multilinear path);
   the error against the node's own magnitudes says which scheme follows the models between nodes.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sedppl.model.atmospheres import load_library
from sedppl.model.forward import PARAMS, _band_magnitudes, forward_model
from sedppl.model.generative import sed_model
from sedppl.model.hermite import derivative_weights
from sedppl.model.simulate import simulate_catalog

HERE = Path(__file__).parent
CONTRAST = 60.0  # mag below the star's brightest band: not compared (the spectra's numerical floor)


def _draws(library: str, n: int) -> jax.Array:
    table = simulate_catalog(jax.random.key(0), n, sed_model(library))
    return jnp.asarray(np.stack([np.asarray(table[f"true_{p}"], np.float32) for p in PARAMS], axis=1))


def _mags(library: str, path: str, params) -> np.ndarray:
    return np.asarray(jax.jit(jax.vmap(forward_model(library, path=path).surface_magnitudes))(params), np.float64)


def path_table(library: str, n: int) -> list[str]:
    params = _draws(library, n)
    fast, spectral, multilinear = (_mags(library, p, params) for p in ("fast", "spectral", "multilinear"))
    keep = spectral - spectral.min(axis=1, keepdims=True) < CONTRAST
    bands = forward_model(library).bands
    rows = [(f"### {library}: {n} draws from the default prior ({(~keep).sum()} band values more than "
             f"{CONTRAST:g} mag below the star's brightest band left out)"), "",
            "| band | fast − spectral RMS / max [mmag] | spectral − multilinear RMS / max [mmag] |", "|---|---|---|"]
    for b, band in enumerate(bands):
        k = keep[:, b]
        d1, d2 = (fast - spectral)[k, b], (spectral - multilinear)[k, b]
        rows.append(f"| {band} | {1e3 * np.sqrt(np.mean(d1**2)):.3f} / {1e3 * np.abs(d1).max():.2f} | "
                    f"{1e3 * np.sqrt(np.mean(d2**2)):.1f} / {1e3 * np.abs(d2).max():.0f} |")
    return rows + [""]


def leave_one_out() -> list[str]:
    """Predict interior Teff nodes of Phoenix from their neighbours, the node removed."""
    grid = load_library("phoenix")
    fm = forward_model("phoenix", path="multilinear")
    weights = fm.weights
    x = np.asarray(grid.log_teff_nodes, np.float64)
    has = np.asarray(grid.has_node)
    values = np.asarray(grid.values)
    node_mags = np.asarray(jax.jit(jax.vmap(lambda v: _band_magnitudes(v, weights)))(
        jnp.asarray(values.reshape(-1, values.shape[-1]))), np.float64).reshape(has.shape + (-1,))
    errors = {"cubic Hermite of band magnitudes": [], "linear in band magnitudes": [],
              "linear in spectra, then integrated (multilinear)": []}
    for i in range(2, len(x) - 2):
        ok = has[i - 2:i + 3].all(axis=0)  # the node and its four neighbours exist
        if not ok.any():
            continue
        xm, x0, xp = x[i - 1], x[i], x[i + 1]
        t, h = (x0 - xm) / (xp - xm), xp - xm
        f = node_mags[i - 2:i + 3][:, ok]  # (5, n, band)
        def slope(a, b, c, xa, xb, xc):  # the model's own three-point weights, at the middle node
            w = derivative_weights(np.array([xa, xb, xc]), np.ones(3, bool), 0)[1]
            return w[0] * a + w[1] * b + w[2] * c

        s_m = slope(f[0], f[1], f[3], x[i - 2], xm, xp)  # at i-1, neighbours i-2 and i+1 (i removed)
        s_p = slope(f[1], f[3], f[4], xm, xp, x[i + 2])
        h00, h01 = 1 - 3 * t**2 + 2 * t**3, 3 * t**2 - 2 * t**3
        h10, h11 = t - 2 * t**2 + t**3, t**3 - t**2
        cubic = h00 * f[1] + h01 * f[3] + h * (h10 * s_m + h11 * s_p)
        linear = (1 - t) * f[1] + t * f[3]
        spectra = (1 - t) * values[i - 1][ok] + t * values[i + 1][ok]
        integrated = np.asarray(jax.vmap(lambda v: _band_magnitudes(v, weights))(jnp.asarray(spectra)), np.float64)
        truth = f[2]
        for name, guess in zip(errors, (cubic, linear, integrated)):
            errors[name].append(guess - truth)
    bands = fm.bands
    rows = ["### Leave-one-out along Teff (Phoenix): interior nodes predicted with the node removed", "",
            "| scheme | " + " | ".join(bands) + " |", "|---|" + "---|" * len(bands)]
    for name, e in errors.items():
        e = np.concatenate(e)
        rows.append(f"| {name} RMS [mmag] | " + " | ".join(f"{1e3 * np.sqrt(np.mean(e[:, b] ** 2)):.0f}"
                                                         for b in range(len(bands))) + " |")
    held_out = np.concatenate(errors["linear in band magnitudes"]).shape[0]
    return rows + ["", (f"({held_out} held-out nodes; with the node removed the gap is twice the grid's, so "
                        "these overstate the error between nodes.)"), ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=HERE / "reports" / "forward_paths.md")
    args = parser.parse_args()
    lines = [f"# The forward model's paths ({date.today().isoformat()})", "",
             f"`python validation/forward_paths.py --n {args.n}`", ""]
    for library in ("phoenix", "kurucz", "bosz"):
        lines += path_table(library, args.n)
    lines += leave_one_out()
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
