"""Model-atmosphere grids: nodes, validity, and multilinear interpolation.

A grid holds values on the nodes of (log10 Teff, logg, [M/H]); not every node
exists (Phoenix lacks hot low-gravity models, BOSZ has holes). Interpolation
is defined inside cells whose eight corners all exist. The *validity region*
is the part of the box above a continuous gravity floor,

    logg >= logg_floor(teff, mh)    (bilinear in log Teff and [M/H]),

and inside cells whose corners all exist. The floor's node values are the
highest of the neighbouring columns' lowest existing cell, so the floor
follows the missing low-gravity corner from above, continuously: the model
samples logg between the floor and its upper bound, and no sampler
trajectory meets the staircase of missing cells (which made NUTS diverge).
The few interior holes stay as they are. Missing nodes are filled with their
nearest existing node so that values and gradients stay finite everywhere.

Libraries (data in ``sedppl/model/data``, provenance in PROVENANCE.md):

- ``phoenix``  Phoenix spectra (default), 2300-12000 K, [alpha/M] = 0.
- ``kurucz``   Kurucz (1993) spectra, 3500-50000 K.
- ``bosz``     BOSZ synthetic photometry only (no spectra), 2800-16000 K.
"""

from __future__ import annotations

import functools
from importlib import resources

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float
from scipy.ndimage import distance_transform_edt

from .hermite import cell_weights, interpolate_cell, slope_weights, stencil_weights, with_derivatives

LIBRARIES = ("phoenix", "kurucz", "bosz")
SPECTRAL_LIBRARIES = ("phoenix", "kurucz")


def library_names(library) -> tuple[str, ...]:
    """One library ("phoenix") or several to average ("phoenix,kurucz" or a sequence), checked."""
    names = tuple(n.strip() for n in library.split(",")) if isinstance(library, str) else tuple(library)
    unknown = [n for n in names if n not in LIBRARIES]
    if not names or unknown:
        raise ValueError(f"unknown library {', '.join(map(repr, unknown)) or repr(library)}; available: {LIBRARIES}, "
                         "or several separated by commas to average them")
    if len(set(names)) < len(names):
        raise ValueError(f"library {library!r} names a library twice")
    return names


FLOOR_DEX = 30.0  # values are floored this far below a spectrum's peak (as in the data files)


