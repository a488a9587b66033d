"""Smooth interpolation on a node grid with holes: tensor-product cubic Hermite.

Multilinear interpolation has a crease at every cell face: its gradient jumps,
and NUTS trajectories that cross many faces pay for it in divergences. Cubic
Hermite interpolation takes, at each corner of the cell, the value and one
derivative per axis,

    f(x) = sum over corners c of  H0(c) f_c + sum over axes a of H1_a(c) df_c/dx_a,

with the 1-D cubic Hermite polynomials along every axis (no cross-derivative
terms). Both the value on a cell face and the derivative across it depend only
on the data at that face's corners, so the interpolant is continuous with a
continuous gradient (C1) everywhere, and exact at the nodes. A table may also
hold the values alone: its derivatives are then taken as zero, which keeps the
interpolant C1 and exact at the nodes (a flat tangent at every face) for the
price of a coarser shape between nodes -- for quantities too small for their
slopes to matter, at one row read per corner instead of 1 + d.

The node derivatives are finite differences over the nodes that exist: the
three-point formula on a non-uniform axis (exact for quadratics) where both
neighbours exist, a one-sided difference where one does, zero where none does.
They are a fixed linear map of the node values (``derivative_weights``), so a
table of any quantity (magnitudes, extinction coefficients) carries its
derivatives along (``with_derivatives``), and the same interpolant can be
written as weights on the 4 x ... x 4 block of nodes around the cell
(``stencil_weights``), which is how the spectral reference path uses it.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jaxtyping import Array, Float, Int


def derivative_weights(nodes: np.ndarray, has: np.ndarray, axis: int) -> np.ndarray:
    """Weights (..., 3) on the values at (i-1, i, i+1) along ``axis`` giving d/dx at node i.

    ``nodes``: the axis' node coordinates (increasing); ``has``: which nodes exist (the grid's shape).
    A node that does not exist gets zero weights; so does a missing neighbour.
    """
    nodes = np.asarray(nodes, np.float64)
    has = np.moveaxis(np.asarray(has, bool), axis, 0)
    n = len(nodes)
    if n < 2:
        raise ValueError("an axis needs at least two nodes")
    left = np.zeros_like(has)
    right = np.zeros_like(has)
    left[1:] = has[:-1] & has[1:]
    right[:-1] = has[1:] & has[:-1]
    h1 = np.r_[np.inf, np.diff(nodes)]  # distance to the left neighbour
    h2 = np.r_[np.diff(nodes), np.inf]  # to the right one
    shape = (n,) + (1,) * (has.ndim - 1)
    h1, h2 = h1.reshape(shape), h2.reshape(shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        central = np.stack([-h2 / (h1 * (h1 + h2)), (h2 - h1) / (h1 * h2), h1 / (h2 * (h1 + h2))], axis=-1)
        one_left = np.stack([-1 / h1, 1 / h1, 0 * h1], axis=-1)
        one_right = np.stack([0 * h2, -1 / h2, 1 / h2], axis=-1)
    both = (left & right)[..., None]
    w = np.where(both, central, np.where(left[..., None], one_left, np.where(right[..., None], one_right, 0.0)))
    w = np.broadcast_to(np.nan_to_num(w, nan=0.0, posinf=0.0, neginf=0.0), has.shape + (3,))
    return np.moveaxis(w, 0, axis).copy()


def slope_weights(axes: tuple[np.ndarray, ...], has: np.ndarray) -> np.ndarray:
    """``derivative_weights`` along every axis: shape grid + (ndim, 3)."""
    return np.stack([derivative_weights(nodes, has, a) for a, nodes in enumerate(axes)], axis=-2)


def with_derivatives(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Stack node values and their finite-difference derivatives along each axis.

    ``values`` has the grid's shape followed by trailing value axes, ``weights`` is
    ``slope_weights`` (grid + (ndim, 3)); returns grid + (1 + ndim,) + trailing:
    [value, d/dx_0, d/dx_1, ...].
    """
    values = np.asarray(values, np.float64)
    weights = np.asarray(weights, np.float64)
    ndim = weights.ndim - 2
    extra = (1,) * (values.ndim - ndim)
    out = [values]
    for a in range(ndim):
        pad = [(0, 0)] * values.ndim
        pad[a] = (1, 1)
        padded = np.pad(values, pad, mode="edge")
        n = values.shape[a]
        out.append(sum(weights[..., a, s].reshape(weights.shape[:ndim] + extra)
                       * np.take(padded, np.arange(n) + s, axis=a) for s in range(3)))
    return np.stack(out, axis=ndim)


def _hermite_1d(t: Array, width: Array) -> tuple[Array, Array]:
    """Value weights (2,) and derivative weights (2,) of the cubic Hermite form at t in [0, 1]."""
    t2, t3 = t * t, t * t * t
    value = jnp.stack([1.0 - 3.0 * t2 + 2.0 * t3, 3.0 * t2 - 2.0 * t3])
    slope = width * jnp.stack([t - 2.0 * t2 + t3, t3 - t2])
    return value, slope


def cell_weights(frac: Float[Array, " d"], widths: Float[Array, " d"]) -> Float[Array, ...]:
    """Weights (2,)*d + (1 + d,) on each corner's [value, d/dx_0, ...] at fractional position ``frac``."""
    d = frac.shape[0]
    parts = [_hermite_1d(frac[a], widths[a]) for a in range(d)]
    terms = []
    for which in range(d + 1):  # 0: value; 1 + a: derivative along axis a
        w = jnp.ones(())
        for a in range(d):
            w = jnp.multiply.outer(w, parts[a][1] if which == 1 + a else parts[a][0])
        terms.append(w)
    return jnp.stack(terms, axis=-1)


