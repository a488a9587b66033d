"""Tempered SMC: the adaptive schedule's ESS, agreement with NUTS on a unimodal star, and the mass of a
minor mode that NUTS chains over-weight when pooled by count (``sedppl simulate 4 --seed 5``, star sim0)."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from blackjax.smc.ess import ess

from sedppl.diagnostics.comparison import half_width
from sedppl.inference.nuts import NUTSConfig, NUTSSampler
from sedppl.inference.smc import SMCConfig, SMCSampler, tempering_increment
from sedppl.model.forward import PARAMS
from sedppl.model.generative import sed_model
from sedppl.model.priors import Prior
from sedppl.model.simulate import NoiseModel, simulate_catalog

MODEL = Path(__file__).resolve().parents[2] / "models" / "default"
GIANT_LOGG = 3.0  # sim0's minor mode sits at logg ~0.5, its major one at ~5.3
REFERENCE_NUTS = NUTSConfig(chains=4, draws=500, warmup=500, stars_per_call=1)  # nuts_reference's (one compile)


def test_adaptive_tempering_reaches_the_target_ess_on_an_asymmetric_likelihood():
    """blackjax#914: the ESS solver once used the opposite sign of the weight update. On log-likelihoods that
    are all negative and skewed, the chosen increment must give exactly the target ESS under the update's
    own sign (delta * loglik); the old sign gives another."""
    loglik = -jnp.exp(jax.random.normal(jax.random.key(0), (2000,)) * 1.5) * 50.0
    for target in (0.3, 0.5, 0.8):
        delta, log_w = tempering_increment(loglik, 1.0, target)
        assert 0 < float(delta) < 1
        np.testing.assert_allclose(log_w, delta * loglik)
        assert abs(float(ess(log_w)) / 2000 - target) < 0.01, target
        assert abs(float(ess(-delta * loglik)) / 2000 - target) > 0.05  # the two signs really differ here


def test_tempering_drops_zero_likelihood_particles_instead_of_stalling():
    """When most prior draws have L = 0 (log L = -inf), the increment is still positive, the ESS target counts
    the living particles, the dead get weight 0 (never NaN); the last step stops exactly at λ = 1."""
    live = -jnp.exp(jax.random.normal(jax.random.key(1), (500,))) * 200.0
    loglik = jnp.concatenate([live, jnp.full(1500, -jnp.inf)])  # 75% dead, more than 1 - target_ess
    delta, log_w = tempering_increment(loglik, 1.0, 0.5)
    assert 0 < float(delta) < 1 and np.all(~np.isnan(log_w))
    assert np.all(np.isneginf(log_w[500:]))
    assert abs(float(ess(log_w)) / 500 - 0.5) < 0.01
    delta, log_w = tempering_increment(loglik * 1e-6, 0.25, 0.5)  # an almost flat likelihood: take the rest
    assert float(delta) == 0.25
    delta, log_w = tempering_increment(loglik, 0.0, 0.5)  # at the posterior: uniform over the living
    assert float(delta) == 0.0 and np.all(log_w[:500] == 0.0) and np.all(np.isneginf(log_w[500:]))


@pytest.fixture(scope="module")
def model():
    """The default model under the single 0.02 mag floor, in which sim0's numbers below were measured. Under
    the libraries' floor (the default prior since 2026-12-02) sim0 is another star: its giant mode holds
    35-49% of the mass and one SMC run's log Z has sd 0.6 (5 SMC fits of 2 runs, 2026-12-02)."""
    return sed_model(prior=Prior.default(sys_floor=0.02), correction="none")  # the model its numbers were measured on


def _rows(table, bands, i):
    mag = np.array([table[b][i] for b in bands], float)
    err = np.array([table[f"{b}_err"][i] for b in bands], float)
    mask = np.isfinite(mag) & np.isfinite(err)
    return np.where(mask, err, 1.0), mask, np.where(mask, mag, 0.0)


@pytest.fixture(scope="module")
def seed5_star(model):
    table = simulate_catalog(jax.random.key(5), 4, model, NoiseModel())  # `sedppl simulate 4 --seed 5 --noise ideal`
    assert abs(float(table["true_teff"][0]) - 4289.2) < 0.5  # sim0 of the issue
    return tuple(a[None] for a in _rows(table, model.bands, 0))


@pytest.fixture(scope="module")
def smc_draws(model, reference_star, seed5_star):
    """SMC on the reference (unimodal) star and on sim0, in one call."""
    stars = [np.concatenate(pair) for pair in zip(reference_star(model), seed5_star)]
    return SMCSampler(model, SMCConfig(stars_per_call=2)).sample(jax.random.key(0), *stars, progress=False)


