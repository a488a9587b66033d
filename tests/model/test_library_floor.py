"""The systematic floor from the libraries' disagreement: rebuilt as shipped, used in quadrature."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from sedppl.model.forward import PARAMS
from sedppl.model.generative import log_joint, sed_model
from sedppl.model.library_floor import BASE_FLOOR, build, library_floor, pair_residuals, _table
from sedppl.model.priors import Prior, PriorError

BANDS = ("gaia_bp", "2mass_ks", "galex_nuv")


def libraries_prior() -> Prior:
    tables = Prior.default().to_dict()
    tables["likelihood"]["sys_floor"] = "libraries"
    return Prior.from_dict(tables)


def test_shipped_table_is_what_the_build_gives():
    """The same node pairs, and floors equal to float32 rounding of the magnitudes: 3e-5 apart between two
    numpy/XLA versions (2026-12-01); a floor 1% off fails."""
    rebuilt, shipped = build(BANDS), _table()
    columns = [list(shipped["bands"]).index(b) for b in BANDS]
    np.testing.assert_array_equal(rebuilt["pairs"], shipped["pairs"])
    np.testing.assert_allclose(rebuilt["floor"], shipped["floor"][:, columns], rtol=2e-4)


def test_residuals_are_the_library_difference_less_the_anchor_mean():
    teff, resid = pair_residuals("phoenix", "kurucz", ("gaia_g", "gaia_bp", "gaia_rp", "2mass_j", "2mass_h",
                                                         "2mass_ks", "wise_w1"))
    assert teff.min() >= 4000 and len(teff) > 800  # Kurucz starts at 3500 K, a boundary node left out
    np.testing.assert_allclose(resid[:, :6].mean(axis=1), 0.0, atol=1e-5)  # the anchors' own mean is removed
    assert np.median(np.abs(resid[:, 6])) < 0.05  # W1 agrees to a few hundredths where both are good


def test_floor_is_larger_where_the_libraries_disagree():
    """Sun-like stars: a few hundredths in the optical and near-IR; M dwarfs: a tenth or more in BP, where
    molecules dominate; GALEX NUV of cool stars: most of a magnitude."""
    bands = ("gaia_g", "gaia_bp", "2mass_ks", "galex_nuv")
    sun, m_dwarf = (np.asarray(library_floor(bands, t)) for t in (5800.0, 3100.0))
    assert np.all(sun[:3] < 0.03) and np.all(sun >= BASE_FLOOR)
    assert m_dwarf[1] > 0.1 and m_dwarf[1] > 5 * sun[1] and m_dwarf[3] > 0.5


def test_floor_interpolates_linearly_in_log_teff_between_bin_centres():
    table = _table()
    column = list(table["bands"]).index("gaia_bp")
    centres, values = table["log_teff"], table["floor"][:, column]
    for teff in (2000.0, 3000.0, 4321.0, 5800.0, 15000.0):
        expected = np.interp(np.log10(teff), centres, values)
        assert float(library_floor(("gaia_bp",), teff)[0]) == pytest.approx(expected, rel=1e-5)


def test_log_joint_adds_the_floor_in_quadrature_at_the_stars_teff():
    model = sed_model(bands=BANDS, prior=libraries_prior())
    values = {"teff": 4321.0, "logg": 4.6, "mh": 0.0, "av": 0.3, "rv": 3.1, "log10_theta": -1.0}
    params = jnp.asarray([values[p] for p in PARAMS])
    mu = np.asarray(model.magnitudes(params, values["log10_theta"]))
    err = np.array([0.01, 0.02, 0.05])
    mag = mu + np.array([0.05, -0.03, 0.4])
    floor = np.array([np.interp(np.log10(4321.0), _table()["log_teff"],
                                _table()["floor"][:, list(_table()["bands"]).index(b)]) for b in BANDS])
    expected = norm.logpdf(mag, mu, np.sqrt(err**2 + floor**2)).sum()
    prior_only = log_joint(model, values, err, np.zeros(3, bool), mag)
    got = log_joint(model, values, err, np.ones(3, bool), mag) - prior_only
    assert float(got) == pytest.approx(expected, abs=2e-3)
    grad = jax.grad(lambda t: log_joint(model, values | {"teff": t}, err, np.ones(3, bool), mag))(4321.0)
    assert np.isfinite(grad)


def test_prior_files_select_the_floor_by_name():
    prior = libraries_prior()
    assert Prior.from_dict(__import__("tomllib").loads(prior.to_toml())) == prior
    fixed = Prior.from_dict(prior.to_dict() | {"likelihood": {"sys_floor": 0.02}})
    assert prior.nominal_floor == 0.02 and fixed.floor(BANDS, 5000.0) == 0.02 and prior == Prior.default()
    tables = Prior.default().to_dict()
    tables["likelihood"]["sys_floor"] = "library"
    with pytest.raises(PriorError, match="sys_floor must be a number >= 0 \\(mag\\) or 'libraries', got 'library'"):
        Prior.from_dict(tables)
    tables["likelihood"]["sys_floor"] = True  # TOML's true is not 1 mag
    with pytest.raises(PriorError, match="sys_floor must be a number or 'libraries', got True"):
        Prior.from_dict(tables)
