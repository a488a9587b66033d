import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sedppl.model.atmospheres import load_library
from sedppl.model.hermite import (cell_weights, derivative_weights, interpolate_cell, regular_hermite, slope_weights,
                                  with_derivatives)


def test_three_point_slopes_are_exact_for_quadratics_on_uneven_nodes():
    x = np.array([0.0, 0.3, 1.0, 1.2, 2.5])
    f = 2.0 * x**2 - 3.0 * x + 1.0
    w = derivative_weights(x, np.ones(5, bool), 0)
    slope = np.array([w[i] @ np.pad(f, 1, mode="edge")[i:i + 3] for i in range(5)])
    np.testing.assert_allclose(slope[1:-1], 4.0 * x[1:-1] - 3.0, rtol=1e-12)
    np.testing.assert_allclose(slope[[0, -1]], [(f[1] - f[0]) / 0.3, (f[4] - f[3]) / 1.3])  # one-sided at the ends


def test_slopes_never_reach_across_a_missing_node():
    has = np.array([True, True, False, True, True])
    w = derivative_weights(np.arange(5.0), has, 0)
    np.testing.assert_allclose(w[1], [-1.0, 1.0, 0.0])  # left difference: the right neighbour is missing
    np.testing.assert_allclose(w[2], 0.0)  # a missing node has no slope
    np.testing.assert_allclose(w[3], [0.0, -1.0, 1.0])


def _grid_table(grid, rng):
    values = rng.normal(size=tuple(grid.has_node.shape) + (3,))
    return values, grid.with_slopes(values)


def test_exact_at_the_nodes(phoenix):
    values, table = _grid_table(phoenix, np.random.default_rng(0))
    teff, logg, mh = (np.asarray(a, np.float64) for a in phoenix.axes)
    rng = np.random.default_rng(1)
    for _ in range(20):
        i, j, k = (rng.integers(1, len(a) - 1) for a in (teff, logg, mh))
        got = phoenix.hermite(table, 10 ** teff[i], logg[j], mh[k])
        np.testing.assert_allclose(got, values[i, j, k], atol=2e-4)


def test_stencil_weights_give_the_same_interpolant_as_the_slope_table(phoenix):
    """Two writings of one interpolant: node slopes tabulated (fast path) and weights on the 4x4x4 block
    (spectral path)."""
    values, table = _grid_table(phoenix, np.random.default_rng(2))
    padded = np.pad(values, ((1, 1), (1, 1), (1, 1), (0, 0)), mode="edge")
    rng = np.random.default_rng(3)
    for teff, logg, mh in zip(rng.uniform(2400, 11900, 30), rng.uniform(0.1, 5.9, 30), rng.uniform(-3.9, 0.9, 30)):
        start, weights = phoenix.stencil(teff, logg, mh)
        s = np.asarray(start)
        block = padded[s[0]:s[0] + 4, s[1]:s[1] + 4, s[2]:s[2] + 4]
        np.testing.assert_allclose(np.tensordot(np.asarray(weights), block, 3),
                                   phoenix.hermite(table, teff, logg, mh), atol=2e-4)


def _block_formula(table, index, weights):
    """The textbook writing: the (2,)*d block of corners in one slice, a tensordot with the cell weights."""
    d = index.shape[0]
    zero = jnp.zeros((), index.dtype)
    corners = jax.lax.dynamic_slice(table, tuple(index) + (zero,) * (table.ndim - d), (2,) * d + table.shape[d:])
    return jnp.tensordot(weights, corners, axes=d + 1)


def _assert_same_function_and_derivatives(fast, reference, points):
    """Both compiled, so that both see the same float32 rounding of the position (log10 of 10**x)."""
    np.testing.assert_allclose(jax.jit(jax.vmap(fast))(points), jax.jit(jax.vmap(reference))(points), atol=2e-5)
    want = np.asarray(jax.jit(jax.vmap(jax.jacrev(reference)))(points))
    scale = np.abs(want).max(axis=(0, 1))  # per input coordinate: their derivatives differ in size
    for jacobian in (jax.jacrev, jax.jacfwd):
        got = np.asarray(jax.jit(jax.vmap(jacobian(fast)))(points))
        excess = np.abs(got - want) - (1e-4 * np.abs(want) + 1e-5 * scale)
        assert excess.max() <= 0, f"{jacobian.__name__}: worst excess {excess.max():.3g} at {np.argmax(excess)}"


