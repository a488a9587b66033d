"""The sampler's coordinates change the geometry, never the posterior."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import unconstrain_fn

from sedppl.inference.batching import scale_marginal_potential
from sedppl.inference.coordinates import AV_SOFT_FLOOR, sampler_coordinates
from sedppl.model.forward import PARAMS
from sedppl.model.generative import sed_model
from sedppl.model.simulate import simulate_catalog


@pytest.fixture(scope="module")
def star():
    model = sed_model(marginalize_scale=True)
    t = simulate_catalog(jax.random.key(4), 1, sed_model())
    bands = model.bands
    mag = jnp.array([float(t[b][0]) for b in bands])
    err = jnp.array([float(t[f"{b}_err"][0]) for b in bands])
    mask = jnp.isfinite(mag)
    return model, (err, mask, jnp.nan_to_num(mag)), {p: float(t[f"true_{p}"][0]) for p in PARAMS}


def test_both_maps_give_the_model_its_own_density(star):
    model, data, truth = star
    lo, hi = model.support()["av"]
    maps = {m: scale_marginal_potential(model, m) for m in ("logit", "softplus")}
    for av in (0.004, 0.02, 0.3, 2.0, 9.0):  # at the floor, near it, in the bulk, far out
        values = {p: jnp.asarray(v) for p, v in (truth | {"av": av}).items()}
        densities = []
        for av_map, (_, sampled, potential, _) in maps.items():
            u = (z := unconstrain_fn(sampled, data, {}, values))["av"]
            if av_map == "logit":
                s = jax.nn.sigmoid(u)
                log_jac = jnp.log((hi - lo) * s * (1 - s))
            else:
                log_jac = jax.nn.log_sigmoid(u / AV_SOFT_FLOOR)
            # the other four parameters' Jacobians are the same under both maps: compare differences
            densities.append(-potential(*data)(z) - log_jac)
        assert np.isfinite(densities[0])
        np.testing.assert_allclose(densities[0], densities[1], rtol=2e-6, atol=1e-4, err_msg=f"av={av}")  # float32


def test_softplus_is_linear_above_the_floor_and_reaches_it_only_in_the_limit(star):
    model, data, truth = star
    sampled = sampler_coordinates(model, "softplus")
    lo = model.support()["av"][0]
    u = np.array([unconstrain_fn(sampled, data, {}, {**truth, "av": lo + d})["av"] for d in (0.5, 1.0, 1e-6)])
    assert abs((u[1] - u[0]) - 0.5) < 1e-5  # unit slope in the bulk: the Teff-A_V ridge stays straight
    assert u[2] < -0.5  # the floor itself is at minus infinity


def test_an_unknown_map_is_refused(star):
    with pytest.raises(ValueError, match="av_map"):
        sampler_coordinates(star[0], "probit")


def test_above_the_prior_the_softplus_coordinates_have_no_density(star):
    """The softplus reaches past A_V's upper prior bound: there the potential must be +inf, so that no
    draw can leave the prior."""
    model, data, truth = star
    hi = model.support()["av"][1]
    _, sampled, potential, _ = scale_marginal_potential(model, "softplus")
    for av in (hi + 0.01, hi + 3.0):
        z = unconstrain_fn(sampled, data, {}, {p: jnp.asarray(v) for p, v in (truth | {"av": av}).items()})
        assert potential(*data)(z) == np.inf, av
