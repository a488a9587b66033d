"""The NPE posterior: the support bijection, draws inside the prior box, exact log densities."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sedppl.inference.npe.posterior import Architecture, BoxSupport, ConditionalAffine, NPEPosterior, fold_condition
from sedppl.model.forward import PARAMS

TINY = Architecture(width=16, depth=1, heads=2, summary_dim=8, flow_layers=2, flow_width=16, knots=4)


@pytest.mark.parametrize("support_map", ["standardized", "logit"])
def test_box_support_round_trip_and_log_det(model, support_map):
    box = BoxSupport(model.support(), support_map)
    x = jax.random.normal(jax.random.key(0), (5,)) * 2
    y, log_det = box.transform_and_log_det(x)
    x_back, inv_log_det = box.inverse_and_log_det(y)
    np.testing.assert_allclose(x_back, x, atol=2e-3)
    np.testing.assert_allclose(inv_log_det, -log_det, rtol=1e-4)
    jac = jax.jacobian(lambda v: box.transform_and_log_det(v)[0])(x)
    np.testing.assert_allclose(log_det, np.log(np.abs(np.linalg.det(np.asarray(jac, np.float64)))), atol=1e-3)


def test_standardized_support_keeps_the_prior_inside_the_splines_range(model):
    """Where the splines are the identity (beyond +-interval) a flow can reach only by widening its base,
    whose far tails then fall as isolated draws far from a narrow posterior. The standardized map keeps
    the prior inside; the legacy logit map leaves ~7% of the A_V prior (A_V below ~0.1) outside."""
    from sedppl.inference.npe.simulations import TrainingNoise, simulate_batch

    params = simulate_batch(jax.random.key(0), model, TrainingNoise(), 20_000)["params"]
    interval = Architecture().interval
    for support_map, limit in (("standardized", 1e-3), ("logit", None)):
        box = BoxSupport(model.support(), support_map)
        x = np.asarray(jax.vmap(box.inverse)(params))
        outside = np.mean(np.abs(x) > interval, axis=0)
        if limit:
            assert np.all(outside < limit), dict(zip(PARAMS, outside))
            assert np.all(np.std(x, axis=0) < 1.3), dict(zip(PARAMS, np.std(x, axis=0)))
        else:
            assert outside[PARAMS.index("av")] > 0.03


def test_cards_without_a_support_map_are_read_as_the_legacy_logit_map():
    assert Architecture().support_map == "standardized"
    assert Architecture.from_card({"width": 16}).support_map == "logit"
    assert Architecture.from_card(Architecture().to_dict()) == Architecture()
    with pytest.raises(ValueError, match="support_map"):
        Architecture(support_map="probit")


def test_conditional_affine_starts_as_identity_then_round_trips_with_its_log_det():
    layer = ConditionalAffine(jax.random.key(0), cond_dim=8, width=16)
    x, c = jax.random.normal(jax.random.key(1), (5,)), jax.random.normal(jax.random.key(2), (8,))
    y, log_det = layer.transform_and_log_det(x, c)
    np.testing.assert_array_equal(y, x)
    assert log_det == 0.0
    params, static = eqx.partition(layer, eqx.is_inexact_array)
    nudged = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.key(3), a.shape), params)
    trained = eqx.combine(nudged, static)
    y, log_det = trained.transform_and_log_det(x, c)
    assert not np.allclose(y, x)
    x_back, inv_log_det = trained.inverse_and_log_det(y, c)
    np.testing.assert_allclose(x_back, x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(inv_log_det, -log_det, rtol=1e-6)
    jac = jax.jacobian(lambda v: trained.transform_and_log_det(v, c)[0])(x)
    np.testing.assert_allclose(log_det, np.log(np.abs(np.linalg.det(np.asarray(jac, np.float64)))), rtol=1e-4)


@pytest.fixture(scope="module", params=["maf", "coupling"])
def posterior(model, request):
    architecture = Architecture(**TINY.to_dict() | {"flow": request.param, "conditional_affine": True})
    return NPEPosterior(jax.random.key(1), len(model.bands), model.support(), model.prior.nominal_floor, architecture)


def test_only_known_flows_are_built():
    assert Architecture.from_card({"width": 16}).flow == "maf"  # cards written before the choice
    with pytest.raises(ValueError, match="flow must be one of"):
        Architecture(flow="realnvp")


def test_a_coupling_flow_samples_in_one_pass_per_layer(model):
    """The point of the coupling flow: a draw runs its layers once, as a density does, where the MAF's
    draw loops over the five dimensions inside each layer (read from the scans of the traced programs)."""
    import re

    nb = len(model.bands)
    loops = {}
    for flow in ("maf", "coupling"):
        architecture = Architecture(**TINY.to_dict() | {"flow": flow})
        post = NPEPosterior(jax.random.key(1), nb, model.support(), 0.02, architecture)
        c = post.summary(jnp.full(nb, 0.05), jnp.ones(nb, bool), jnp.zeros(nb))
        sample = jax.make_jaxpr(lambda k: post.flow.sample_and_log_prob(k, (1,), condition=c))(jax.random.key(0))
        density = jax.make_jaxpr(lambda x: post.flow.log_prob(x, condition=c))(jnp.zeros(len(PARAMS)))
        loops[flow] = [sorted(int(n) for n in re.findall(r"length=(\d+)", str(j))) for j in (sample, density)]
    layers = [TINY.flow_layers]
    assert loops["coupling"] == [layers, layers]
    assert loops["maf"] == [sorted(layers + [len(PARAMS)]), layers]


def test_a_coupling_flow_folds_the_summary_once_per_star(model):
    """A coupling flow's draws and pushes compute the summary's share of each conditioner once per star
    (FoldedConditioner: the per-draw first layer reads the 2 untransformed inputs, not 2 + summary): the
    same draws, log q and pushes as the flow evaluated per draw. A MAF is left as it is."""
    nb = len(model.bands)
    post = NPEPosterior(jax.random.key(5), nb, model.support(), 0.02, Architecture(**TINY.to_dict() | {"flow": "coupling"}))
    err, mask = jnp.full(nb, 0.05), jnp.arange(nb) % 2 == 0
    mag = 10 + jax.random.normal(jax.random.key(6), (nb,))
    c = post.summary(err, mask, mag)
    folded = fold_condition(post.flow, c).bijection.bijections[0].bijection.bijections[0].conditioner
    assert folded.mlp.layers[0].weight.shape == (TINY.flow_layers, TINY.flow_width, 2)
    x, log_q = post.sample_and_log_prob(jax.random.key(7), 500, err, mask, mag)
    x_ref, log_q_ref = post.flow.sample_and_log_prob(jax.random.key(7), (500,), condition=c)
    np.testing.assert_allclose(x, x_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_q, log_q_ref, atol=1e-4)
    z = jax.random.normal(jax.random.key(8), (200, len(PARAMS)))
    pushed, log_det = post.push(z, c)
    pushed_ref, log_det_ref = jax.vmap(lambda zi: post.flow.bijection.transform_and_log_det(zi, c))(z)
    np.testing.assert_allclose(pushed, pushed_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_det, log_det_ref, atol=1e-4)
    maf = NPEPosterior(jax.random.key(5), nb, model.support(), 0.02, TINY)
    assert fold_condition(maf.flow, c) is maf.flow


def test_draws_stay_in_the_prior_box_and_log_q_is_consistent(model, posterior):
    nb = len(model.bands)
    err, mask = jnp.full(nb, 0.05), jnp.arange(nb) % 3 != 0
    mag = 10 + jax.random.normal(jax.random.key(2), (nb,))
    x, log_q = posterior.sample_and_log_prob(jax.random.key(3), 4000, err, mask, mag)
    support = model.support()
    for i, p in enumerate(PARAMS):
        lo, hi = support[p]
        assert np.all((x[:, i] >= lo) & (x[:, i] <= hi)), p
    again = jax.vmap(lambda v: posterior.log_prob(v, err, mask, mag))(x)
    assert np.all(np.isfinite(log_q))
    np.testing.assert_allclose(again, log_q, atol=5e-2)  # float32 inversion of splines and sigmoid near edges


def test_summary_ignores_a_common_magnitude_shift(model, posterior):
    """The flow sees centred magnitudes: the scale is marginalised, not learned."""
    nb = len(model.bands)
    err, mask = jnp.full(nb, 0.05), jnp.ones(nb, bool)
    mag = 10 + jax.random.normal(jax.random.key(4), (nb,))
    np.testing.assert_allclose(posterior.summary(err, mask, mag), posterior.summary(err, mask, mag - 12.0), atol=1e-4)