def test_gradient_equals_autodiff_of_the_corner_block_formula(phoenix):
    """``hermite`` gathers rows and brings its own JVP (value and partials in one pass); both modes of
    differentiation, batched and compiled, must equal plain autodiff of the textbook writing."""
    _, table = _grid_table(phoenix, np.random.default_rng(4))

    def rows(p):
        return phoenix.hermite(table, 10 ** p[0], p[1], p[2])

    def block_formula(p):
        return _block_formula(table, *phoenix.hermite_weights(10 ** p[0], p[1], p[2]))

    rng = np.random.default_rng(5)
    points = jnp.asarray(np.column_stack([rng.uniform(3.4, 4.05, 64), rng.uniform(0.1, 5.9, 64),
                                          rng.uniform(-3.9, 0.9, 64)]), jnp.float32)
    _assert_same_function_and_derivatives(rows, block_formula, points)


def test_regular_grid_gradient_equals_autodiff_of_the_corner_block_formula():
    """The same for ``regular_hermite`` (the fast path's (A_V, R_V) basis): a different step and length on
    each axis, several values."""
    av, rv = np.linspace(0.0, 3.0, 7), np.linspace(2.0, 6.0, 5)
    axes = ((0.0, 0.5, 7), (2.0, 1.0, 5))
    values = np.random.default_rng(6).normal(size=(7, 5, 4))
    table = jnp.asarray(with_derivatives(values, slope_weights((av, rv), np.ones((7, 5), bool))), jnp.float32)

    def block_formula(x):
        index = jnp.clip(jnp.floor((x - jnp.array([0.0, 2.0])) / jnp.array([0.5, 1.0])), 0, jnp.array([5, 3]))
        frac = jnp.clip((x - jnp.array([0.0, 2.0])) / jnp.array([0.5, 1.0]) - index, 0.0, 1.0)
        return _block_formula(table, index.astype(jnp.int32), cell_weights(frac, jnp.array([0.5, 1.0])))

    rng = np.random.default_rng(7)
    points = jnp.asarray(np.column_stack([rng.uniform(0.01, 2.99, 64), rng.uniform(2.01, 5.99, 64)]), jnp.float32)
    _assert_same_function_and_derivatives(lambda x: regular_hermite(table, x, axes), block_formula, points)


def _quadratic_table_1d():
    """x**2 on 7 even nodes over [0, 3] (start 0, step 0.5), with its slopes: a table ``regular_hermite`` reads."""
    av = np.linspace(0.0, 3.0, 7)
    return jnp.asarray(with_derivatives(av[:, None] ** 2, slope_weights((av,), np.ones(7, bool))), jnp.float32)


def test_the_table_is_data_not_a_parameter():
    """The interpolant's own JVP covers the position only; a derivative in the table is refused, not zero."""
    table = _quadratic_table_1d()
    with pytest.raises(NotImplementedError, match="frac"):
        jax.grad(lambda t: regular_hermite(t, jnp.array([1.3]), ((0.0, 0.5, 7),))[0])(table)
    with pytest.raises(NotImplementedError, match="widths"):
        jax.grad(lambda w: interpolate_cell(table, jnp.array([2]), jnp.array([0.6]), w)[0])(jnp.array([0.5]))


def _interp_1d(x):
    """A function on one axis of the Phoenix grid (log Teff), Hermite-interpolated."""
    grid = load_library("phoenix")
    lt = np.asarray(grid.log_teff_nodes, np.float64)
    values = np.broadcast_to((np.sin(10 * lt) + 3 * lt**2)[:, None, None, None], tuple(grid.has_node.shape) + (1,))
    table = grid.with_slopes(values)
    return grid.hermite(table, 10**x, 4.5, 0.0)[0]


def test_gradient_is_continuous_across_a_cell_face_where_multilinear_creases():
    grid = load_library("phoenix")
    face = float(grid.log_teff_nodes[30])
    grad = jax.grad(_interp_1d)
    left, right = float(grad(jnp.float32(face - 1e-5))), float(grad(jnp.float32(face + 1e-5)))
    assert abs(left - right) < 2e-3  # |f''| < 110 here: a smooth gradient moves by < 2.2e-3 over 2e-5
    spectra = lambda x: grid.interpolate(10**x, 4.5, 0.0)[300]
    jump = abs(float(jax.grad(spectra)(jnp.float32(face - 1e-5)) - jax.grad(spectra)(jnp.float32(face + 1e-5))))
    assert jump > 100 * abs(left - right)  # the multilinear crease this removes


