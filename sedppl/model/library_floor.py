"""The likelihood's systematic floor, from how much the atmosphere libraries disagree.

Every real star is fitted with a model that is somewhat wrong. How wrong can be
read off the libraries sedppl ships: at the (Teff, logg, [M/H]) nodes two
libraries share (A_V = 0), the difference of their surface magnitudes in a band,
less the pair's mean difference over the Gaia and 2MASS bands (a constant offset
is absorbed by the angular diameter), is what that band would be off by if the
truth were the other library. Its root mean square over the three pairs
(Phoenix-Kurucz, Phoenix-BOSZ, Kurucz-BOSZ) and over the nodes in a bin of
log Teff is the band's library scatter at that temperature; the floor is that
scatter and ``BASE_FLOOR`` (calibration) in quadrature, at most ``MAX_FLOOR``.
Not divided by sqrt(2): the truth is no nearer our model than another library is.

Two choices keep the floor smooth in Teff, which matters because its
normalisation (-log sigma) is part of the likelihood: a step in the floor is a
step in the posterior. A library's boundary Teff nodes are left out (Kurucz at
3500 K is 0.4-0.55 mag off Phoenix in Ks and W1, ten times its neighbours: the
end of its physics, not a scatter). And a band the libraries cannot predict to
``MAX_FLOOR`` (GALEX FUV of stars cooler than ~7000 K, where they differ by
1-75 mag) is given ``MAX_FLOOR``: wider than that, a Gaussian in magnitudes
spans values no catalogue holds, simulations would draw them, and the band's
residual still counts at 2 mag per sigma.

``python -m sedppl.model.library_floor`` rebuilds ``data/library_floor.npz``;
``[likelihood] sys_floor = "libraries"`` in a prior file selects it (a number
keeps one floor for every band).
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .passbands import SURVEY_BANDS

LIBRARIES = ("phoenix", "kurucz", "bosz")
ANCHOR_BANDS = ("gaia_g", "gaia_bp", "gaia_rp", "2mass_j", "2mass_h", "2mass_ks")
BASE_FLOOR = 0.01  # mag: zero points and passbands, the part no library comparison sees
MAX_FLOOR = 2.0  # mag
TEFF_RANGE = (2300.0, 12000.0)  # K: the default library's (Phoenix) range, where stars are fitted
N_BINS = 16  # equal in log Teff
DATA = Path(__file__).parent / "data" / "library_floor.npz"


def shared_nodes(a: str, b: str) -> np.ndarray:
    """(n, 3) (teff, logg, mh) of the grid nodes libraries ``a`` and ``b`` both have."""
    from .atmospheres import load_library, node_table

    # node temperatures are whole kelvin in every library, but 10**log_teff in float32 is not (11999.999,
    # 11500.005): rounded to 1e-3 K, whether two libraries' nodes matched depended on numpy's last bit
    key = lambda t: {(float(np.round(r[0])), float(np.round(r[1], 2)), float(np.round(r[2], 2))) for r in t}  # noqa: E731
    return np.array(sorted(key(node_table(load_library(a))) & key(node_table(load_library(b)))))


def _teff_ends(library: str) -> list[float]:
    from .atmospheres import load_library

    nodes = 10 ** np.asarray(load_library(library).log_teff_nodes, np.float64)
    return [float(np.round(nodes.min())), float(np.round(nodes.max()))]


def pair_residuals(a: str, b: str, bands=SURVEY_BANDS) -> tuple[np.ndarray, np.ndarray]:
    """(teff (n,), residual (n, nb)): library b minus a at their shared nodes (less either library's
    boundary Teff), each node's mean over ``ANCHOR_BANDS`` removed (the anchors are computed whether or
    not ``bands`` lists them)."""
    from .forward import forward_model

    every = tuple(dict.fromkeys(tuple(bands) + ANCHOR_BANDS))
    nodes = shared_nodes(a, b)
    nodes = nodes[~np.isin(np.round(nodes[:, 0]), [_teff_ends(a), _teff_ends(b)])]  # boundary nodes out
    params = jnp.asarray(np.column_stack([nodes, np.zeros(len(nodes)), np.full(len(nodes), 3.1)]), jnp.float32)
    # at a node every forward path gives the node's own integrated spectrum; "multilinear" reads one spectrum
    diff = np.subtract(*(np.asarray(jax.vmap(forward_model(lib, every, "multilinear").surface_magnitudes)(params),
                                    np.float64) for lib in (b, a)))
    offset = diff[:, [every.index(x) for x in ANCHOR_BANDS]].mean(axis=1, keepdims=True)
    return nodes[:, 0], (diff - offset)[:, [every.index(x) for x in bands]]


def build(bands=SURVEY_BANDS) -> dict[str, np.ndarray]:
    """The floor table: bin centres in log10 Teff, the bands, the floor (bin, band) [mag], and the
    number of node pairs behind each bin. A bin no pair reaches takes its nearest filled neighbour's."""
    edges = np.linspace(*np.log10(TEFF_RANGE), N_BINS + 1)
    sums, counts = np.zeros((N_BINS, len(bands))), np.zeros(N_BINS, int)
    for a, b in itertools.combinations(LIBRARIES, 2):
        teff, resid = pair_residuals(a, b, bands)
        which = np.digitize(np.log10(teff), edges) - 1
        inside = (which >= 0) & (which < N_BINS)
        np.add.at(sums, which[inside], resid[inside] ** 2)
        np.add.at(counts, which[inside], 1)
    filled = np.flatnonzero(counts)
    nearest = filled[np.abs(np.arange(N_BINS)[:, None] - filled[None, :]).argmin(axis=1)]
    scatter = np.sqrt(sums[nearest] / counts[nearest][:, None])
    return {"log_teff": 0.5 * (edges[1:] + edges[:-1]), "bands": np.array(bands),
            "floor": np.minimum(np.sqrt(scatter**2 + BASE_FLOOR**2), MAX_FLOOR), "pairs": counts}


@functools.cache
def _table() -> dict[str, np.ndarray]:
    with np.load(DATA) as data:
        return {k: data[k] for k in data.files}


def library_floor(bands, teff: ArrayLike) -> Float[Array, " nb"]:
    """Each band's systematic floor [mag] at ``teff`` (shape (..., nb) for teff of shape (...)): linear in
    log Teff between bin centres, the end bins' values beyond them."""
    table = _table()
    known = list(table["bands"])
    unknown = [b for b in bands if b not in known]
    if unknown:
        raise KeyError(f"no library floor for bands {unknown}: the table covers the survey bands "
                       f"({', '.join(known)}); use a numeric sys_floor with other bands")
    x = jnp.log10(jnp.asarray(teff, float))
    floor = jnp.asarray(table["floor"][:, [known.index(b) for b in bands]], x.dtype)  # (bin, band)
    centres = jnp.asarray(table["log_teff"], x.dtype)
    return jax.vmap(lambda column: jnp.interp(x, centres, column), in_axes=1, out_axes=-1)(floor)


def main() -> None:
    table = build()
    np.savez(DATA, **table)
    print(f"wrote {DATA}: floor [mag] per band (columns) and Teff bin (rows), {N_BINS} bins")
    print("teff     " + " ".join(f"{b[-7:]:>7}" for b in table["bands"]))
    for t, row, n in zip(table["log_teff"], table["floor"], table["pairs"]):
        print(f"{10**t:6.0f} K " + " ".join(f"{v:7.3f}" for v in row) + f"  ({n} node pairs)")


if __name__ == "__main__":
    main()
