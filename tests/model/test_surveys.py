"""The survey noise model: published errors and limits, detection and footprint, and the catalogues it makes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sedppl.diagnostics.ood import ERROR_MARGIN
from sedppl.model.forward import PARAMS
from sedppl.model.generative import sed_model
from sedppl.model.passbands import SURVEY_BANDS
from sedppl.model.simulate import simulate_catalog
from sedppl.model.surveys import (
    SNR5_ERROR,
    SurveyNoise,
    band_performance,
    detection_probability,
    fit_error_relation,
    survey_error,
)


def _error(band, mag):
    return float(survey_error((band,), jnp.array([mag]))[0])


# Gaia EDR3/DR3 median uncertainties at G < 13, 17 and 20 [mag] (Gaia Collaboration, Brown et al. 2021, A&A 649, A1)
GAIA = {"gaia_g": (0.0003, 0.001, 0.006), "gaia_bp": (0.0009, 0.012, 0.108), "gaia_rp": (0.0006, 0.006, 0.052)}


@pytest.mark.parametrize("band", GAIA)
def test_gaia_errors_follow_the_published_medians(band):
    published = np.array(GAIA[band])
    fitted = np.array([_error(band, m) for m in (13.0, 17.0, 20.0)])
    # 17 and 20 exactly; at 13 two terms overshoot BP and RP's plateau (fit_error_relation), within 2.2x
    np.testing.assert_allclose(fitted[1:], published[1:], rtol=1e-3)
    assert published[0] <= fitted[0] < 2.2 * published[0]
    assert _error(band, 3.0) == pytest.approx(published[0], rel=1e-3)  # bright: the floor


# 5-sigma depths and floors from the surveys' papers (see data/surveys.toml): the error there is 1.0857/5 and the floor
DEPTHS = {
    "2mass_j": (15.8 + 0.75, 0.02), "2mass_ks": (14.3 + 0.75, 0.02),  # 10-sigma limits (Skrutskie et al. 2006)
    "wise_w1": (16.5, 0.024), "wise_w2": (15.5, 0.028),  # Wright et al. 2010; Jarrett et al. 2011
    "ps1_g": (23.3, 0.01), "ps1_y": (21.4, 0.01),  # Chambers et al. 2016, 3pi stack
    "sdss_u": (22.0, 0.02), "sdss_z": (20.5, 0.01),  # Abazajian et al. 2009
    "galex_fuv": (19.9, 0.05), "galex_nuv": (20.8, 0.027),  # Bianchi et al. 2011; Morrissey et al. 2007
    "skymapper_u": (20.5, 0.03), "skymapper_g": (21.7, 0.01),
    "2mass_h": (15.1 + 0.75, 0.02), "sdss_g": (22.2, 0.01), "sdss_r": (22.2, 0.01), "sdss_i": (21.3, 0.01),
    "ps1_r": (23.2, 0.01), "ps1_i": (23.1, 0.01), "ps1_z": (22.3, 0.01), "skymapper_v": (20.5, 0.03),
    "skymapper_r": (21.7, 0.01), "skymapper_i": (20.7, 0.01), "skymapper_z": (19.7, 0.01),  # floors: ours
}


def test_galex_saturates_where_its_count_rate_turns_non_linear():
    """10% non-linearity at 34 (FUV) and 109 (NUV) counts/s (Morrissey et al. 2007), zero points 18.82 / 20.08."""
    t = band_performance(("galex_fuv", "galex_nuv"))
    expected = [18.82 - 2.5 * np.log10(34.0), 20.08 - 2.5 * np.log10(109.0)]
    np.testing.assert_allclose(t["bright"], expected, atol=0.02)
    np.testing.assert_allclose(band_performance(("2mass_j", "wise_w1"))["faint"], [15.8 + 0.75, 16.5])


@pytest.mark.parametrize("band", DEPTHS)
def test_errors_reach_signal_to_noise_five_at_the_published_depth(band):
    depth, floor = DEPTHS[band]
    assert _error(band, depth) == pytest.approx(np.hypot(1.0857 / 5, floor), rel=1e-3)
    assert _error(band, depth - 1.0) == pytest.approx(np.hypot(1.0857 / 5 * 10**-0.4, floor), rel=1e-3)
    assert _error(band, depth - 12.0) == pytest.approx(floor, rel=1e-3)


def test_the_error_fit_is_exact_on_its_own_family():
    coef = np.array([1e-6, 2e-5, 3e-3])
    m = np.array([5.0, 16.0, 19.0, 21.0])  # the brightest where the floor is all there is
    u = 10 ** (0.4 * (m - 21.0))
    points = np.column_stack([m, np.sqrt(coef[0] + coef[1] * u + coef[2] * u * u)])
    np.testing.assert_allclose(fit_error_relation(points, 21.0), coef, rtol=1e-4)
    assert SNR5_ERROR == pytest.approx(1.0857 / 5, rel=1e-4)


def test_errors_stay_finite_at_any_magnitude():
    for mag in (-30.0, 0.0, 40.0, 120.0):
        errors = survey_error(SURVEY_BANDS, jnp.full(len(SURVEY_BANDS), mag))
        assert np.all(np.isfinite(errors)) and np.all(errors > 0)


def test_bands_appear_only_between_saturation_and_the_detection_limit():
    t = band_performance(SURVEY_BANDS)
    inside = detection_probability(SURVEY_BANDS, jnp.asarray(0.5 * (t["bright"] + t["faint"])), 0.1)
    too_bright = detection_probability(SURVEY_BANDS, jnp.asarray(t["bright"] - 1.0), 0.1)
    too_faint = detection_probability(SURVEY_BANDS, jnp.asarray(t["faint"] + 1.0), 0.1)
    assert np.all(inside > 0.99) and np.all(too_bright < 1e-4) and np.all(too_faint < 1e-4)
    at_limit = detection_probability(SURVEY_BANDS, jnp.asarray(t["faint"]), 0.1)
    np.testing.assert_allclose(at_limit, 0.5, atol=1e-3)


def test_a_survey_covers_all_of_its_bands_or_none_at_its_sky_fraction():
    noise, bands = SurveyNoise(dropout=0.0), ("ps1_g", "ps1_r", "galex_nuv", "gaia_g")
    mag = jnp.array([18.0, 18.0, 18.0, 18.0])  # inside every window
    _, mask = jax.vmap(lambda k: noise.draw(k, bands, mag))(jax.random.split(jax.random.key(0), 4000))
    mask = np.asarray(mask)
    np.testing.assert_array_equal(mask[:, 0], mask[:, 1])
    for column, coverage in ((0, 0.75), (2, 0.52), (3, 1.0)):
        assert abs(mask[:, column].mean() - coverage) < 4 * np.sqrt(coverage * (1 - coverage) / 4000) + 1e-9


def test_a_measured_band_drops_out_at_the_dropout_rate_independently_of_its_survey():
    """Inside the footprint and the magnitude window a band is still missing with probability ``dropout``
    (3%), band by band (G and BP both missing at 0.03^2); without dropout, never."""
    bands, mag = ("gaia_g", "gaia_bp", "gaia_rp"), jnp.array([15.0, 15.3, 14.6])
    keys = jax.random.split(jax.random.key(3), 20000)
    mask = np.asarray(jax.vmap(lambda k: SurveyNoise().draw(k, bands, mag))(keys)[1])
    missing = 1.0 - mask.mean(0)
    assert np.all(np.abs(missing - 0.03) < 4 * np.sqrt(0.03 * 0.97 / 20000))
    both = np.mean(~mask[:, 0] & ~mask[:, 1])  # independent: G and BP both missing at 0.03^2
    assert abs(both - 0.0009) < 4 * np.sqrt(0.0009 / 20000)
    assert np.all(np.asarray(jax.vmap(lambda k: SurveyNoise(dropout=0).draw(k, bands, mag))(keys)[1]))  # an int too
    for bad in (-0.01, 1.0, True):
        with pytest.raises(ValueError, match="dropout"):
            SurveyNoise(dropout=bad)


@pytest.fixture(scope="module")
def survey_catalog():
    model = sed_model()
    return model, simulate_catalog(jax.random.key(4), 300, model, SurveyNoise())


def test_survey_noise_is_the_default_as_the_default_model_was_trained(survey_catalog):
    """``simulate_catalog`` without a noise model draws the surveys' noise, draw for draw."""
    model, table = survey_catalog
    default = simulate_catalog(jax.random.key(4), 300, model)
    assert default.meta["sedppl_noise_kind"] == "survey" and model.prior.sys_floor == "libraries"
    for column in ("gaia_g", "gaia_g_err", "wise_w2", "true_teff"):
        np.testing.assert_array_equal(np.asarray(default[column]), np.asarray(table[column]))