def test_regular_grid_interpolation_reproduces_a_quadratic_inside():
    av, rv = np.linspace(0, 4, 9), np.linspace(2, 6, 9)
    f = (av[:, None] ** 2 + 0.5 * rv[None, :] ** 2 - av[:, None])[..., None]
    table = jnp.asarray(with_derivatives(f, slope_weights((av, rv), np.ones((9, 9), bool))))
    for a, r in [(1.3, 3.1), (2.71, 4.9), (0.9, 2.6)]:
        got = regular_hermite(table, jnp.array([a, r]), ((0.0, 0.5, 9), (2.0, 0.5, 9)))
        np.testing.assert_allclose(got, [a**2 + 0.5 * r**2 - a], rtol=1e-5)
        slope = jax.grad(lambda x: regular_hermite(table, x, ((0.0, 0.5, 9), (2.0, 0.5, 9)))[0])(jnp.array([a, r]))
        np.testing.assert_allclose(slope, [2 * a - 1, r], rtol=1e-4)  # exact for a quadratic, as the value


@pytest.mark.parametrize("x", [-1.0, 10.0])
def test_regular_grid_takes_the_edge_value_outside(x):
    av = np.linspace(0, 4, 9)
    table = jnp.asarray(with_derivatives(av[:, None], slope_weights((av,), np.ones(9, bool))))
    got = float(regular_hermite(table, jnp.array([x]), ((0.0, 0.5, 9),))[0])
    assert got == pytest.approx(np.clip(x, 0, 4))


def test_a_table_that_does_not_fit_its_axes_is_refused():
    table = _quadratic_table_1d()
    with pytest.raises(ValueError, match="do not match"):
        regular_hermite(table, jnp.array([1.3]), ((0.0, 0.5, 8),))
    with pytest.raises(ValueError, match="1 \\+ 1 values per node"):
        interpolate_cell(jnp.concatenate([table, table[:, :1]], axis=1), jnp.array([2]), jnp.array([0.6]),
                         jnp.array([0.5]))


def test_a_table_of_values_alone_is_the_interpolant_with_zero_slopes(phoenix):
    """Values alone (the fast path's flat components): the same as the full table with its slopes set to
    zero, value and gradient, exact at the nodes, and still C1 -- its derivative across a face is zero on
    both sides, where the full table's is the node slope."""
    values, table = _grid_table(phoenix, np.random.default_rng(8))
    alone = table[..., :1, :]
    zeroed = table.at[..., 1:, :].set(0.0)
    rng = np.random.default_rng(9)
    points = jnp.asarray(np.column_stack([rng.uniform(3.4, 4.05, 64), rng.uniform(0.1, 5.9, 64),
                                          rng.uniform(-3.9, 0.9, 64)]), jnp.float32)
    _assert_same_function_and_derivatives(lambda p: phoenix.hermite(alone, 10 ** p[0], p[1], p[2]),
                                          lambda p: phoenix.hermite(zeroed, 10 ** p[0], p[1], p[2]), points)
    teff, logg, mh = (np.asarray(a, np.float64) for a in phoenix.axes)
    i, j, k = 30, 8, 5
    np.testing.assert_allclose(phoenix.hermite(alone, 10 ** teff[i], logg[j], mh[k]), values[i, j, k], atol=2e-4)
    across = jax.jacfwd(lambda x: phoenix.hermite(alone, 10**x, logg[j] + 0.2, mh[k] + 0.1))
    for x in (teff[i] - 1e-5, teff[i] + 1e-5):
        np.testing.assert_allclose(across(jnp.float32(x)), 0.0, atol=1.0)  # f'' ~ 5e4 here: 1e-5 moves it ~0.5
    full = jax.jacfwd(lambda x: phoenix.hermite(table, 10**x, logg[j] + 0.2, mh[k] + 0.1))
    assert np.abs(np.asarray(full(jnp.float32(teff[i])))).min() > 10.0  # the full table's slopes are not zero there