def stencil_weights(cell: Float[Array, ...], corner_derivative_weights: Float[Array, ...]) -> Float[Array, ...]:
    """The same interpolant as weights on the (4,)*d block of nodes starting one node below the cell.

    ``cell``: ``cell_weights`` output, (2,)*d + (1 + d,); ``corner_derivative_weights``: (2,)*d + (d, 3),
    each corner's ``derivative_weights`` along every axis.
    """
    d = cell.ndim - 1
    block = jnp.zeros((4,) * d, cell.dtype)
    for corner in itertools.product((0, 1), repeat=d):
        centre = tuple(1 + c for c in corner)
        block = block.at[centre].add(cell[corner + (0,)])
        for a in range(d):
            for s in range(3):
                at = list(centre)
                at[a] += s - 1
                block = block.at[tuple(at)].add(cell[corner + (1 + a,)] * corner_derivative_weights[corner + (a, s)])
    return block


def cell_sums(table: Float[Array, ...], index: Int[Array, " d"],
              *weight_sets: Float[Array, ...]) -> tuple[Float[Array, "..."], ...]:
    """For each weight set w: the sum over the cell's corners c and values v of w[c, v] * table[index + c, v].

    ``table``: grid (d axes) + (1 + d,) + trailing, as ``with_derivatives`` gives it, or grid + (1,) +
    trailing, the values alone (derivatives taken as zero: only w[c, 0] is used); ``index``: the
    cell's lower corner, each entry at most its axis' length - 2 (the rows are read from the flattened
    grid, so an index past that would read the next line's nodes, not fail); each weight set has
    ``cell_weights``' shape. Written for XLA on a CPU, where batched (vmap) each row gathered whole,
    one at a time, and weighted into a single fused sum is several times faster than one
    ``dynamic_slice`` of the (2,)*d block and a tensordot (BENCHMARKS.md, "Forward model").
    The barriers keep that so: no sum is fused into its consumer (a dot or a reduction would gather
    every row again per output element), and each sum gathers its own rows (rows shared between sums
    are first copied out whole, ~5x slower).
    """
    d = index.shape[0]
    shape, values = table.shape[:d], table.shape[d]
    if values not in (1, 1 + d):
        raise ValueError(f"a table for {d} axes holds 1 + {d} values per node (``with_derivatives``) or the "
                         f"value alone, not {values}")
    rows = table.reshape((int(np.prod(table.shape[:d + 1])),) + table.shape[d + 1:])  # (-1 fails on a table of width 0)
    if rows.shape[0] >= 2**31:
        raise ValueError("table too large for int32 row indices")
    strides = [int(np.prod(shape[a + 1:], dtype=np.int64)) for a in range(d)]
    sums = []
    for weights in weight_sets:
        base = sum(index[a] * strides[a] for a in range(d))
        total = jnp.zeros(table.shape[d + 1:], table.dtype)
        for corner in itertools.product((0, 1), repeat=d):
            node = base + sum(c * s for c, s in zip(corner, strides))
            for v in range(values):
                total = total + weights[corner + (v,)].astype(table.dtype) * rows[node * values + v]
        total, index = jax.lax.optimization_barrier((total, index))
        sums.append(total)
    return tuple(sums)


@jax.custom_jvp
def interpolate_cell(table: Float[Array, ...], index: Int[Array, " d"], frac: Float[Array, " d"],
                     widths: Float[Array, " d"]) -> Float[Array, "..."]:
    """The C1 cubic Hermite interpolant at fractional position ``frac`` of the cell at ``index``.

    Differentiable in ``frac`` only (the table and the cell's widths are data: differentiating in them
    raises). Its JVP gathers each row once for the value and the d partial derivatives together, so
    reverse mode transposes a (d, q) Jacobian instead of the gathers.
    """
    return cell_sums(table, index, cell_weights(frac, widths))[0]


def _interpolate_cell_jvp(primals, tangents):
    table, index, frac, widths = primals
    table_dot, _, frac_dot, widths_dot = tangents
    if not (isinstance(table_dot, SymbolicZero) and isinstance(widths_dot, SymbolicZero)):
        raise NotImplementedError("interpolate_cell is differentiable in its position (frac) only, "
                                  "not in the table or the cell widths")
    weights = cell_weights(frac, widths)  # frac_dot is not a symbolic zero: only it can carry a tangent here
    partial_weights = jax.jacfwd(cell_weights)(frac, widths)  # cell_weights' shape + (d,)
    value, *partials = cell_sums(table, index, weights,
                                 *(partial_weights[..., a] for a in range(frac.shape[0])))
    return value, jnp.tensordot(frac_dot.astype(value.dtype), jnp.stack(partials), axes=1)


interpolate_cell.defjvp(_interpolate_cell_jvp, symbolic_zeros=True)


def regular_hermite(table: Float[Array, ...], x: Float[Array, " d"],
                    axes: tuple[tuple[float, float, int], ...]) -> Float[Array, " q"]:
    """Hermite interpolation of ``with_derivatives`` output (or of the values alone, ``cell_sums``) on a
    regular grid, ``axes`` = (start, step, n) per dimension; points outside take the nearest edge's value."""
    if tuple(n for _, _, n in axes) != table.shape[:len(axes)]:
        raise ValueError(f"axes {axes} do not match the table's shape {table.shape}")
    index, frac = [], []
    for xi, (start, step, n) in zip(x, axes):
        i = jnp.clip(jnp.floor((xi - start) / step), 0, n - 2).astype(jnp.int32)
        index.append(i)
        frac.append(jnp.clip((xi - start) / step - i, 0.0, 1.0))
    widths = jnp.asarray([step for _, step, _ in axes], x.dtype)
    return interpolate_cell(table, jnp.stack(index), jnp.stack(frac), widths)
