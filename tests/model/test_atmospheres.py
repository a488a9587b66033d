import numpy as np
import pytest

from sedppl.model.atmospheres import LIBRARIES, load_library, node_table


@pytest.mark.parametrize("name", LIBRARIES)
def test_libraries_load_offline_with_finite_values(name):
    grid = load_library(name)
    assert np.all(np.isfinite(np.asarray(grid.values)))
    assert grid.cell_valid.any() and not grid.cell_valid.all()


def test_interpolation_is_exact_at_existing_nodes(phoenix):
    rng = np.random.default_rng(0)
    nodes = node_table(phoenix)
    for teff, logg, mh in nodes[rng.choice(len(nodes), 25, replace=False)]:
        it = np.argmin(np.abs(10 ** np.asarray(phoenix.log_teff_nodes, float) - teff))
        ig = np.argmin(np.abs(np.asarray(phoenix.logg_nodes) - logg))
        iz = np.argmin(np.abs(np.asarray(phoenix.mh_nodes) - mh))
        stored = np.asarray(phoenix.values[it, ig, iz])
        got = np.asarray(phoenix.interpolate(10 ** phoenix.log_teff_nodes[it], logg, mh))
        np.testing.assert_allclose(got, stored, atol=1e-4)  # float32 log10(10**x) round trip: ~2e-5 dex


def test_validity_needs_all_eight_corners(phoenix):
    has = np.asarray(phoenix.has_node)
    valid = np.asarray(phoenix.cell_valid)
    it, ig, iz = np.argwhere(~valid)[0]
    assert not has[it : it + 2, ig : ig + 2, iz : iz + 2].all()
    mid = lambda nodes, i: float((nodes[i] + nodes[i + 1]) / 2)  # noqa: E731
    teff = 10 ** mid(phoenix.log_teff_nodes, it)
    assert not bool(phoenix.is_valid(teff, mid(phoenix.logg_nodes, ig), mid(phoenix.mh_nodes, iz)))
    assert bool(phoenix.is_valid(5772.0, 4.44, 0.0))


@pytest.mark.parametrize("point", [(2000.0, 4.5, 0.0), (5000.0, 7.0, 0.0), (5000.0, 4.5, 2.0), (5000.0, -1.0, 0.0)])
def test_outside_the_box_is_invalid_but_finite(phoenix, point):
    assert not bool(phoenix.is_valid(*point))
    assert np.all(np.isfinite(np.asarray(phoenix.interpolate(*point))))


def test_hot_low_gravity_phoenix_models_are_missing(phoenix):
    """Phoenix has no 12000 K models at logg 0: the region is invalid, not extrapolated."""
    assert not bool(phoenix.is_valid(11900.0, 0.2, 0.0))


@pytest.mark.parametrize("name", LIBRARIES)
def test_gravity_floor_bounds_the_missing_corner_continuously(name):
    """Above the floor a point lies in existing cells (bar the few interior holes); below it, never valid;
    and the floor moves continuously with Teff and [M/H]."""
    import jax

    grid = load_library(name)
    rng = np.random.default_rng(1)
    (t0, t1), (g0, g1), (z0, z1) = grid.node_range
    teff, mh = 10 ** rng.uniform(np.log10(t0), np.log10(t1), 20000), rng.uniform(z0, z1, 20000)
    logg = rng.uniform(g0, g1, 20000)
    floor = np.asarray(jax.vmap(grid.logg_floor)(teff, mh))
    in_cells = np.asarray(jax.vmap(grid.locate)(teff, logg, mh)[2])
    valid = np.asarray(jax.vmap(grid.is_valid)(teff, logg, mh))
    above = logg >= floor
    assert not np.any(valid & ~above) and not np.any(valid & ~in_cells)
    assert np.mean(above & ~in_cells) < {"phoenix": 0.01, "kurucz": 0.02, "bosz": 0.08}[name]  # interior holes
    assert np.mean(in_cells & ~above) < 0.03  # what the floor gives up of the existing cells
    step = np.asarray(jax.vmap(grid.logg_floor)(teff * 1.0005, mh + 5e-4)) - floor
    assert np.abs(step).max() < 0.05  # no jumps: a staircase would jump by a whole gravity step


def test_phoenix_floor_rises_with_teff(phoenix):
    assert float(phoenix.logg_floor(5000.0, 0.0)) == 0.0
    assert 1.5 <= float(phoenix.logg_floor(11000.0, 0.0)) <= 3.0
