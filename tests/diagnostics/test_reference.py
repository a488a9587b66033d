"""The agreement tests' reference stars: the survey-noise star is the Sun-like dwarf as a survey sees it."""

import numpy as np

from sedppl.diagnostics.reference import SUN_LIKE, SUN_LIKE_LOG10_THETA, survey_star
from sedppl.model.generative import sed_model
from sedppl.model.surveys import SurveyNoise, band_performance


def test_survey_star_is_drawn_from_its_magnitudes():
    """Seeded; bands only where the star is within each survey's limits; errors in the noise model's range;
    magnitudes scattered about the truth by the likelihood's sigma; fainter stars lose bands."""
    model = sed_model("phoenix")
    err, mask, mag = survey_star(model, seed=1)
    again = survey_star(model, seed=1)
    for a, b in zip((err, mask, mag), again):
        np.testing.assert_array_equal(a, b)
    assert err.shape == mask.shape == mag.shape == (1, len(model.bands)) and mask.sum() >= 3
    truth = np.asarray(model.forward.magnitudes(SUN_LIKE, SUN_LIKE_LOG10_THETA))
    limits = band_performance(model.bands)
    seen = mask[0]
    assert np.all(truth[seen] > limits["bright"][seen] - 0.5) and np.all(truth[seen] < limits["faint"][seen] + 0.5)
    lo, hi = SurveyNoise().error_range(model.bands)
    assert np.all((err[0][seen] >= lo[seen]) & (err[0][seen] <= hi[seen]))
    z = (mag[0] - truth)[seen] / np.asarray(model.sigma(err[0], SUN_LIKE))[seen]
    assert np.all(np.abs(z) < 4)
    faint = [survey_star(model, seed=s, theta_dex=-2.0)[1].sum() for s in range(4)]
    bright = [survey_star(model, seed=s)[1].sum() for s in range(4)]
    assert sum(faint) < sum(bright)