class Grid(eqx.Module):
    """Values on a (log Teff, logg, [M/H]) node grid, with a trailing value axis."""

    name: str = eqx.field(static=True)
    log_teff_nodes: Float[Array, " nt"]
    logg_nodes: Float[Array, " ng"]
    mh_nodes: Float[Array, " nz"]
    values: Float[Array, "nt ng nz nv"]
    has_node: Bool[Array, "nt ng nz"]
    cell_valid: Bool[Array, "nt-1 ng-1 nz-1"]
    floor_nodes: Float[Array, "nt nz"]
    slope_weights: Float[Array, "nt ng nz 3 3"]
    node_range: tuple[tuple[float, float], ...] = eqx.field(static=True)

    @property
    def axes(self) -> tuple[Array, Array, Array]:
        return self.log_teff_nodes, self.logg_nodes, self.mh_nodes

    @property
    def bounds(self) -> dict[str, tuple[float, float]]:
        """Box that contains every valid point: teff [K], logg, mh."""
        return dict(zip(("teff", "logg", "mh"), self.node_range))

    def locate(self, teff: ArrayLike, logg: ArrayLike, mh: ArrayLike):
        """Lower cell index, fractional position in the cell, and validity of one point."""
        point = (jnp.log10(jnp.maximum(teff, 1.0)), jnp.asarray(logg), jnp.asarray(mh))  # finite at teff <= 0 (outside)
        index, frac, inside = [], [], []
        for x, nodes in zip(point, self.axes):
            i = jnp.clip(jnp.searchsorted(nodes, x, side="right") - 1, 0, nodes.shape[0] - 2)
            index.append(i)
            frac.append((x - nodes[i]) / (nodes[i + 1] - nodes[i]))
            inside.append((x >= nodes[0]) & (x <= nodes[-1]))
        valid = inside[0] & inside[1] & inside[2] & self.cell_valid[index[0], index[1], index[2]]
        return jnp.stack(index), jnp.stack(frac), valid

    def logg_floor(self, teff: ArrayLike, mh: ArrayLike) -> Float[Array, ""]:
        """Lowest valid logg at (teff, mh): bilinear in (log Teff, [M/H]) between node values."""
        (it, _, iz), (ft, _, fz), _ = self.locate(teff, self.logg_nodes[-1], mh)
        ft, fz = jnp.clip(ft, 0.0, 1.0), jnp.clip(fz, 0.0, 1.0)
        corners = jax.lax.dynamic_slice(self.floor_nodes, (it, iz), (2, 2))
        return jnp.stack([1.0 - ft, ft]) @ corners @ jnp.stack([1.0 - fz, fz])

    def is_valid(self, teff: ArrayLike, logg: ArrayLike, mh: ArrayLike) -> Bool[Array, ""]:
        in_cells = self.locate(teff, logg, mh)[2]
        return in_cells & (jnp.asarray(logg) >= self.logg_floor(teff, mh))

    def hermite_weights(self, teff: ArrayLike, logg: ArrayLike, mh: ArrayLike) -> tuple[Array, Array]:
        """Lower cell index (3,) and the cubic Hermite weights (2, 2, 2, 4) of one point on each corner's
        [value, d/dlog Teff, d/dlogg, d/d[M/H]] (``hermite.cell_weights``)."""
        index, frac, _ = self.locate(teff, logg, mh)
        return index, cell_weights(jnp.clip(frac, 0.0, 1.0), self._widths(index))

    def _widths(self, index: Array) -> Float[Array, " 3"]:
        return jnp.stack([nodes[i + 1] - nodes[i] for nodes, i in zip(self.axes, index)])

    def hermite(self, table: Float[Array, "nt ng nz v q"], teff: ArrayLike, logg: ArrayLike,
                mh: ArrayLike) -> Float[Array, " q"]:
        """C1 cubic Hermite interpolation of a node table with its derivatives (``with_slopes``: v = 4) or of
        its values alone (v = 1: zero slopes, ``hermite.cell_sums``)."""
        index, frac, _ = self.locate(teff, logg, mh)
        return interpolate_cell(table, index, jnp.clip(frac, 0.0, 1.0), self._widths(index))

    def stencil(self, teff: ArrayLike, logg: ArrayLike, mh: ArrayLike) -> tuple[Array, Array]:
        """The same Hermite interpolant as weights (4, 4, 4) on the nodes from index - 1 to index + 2 along
        each axis; returns (start index in a grid padded by one node on every side, weights)."""
        index, weights = self.hermite_weights(teff, logg, mh)
        slopes = jax.lax.dynamic_slice(self.slope_weights, (index[0], index[1], index[2],
                                       jnp.zeros((), index.dtype), jnp.zeros((), index.dtype)), (2, 2, 2, 3, 3))
        return index, stencil_weights(weights, slopes.astype(weights.dtype))

    def with_slopes(self, values: np.ndarray) -> Float[Array, "nt ng nz 4 ..."]:
        """Node values (nt, ng, nz, ...) and their finite-difference slopes, for ``hermite``."""
        return jnp.asarray(with_derivatives(values, np.asarray(self.slope_weights)), jnp.float32)

    def interpolate(self, teff: ArrayLike, logg: ArrayLike, mh: ArrayLike) -> Float[Array, " nv"]:
        """Multilinear interpolation in (log Teff, logg, [M/H]); finite everywhere."""
        index, frac, _ = self.locate(teff, logg, mh)
        frac = jnp.clip(frac, 0.0, 1.0)
        corners = jax.lax.dynamic_slice(  # every start index of one integer type (float64 mode makes 0 an int64)
            self.values, (index[0], index[1], index[2], jnp.zeros((), index.dtype)), (2, 2, 2, self.values.shape[-1])
        )
        w = [jnp.stack([1.0 - f, f]) for f in frac]
        weights = w[0][:, None, None] * w[1][None, :, None] * w[2][None, None, :]
        return jnp.tensordot(weights.astype(corners.dtype), corners, axes=3)


class SpectralGrid(Grid):
    """A grid of log10(lambda F_lambda) surface-flux spectra [erg s^-1 cm^-2]."""

    wavelength_aa: Float[Array, " nv"]


class PhotometricGrid(Grid):
    """A grid of log10 band-mean surface F_lambda [erg s^-1 cm^-2 A^-1], one value per band."""

    bands: tuple[str, ...] = eqx.field(static=True)


