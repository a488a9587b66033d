"""Training simulations come from the model and cover the documented noise; centring removes the scale."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sedppl.inference.npe.simulations import TrainingNoise, centre, simulate_batch, survey_index
from sedppl.model.generative import log_prior


@pytest.fixture(scope="module")
def batch(model):
    return jax.jit(lambda k: simulate_batch(k, model, TrainingNoise(), 2048))(jax.random.key(0))


def test_draws_are_valid_and_noise_is_documented(model, batch):
    params, err, mask = (np.asarray(batch[k]) for k in ("params", "err", "mask"))
    assert np.all(jax.vmap(model.forward.in_grid)(jnp.asarray(params)))
    values = {p: params[:, i] for i, p in enumerate(("teff", "logg", "mh", "av", "rv"))}
    assert np.all(np.isfinite(jax.vmap(lambda v: log_prior(model, v))(values)))
    n_bands = mask.sum(1)
    assert n_bands.min() >= 3 and n_bands.max() == len(model.bands)
    assert len(np.unique(n_bands)) > 15  # broad: from 3 up to all
    assert err.min() >= 0.003 - 1e-6 and err.max() <= 0.3 + 1e-6
    assert np.quantile(err, 0.05) < 0.006 and np.quantile(err, 0.95) > 0.15
    # whole surveys go missing together in about half of the stars
    surveys = survey_index(model.bands)
    galex = surveys == surveys[list(model.bands).index("galex_fuv")]
    assert 0.2 < np.mean(~mask[:, galex].any(1)) < 0.6


def test_magnitudes_follow_the_model_likelihood(model, batch):
    """mag - forward(params, theta) is N(0, err^2 + floor^2): the model's own noise."""
    params, err, mask, mag = (np.asarray(batch[k]) for k in ("params", "err", "mask", "mag"))
    mu = np.asarray(jax.vmap(model.magnitudes)(jnp.asarray(params), batch["log10_theta"]))
    sigma = np.asarray(model.sigma(err, jnp.asarray(params)))
    z = ((mag - mu) / sigma)[mask]
    assert abs(np.mean(z)) < 0.03 and abs(np.std(z) - 1.0) < 0.03


def test_centring_removes_a_common_shift(batch):
    err, mask, mag = batch["err"][0], batch["mask"][0], batch["mag"][0]
    a, la = centre(err, mask, mag, 0.02)
    b, lb = centre(err, mask, mag + 7.3, 0.02)
    np.testing.assert_allclose(a, b, atol=1e-4)
    np.testing.assert_array_equal(la, lb)
    assert np.all(np.asarray(a)[~np.asarray(mask)] == 0)


def test_noise_validation():
    with pytest.raises(ValueError, match="err_min"):
        TrainingNoise(err_min=0.5, err_max=0.1)


def test_survey_training_stars_are_detected_with_their_own_errors(model):
    from sedppl.model.surveys import SurveyNoise, survey_error

    batch = jax.jit(lambda k: simulate_batch(k, model, SurveyNoise(), 256))(jax.random.key(1))
    params, err, mask = (np.asarray(batch[k]) for k in ("params", "err", "mask"))
    assert len(np.unique(params[:, 0])) == 256  # enough candidates pass: no star repeated
    assert mask.sum(1).min() >= 3
    true = jax.vmap(model.magnitudes)(jnp.asarray(params), batch["log10_theta"])
    # errors scatter about the median relation of the true magnitudes (ln-sd 0.25)
    ratio = np.log(err / np.asarray(jax.vmap(lambda m: survey_error(model.bands, m))(true)))
    assert abs(ratio.mean()) < 4 * 0.25 / np.sqrt(ratio.size) and abs(ratio.std() / 0.25 - 1) < 0.05


def test_a_noise_table_names_its_kind():
    from sedppl.inference.npe.simulations import training_noise
    from sedppl.model.surveys import SurveyNoise

    assert training_noise({}) == TrainingNoise()  # cards written before the survey model
    assert training_noise({"kind": "ideal", "err_max": 0.2}) == TrainingNoise(err_max=0.2)
    assert training_noise(SurveyNoise(min_bands=4).to_dict()) == SurveyNoise(min_bands=4)
    with pytest.raises(ValueError, match="kind"):
        training_noise({"kind": "lsst"})
    # a key added since: a [noise] table without it takes today's default, a card without it what the code did
    from sedppl.inference.npe.simulations import card_noise

    before = {"kind": "survey", "min_bands": 3, "edge_mag": 0.1}  # a survey card written before error_scatter
    assert training_noise(before) == SurveyNoise() and card_noise(before) == SurveyNoise(error_scatter=0.0, dropout=0.0)
    assert card_noise(SurveyNoise(error_scatter=0.1).to_dict()) == SurveyNoise(error_scatter=0.1)
    assert card_noise({}) == TrainingNoise()
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['err_min'\]"):
        training_noise({"kind": "survey", "err_min": 0.01})


def test_catalog_noise_is_what_simulate_catalog_draws():
    """A survey card's catalogues carry its survey noise; an idealised card's, simulate's NoiseModel (the
    training-batch TrainingNoise cannot draw a catalogue)."""
    from sedppl.inference.npe.simulations import catalog_noise
    from sedppl.model.simulate import NoiseModel
    from sedppl.model.surveys import SurveyNoise

    assert catalog_noise(SurveyNoise(error_scatter=0.1).to_dict()) == SurveyNoise(error_scatter=0.1)
    assert catalog_noise(TrainingNoise().to_dict()) == NoiseModel() and catalog_noise({}) == NoiseModel()