def test_errors_scatter_about_the_median_relation_and_stay_in_the_training_range():
    """At one true magnitude the errors are the median relation times exp(error_scatter z): exact without the
    scatter, an ln-sd of 0.25 by default (so an error no longer gives away the true magnitude). At the saturation
    and faint edges the draws lie in ``error_range`` and none beyond the margin of the fit's out-of-range flag."""
    bands = ("gaia_bp", "2mass_j", "galex_nuv")
    mag = jnp.array([19.0, 14.5, 20.0])
    keys = jax.random.split(jax.random.key(2), 4000)
    err0, _ = jax.vmap(lambda k: SurveyNoise(error_scatter=0.0).draw(k, bands, mag))(keys)
    np.testing.assert_array_equal(err0, np.broadcast_to(survey_error(bands, mag), err0.shape))
    err, _ = jax.vmap(lambda k: SurveyNoise().draw(k, bands, mag))(keys)
    ratio = np.log(np.asarray(err) / np.asarray(err0))
    assert np.all(np.abs(ratio.mean(0)) < 4 * 0.25 / np.sqrt(4000)) and np.all(np.abs(ratio.std(0) / 0.25 - 1) < 0.05)
    low, high = SurveyNoise().error_range(bands)  # 3 sd of the scatter about the median at the two edges
    t = band_performance(bands)
    np.testing.assert_allclose(low, survey_error(bands, jnp.asarray(t["bright"])) * np.exp(-0.75), rtol=1e-6)
    np.testing.assert_allclose(high, survey_error(bands, jnp.asarray(t["faint"]) + 0.5) * np.exp(0.75), rtol=1e-6)
    for m in (jnp.array([3.0, 5.0, 15.0]), jnp.array([21.5, 16.5, 20.8]) + 0.5):  # the saturation and faint edges
        e = np.asarray(jax.vmap(lambda k: SurveyNoise().draw(k, bands, m))(keys)[0])
        assert np.mean((e >= low) & (e <= high)) > 0.99  # the range is 3 sd of the scatter wide
        assert np.all((e >= low / ERROR_MARGIN) & (e <= high * ERROR_MARGIN))  # and none is flagged
    for bad in (-0.1, 3.0, True, "0.2"):
        with pytest.raises(ValueError, match="error_scatter"):
            SurveyNoise(error_scatter=bad)