def _node_cube(teff, logg, mh, values) -> tuple[np.ndarray, ...]:
    """Scatter per-model rows onto the node cube; fill holes from the nearest node."""
    axes = [np.unique(a) for a in (teff, logg, mh)]
    idx = tuple(np.searchsorted(ax, a) for ax, a in zip(axes, (teff, logg, mh)))
    shape = tuple(len(ax) for ax in axes)
    has = np.zeros(shape, bool)
    has[idx] = True
    cube = np.zeros(shape + values.shape[1:], np.float32)
    cube[idx] = values
    nearest = distance_transform_edt(~has, return_distances=False, return_indices=True)
    cube = cube[tuple(nearest)]
    valid = np.ones(tuple(n - 1 for n in shape), bool)
    for corner in np.ndindex(2, 2, 2):
        valid &= has[tuple(slice(c, c + n - 1) for c, n in zip(corner, shape))]
    coords = [np.log10(axes[0]).astype(np.float32), axes[1].astype(np.float32), axes[2].astype(np.float32)]
    slopes = slope_weights(tuple(c.astype(np.float64) for c in coords), has)  # at the float32 nodes the model uses
    return axes, cube, has, valid, _floor_nodes(axes[1], valid), slopes.astype(np.float32)


def _floor_nodes(logg_nodes: np.ndarray, cell_valid: np.ndarray) -> np.ndarray:
    """Node values of the gravity floor: at each (teff, mh) node, the highest of the
    neighbouring columns' lowest existing cell."""
    first = np.where(cell_valid.any(axis=1), np.argmax(cell_valid, axis=1), len(logg_nodes) - 1)
    column_floor = logg_nodes[first]  # (nt-1, nz-1), top node where a column has no valid cell
    padded = np.pad(column_floor, 1, mode="edge")
    return np.maximum.reduce([padded[a : a + column_floor.shape[0] + 1, b : b + column_floor.shape[1] + 1]
                              for a in (0, 1) for b in (0, 1)]).astype(np.float32)


def _data_file(name: str):
    return resources.files("sedppl.model.data").joinpath(f"{name}.npz")


@functools.cache
def load_library(name: str = "phoenix") -> Grid:
    """Load an atmosphere library shipped with sedppl (cached; no network)."""
    if name not in LIBRARIES:
        raise ValueError(f"Unknown atmosphere library {name!r}; choose one of {LIBRARIES}")
    with _data_file(name).open("rb") as fh:
        data = dict(np.load(fh))
    if name in SPECTRAL_LIBRARIES:
        below_peak = np.cumsum(data["millidex_steps"].astype(np.int32), axis=1) / 1000.0
        values = data["log_peak"][:, None] + below_peak
    else:
        values = data["log_band_flam"]
        values = np.where(np.isfinite(values), values, np.nanmin(values, axis=0) - FLOOR_DEX)
    axes, cube, has, valid, floor, slopes = _node_cube(data["teff"], data["logg"], data["mh"], values)
    common = dict(
        name=name,
        log_teff_nodes=jnp.asarray(np.log10(axes[0]), jnp.float32),
        logg_nodes=jnp.asarray(axes[1], jnp.float32),
        mh_nodes=jnp.asarray(axes[2], jnp.float32),
        values=jnp.asarray(cube),
        has_node=jnp.asarray(has),
        cell_valid=jnp.asarray(valid),
        floor_nodes=jnp.asarray(floor),
        slope_weights=jnp.asarray(slopes),
        node_range=tuple((float(ax[0]), float(ax[-1])) for ax in axes),
    )
    if name in SPECTRAL_LIBRARIES:
        return SpectralGrid(**common, wavelength_aa=jnp.asarray(data["wavelength_aa"], jnp.float32))
    return PhotometricGrid(**common, bands=tuple(str(b) for b in data["bands"]))


def node_table(grid: Grid) -> np.ndarray:
    """(n_present, 3) array of (teff, logg, mh) of the nodes that exist."""
    it, ig, iz = np.nonzero(np.asarray(grid.has_node))
    return np.stack(
        [10 ** np.asarray(grid.log_teff_nodes)[it], np.asarray(grid.logg_nodes)[ig], np.asarray(grid.mh_nodes)[iz]],
        axis=1,
    )
