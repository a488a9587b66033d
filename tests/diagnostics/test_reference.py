"""The agreement tests' reference stars: the survey-noise star is the Sun-like dwarf as a survey sees it."""

import jax
import numpy as np
import pytest

from sedppl.diagnostics.reference import SUN_LIKE, SUN_LIKE_LOG10_THETA, reference_survey_star
from sedppl.model.generative import sed_model
from sedppl.model.surveys import SurveyNoise


@pytest.fixture(scope="module")
def model():
    return sed_model("phoenix")


def truth(model, theta_dex=0.0):
    return np.asarray(model.magnitudes(SUN_LIKE, SUN_LIKE_LOG10_THETA + theta_dex))


def test_survey_star_draws_bands_and_errors_from_its_magnitudes(model):
    """Seeded; presence and errors are the noise model's draw at the star's true magnitudes; -0.4 dex in
    angular diameter is 2 mag fainter, and fainter stars lose bands."""
    err, mask, mag = reference_survey_star(model, seed=1)
    for a, b in zip((err, mask, mag), reference_survey_star(model, seed=1)):
        np.testing.assert_array_equal(a, b)
    expected_err, expected_mask = SurveyNoise().draw(jax.random.split(jax.random.key(1))[0], model.bands,
                                                     truth(model))
    np.testing.assert_array_equal(mask[0], np.asarray(expected_mask))
    np.testing.assert_allclose(err[0], np.asarray(expected_err), rtol=1e-6)
    np.testing.assert_allclose(truth(model, -0.4) - truth(model), 2.0, atol=1e-4)
    bright = sum(reference_survey_star(model, seed=s)[1].sum() for s in range(4))
    faint = sum(reference_survey_star(model, seed=s, theta_dex=-1.2)[1].sum() for s in range(4))
    assert faint < bright


def test_survey_star_scatter_is_the_likelihoods_sigma(model):
    """Magnitudes scatter about the truth by the likelihood's sigma (errors and floor), pooled over seeds."""
    z = []
    for seed in range(20):
        err, mask, mag = reference_survey_star(model, seed=seed)
        sigma = np.asarray(model.sigma(err[0], SUN_LIKE))
        z.append(((mag[0] - truth(model)) / sigma)[mask[0]])
    z = np.concatenate(z)
    assert len(z) > 150 and 0.8 < z.std() < 1.2 and abs(z.mean()) < 0.25


def test_survey_star_refuses_too_few_bands(model):
    with pytest.raises(ValueError, match="bands catalogued"):
        reference_survey_star(model, seed=0, theta_dex=-4.0)
    with pytest.raises(ValueError, match="theta_dex must be finite"):
        reference_survey_star(model, seed=0, theta_dex=float("nan"))