def test_survey_catalogue_errors_presence_and_noise_follow_the_true_magnitudes(survey_catalog):
    model, table = survey_catalog
    params = jnp.asarray(np.column_stack([table[f"true_{p}"] for p in PARAMS]))
    true = np.asarray(jax.vmap(model.magnitudes)(params, jnp.asarray(table["true_log10_theta"])))
    mag = np.column_stack([np.asarray(table[b], float) for b in model.bands])
    err = np.column_stack([np.asarray(table[f"{b}_err"], float) for b in model.bands])
    present = np.isfinite(mag)
    assert np.all(present.sum(axis=1) >= 3)
    expected = np.asarray(jax.vmap(lambda m: survey_error(model.bands, m))(jnp.asarray(true)))
    # each error scatters about the median relation by the log-normal factor (the table rounds to 1e-5)
    ratio = np.log(err / expected)[present & (expected > 1e-3)]
    assert abs(ratio.mean()) < 4 * 0.25 / np.sqrt(ratio.size) and abs(ratio.std() / 0.25 - 1) < 0.05
    t = band_performance(model.bands)
    assert np.all(true[present] < (t["faint"] + 1.0)[np.nonzero(present)[1]])
    assert np.all(true[present] > (t["bright"] - 1.0)[np.nonzero(present)[1]])
    sigma = np.asarray(jax.vmap(model.sigma)(jnp.asarray(np.nan_to_num(err, nan=1.0)), params))
    z = ((mag - true) / sigma)[present]
    assert abs(z.mean()) < 4 / np.sqrt(z.size) and abs(z.std() - 1.0) < 0.05
    # no cool star detected in GALEX tens of magnitudes below its Gaia brightness (the idealised model's FUV = 78)
    fuv = model.bands.index("galex_fuv")
    assert np.all(mag[present[:, fuv], fuv] < 20.5)
    assert table.meta["sedppl_noise_kind"] == "survey"


def test_too_rare_a_selection_is_refused_by_name_and_a_rare_one_is_found():
    from sedppl.model.simulate import _first_valid

    never = lambda keys: {"x": jnp.zeros(len(keys)), "ok": jnp.zeros(len(keys), bool)}  # noqa: E731
    with pytest.raises(ValueError, match="only 0 of 16 prior draws"):
        _first_valid(never, jax.random.key(0), 3, batch=8, rounds=2)
    with pytest.raises(ValueError, match="min_bands=3 but only 2 bands"):
        simulate_catalog(jax.random.key(0), 2, sed_model(bands=("gaia_g", "gaia_bp")), SurveyNoise())
    # GALEX and SDSS u only: few stars are detected in all three, yet a small catalogue is still drawn
    table = simulate_catalog(jax.random.key(1), 3, sed_model(bands=("galex_fuv", "galex_nuv", "sdss_u")), SurveyNoise())
    assert np.all(np.isfinite(np.asarray(table["galex_fuv"], float)))