def test_smc_reaches_the_posterior_with_diverse_particles(smc_draws):
    assert smc_draws.params["teff"].shape == (2, 2, 512 * 4)  # star, run, particle x final move
    assert np.all(smc_draws.reached_posterior) and np.all(smc_draws.n_steps > 3)
    assert np.all(smc_draws.diversity > 0.3) and np.all(smc_draws.acceptance > 0.2)
    assert np.all(np.isfinite(smc_draws.log_evidence))
    # the two runs' evidences agree: one run's log Z has sd 0.23 on sim0 (10 runs, 2026-11-30), so 1 nat is 3 sd
    assert np.all(np.ptp(smc_draws.log_evidence, axis=1) < 1.0)


@pytest.mark.slow  # ~90 s on 2 cores (a NUTS reference compile and run); `make test-all`
def test_smc_agrees_with_nuts_on_a_unimodal_star(model, reference_star, nuts_reference, smc_draws):
    nuts = nuts_reference(model, *reference_star(model))
    for p in PARAMS + ("theta_mas",):
        ref, ours = nuts.params[p][0].ravel(), smc_draws.params[p][0].ravel()
        hw = half_width(ref)
        assert abs(np.median(ours) - np.median(ref)) < 0.3 * hw, p
        assert 0.75 < half_width(ours) / hw < 1.33, p


@pytest.mark.slow  # ~90 s on 2 cores (NUTS and a 4000-proposal NPE-IS); `make test-all`
def test_the_giant_mode_of_sim0_carries_little_mass(model, seed5_star, smc_draws):
    """Every exact method gives sim0's giant mode < 5% of the mass (importance sampling: ~1.4%); pooling
    NUTS chains by count gave it 25% when one of four chains sat there."""
    assert np.mean(smc_draws.params["logg"][1] < GIANT_LOGG) < 0.05
    nuts = NUTSSampler(model, REFERENCE_NUTS).sample(jax.random.key(0), *seed5_star, progress=False)
    assert np.mean(nuts.pooled(0)["logg"] < GIANT_LOGG) < 0.05
    found = np.mean(nuts.params["logg"][0] < GIANT_LOGG, axis=1) > 0.5
    if found.any():  # a chain sat in the giant mode: its weight is that mode's estimated mass, not 1/4
        assert np.all(nuts.chain_weight[0][found] < 0.05)
        assert int(nuts.n_modes[0]) >= 2
    # NPE-IS with enough proposals for a reliable ESS (~400; with 1000 proposals the ESS is ~100 and a 1.4%
    # mode's resampled share ranged 0-4.6% over three seeds; measured with 3 adaptation rounds, passes at 0)
    from sedppl.inference.importance import ImportanceSampler, ISConfig
    from sedppl.inference.npe.card import load_npe

    posterior, card = load_npe(MODEL.parent / "ideal")  # trained for this star's setting: idealised noise, 0.02 mag
    proposal = card.model(marginalize_scale=True)
    assert proposal.prior == model.prior and proposal.correction == model.correction
    npe_is = ImportanceSampler(posterior, proposal, proposal, ISConfig(proposals=4000, draws=4000)).sample(
        jax.random.key(0), *seed5_star, progress=False)
    assert bool(npe_is.reliable[0]) and np.mean(npe_is.params["logg"][0] < GIANT_LOGG) < 0.05


def test_importance_sampling_yields_the_same_evidence(model, reference_star, smc_draws):
    """Two engines, one evidence. SMC's product of tempering increments is relative to the prior restricted
    to the validity region (it starts from prior draws inside it), so it is put on the one prior by that
    region's mass; NPE-IS's mean raw weight is relative to the one prior as it stands. On the reference
    star they agree within 0.5 nat (one SMC run's log Z has sd ~0.2, the two runs' mean ~0.15; IS at
    k̂ < 0.5 with 4000 proposals ~0.05): a lost normalisation (the mean's 1/n, the flow's Jacobian) is
    several nats. The mass itself (log 0.83 = -0.19 here) is below this test's resolution; that it is
    applied to SMC's evidences only is checked in tests/io/test_fit.py."""
    from sedppl.inference.averaging import valid_prior_mass
    from sedppl.inference.importance import ImportanceSampler, ISConfig
    from sedppl.inference.npe.card import load_npe

    # models/survey, the default its numbers were measured with (k̂ 0.65 with the default fine-tuned on the
    # corrected model: reliable, but above this test's 0.5); its prior differs from the target's in the floor only
    posterior, card = load_npe(MODEL.parent / "survey")
    assert card.bands == model.bands and card.prior().params == model.prior.params
    star = reference_star(model)
    result = ImportanceSampler(posterior, card.model(marginalize_scale=True), model,
                               ISConfig(proposals=4000, draws=100, stars_per_call=1)).sample(
        jax.random.key(4), *star, progress=False)
    assert result.khat[0] < 0.5, result.khat
    smc = smc_draws.combined_log_evidence[0] + np.log(valid_prior_mass(model, n=20_000))  # mass to ~0.3%
    assert abs(result.log_evidence[0] - smc) < 0.5, (result.log_evidence[0], smc, smc_draws.log_evidence[0])
