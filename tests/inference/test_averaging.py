"""Averaging over atmosphere libraries: weights from evidences (against scipy), pooled draws in exact
proportion, drawn only from each library's own draws, the same for the same seed."""

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from sedppl.inference.averaging import LibraryAverage, averaged_log_evidence, draw_counts, library_weights, pool


def test_weights_are_the_posterior_odds_and_survive_failed_libraries():
    log_z = np.array([[-10.0, -12.5], [-5000.0, -4990.0], [-3.0, np.nan], [-np.inf, -np.inf], [1.0, 1.0]])
    w = library_weights(log_z)
    np.testing.assert_allclose(w[:2], softmax(log_z[:2], axis=1), rtol=1e-12)  # -5000: no underflow to 0/0
    np.testing.assert_array_equal(w[2], [1.0, 0.0])  # a library whose fit gave no evidence gets nothing
    assert np.all(np.isnan(w[3]))  # no library explains the star: no weights at all
    np.testing.assert_array_equal(w[4], [0.5, 0.5])
    np.testing.assert_allclose(averaged_log_evidence(log_z[:2]), logsumexp(log_z[:2], axis=1) - np.log(2), rtol=1e-12)
    assert averaged_log_evidence(log_z[3:4])[0] == -np.inf
    assert np.isnan(averaged_log_evidence(log_z[2:3])[0])  # one library's evidence unknown: so is the average
    np.testing.assert_array_equal(LibraryAverage(("a", "b"), log_z, w).dominant, [0, 1, 0, 0, 0])


@pytest.mark.parametrize("n", [1, 7, 1000])
def test_draw_counts_are_proportional_and_sum_to_n(n):
    for weight in ([0.5, 0.5], [0.999, 0.001], [0.2, 0.3, 0.5], [1.0, 0.0], [1 / 3, 1 / 3, 1 / 3]):
        counts = draw_counts(np.array(weight), n)
        assert counts.sum() == n and np.all(counts >= 0)
        assert np.all(np.abs(counts - n * np.array(weight)) < 1)


def test_pooled_draws_come_from_each_library_in_proportion():
    rng = np.random.default_rng(0)
    n = 400
    draws = [{"teff": rng.normal(5000, 10, (3, 2, n // 2)), "logg": rng.normal(4, 0.1, (3, 2, n // 2))},
             {"teff": rng.normal(6000, 10, (3, 2, n // 2)), "logg": rng.normal(3, 0.1, (3, 2, n // 2))}]
    weight = np.array([[0.25, 0.75], [1.0, 0.0], [np.nan, np.nan]])
    pooled = pool([1, 2, 3], draws, weight)
    assert pooled["teff"].shape == (3, 1, n)
    from_second = pooled["teff"][:, 0] > 5500
    np.testing.assert_array_equal(from_second.sum(axis=1), [300, 0, 0])  # a star without weights: the first library
    for s in range(3):  # each pooled draw is one of the library's own (teff and logg of the same draw)
        for lib, chosen in enumerate((~from_second[s], from_second[s])):
            pairs = set(zip(draws[lib]["teff"][s].ravel(), draws[lib]["logg"][s].ravel()))
            assert set(zip(pooled["teff"][s, 0, chosen], pooled["logg"][s, 0, chosen])) <= pairs
            assert len(set(pooled["teff"][s, 0, chosen])) == chosen.sum()  # without repeats
    np.testing.assert_array_equal(pool([1, 2, 3], draws, weight)["teff"], pooled["teff"])  # same seeds, same draws
    assert not np.array_equal(pool([4, 2, 3], draws, weight)["teff"][0], pooled["teff"][0])


def test_every_library_gets_the_same_prior():
    """Phoenix covers 2300-12000 K and Kurucz 3500-50000 K: with bounds of "grid", each library's own prior
    would be another density (log-uniform Teff: 1/ln(12000/2300) against 1/ln(50000/3500)), an Occam factor
    unrelated to the fit. The shared prior is bounded by the common range, the same under both."""
    from sedppl.inference.averaging import shared_prior
    from sedppl.model.generative import sed_model
    from sedppl.model.priors import Prior

    prior = shared_prior(Prior.default(), ("phoenix", "kurucz"))
    assert prior.to_dict()["teff"] == {"dist": "loguniform", "low": 3500.0, "high": 12000.0}
    assert (prior.to_dict()["logg"]["low"], prior.to_dict()["logg"]["high"]) == (0.1, 5.0)  # default 0.1-5.5
    point = {"teff": 5000.0, "logg": 4.5, "mh": -0.2}
    densities = []
    for library in ("phoenix", "kurucz"):
        model = sed_model(library, ("gaia_g",), prior)
        dists = model.prior.distributions(model.grid_bounds)
        densities.append([float(dists[p].log_prob(v)) for p, v in point.items()])
    np.testing.assert_allclose(densities[0], densities[1], rtol=1e-6)
    assert densities[0][0] == pytest.approx(-np.log(5000.0 * np.log(12000 / 3500)), rel=1e-5)
    with pytest.raises(ValueError, match="outside the range libraries phoenix, kurucz share .teff 3500 to 12000"):
        shared_prior(Prior.from_dict(Prior.default().to_dict() | {"teff": {"dist": "loguniform", "low": 2400.0,
                                                                             "high": 3000.0}}), ("phoenix", "kurucz"))


def test_each_evidence_is_put_on_the_one_prior_by_its_validity_mass():
    """SMC's evidence is relative to the prior restricted to the library's validity region; the regions differ
    (holes, logg floors), so each is scaled by its prior mass: the share of prior draws where the model's log
    prior is finite. Checked on the same draws against the region written out (in the grid, logg above the
    floor), and for BOSZ, whose photometric grid has its own holes and floor."""
    import jax
    from numpyro.infer import Predictive

    from sedppl.inference.averaging import shared_prior, valid_prior_mass
    from sedppl.model.generative import sed_model
    from sedppl.model.priors import Prior

    libraries = ("phoenix", "kurucz", "bosz")
    prior = shared_prior(Prior.default(), libraries)
    masses = {}
    for library in libraries:
        model = sed_model(library, ("gaia_g",), prior, marginalize_scale=True)
        masses[library] = valid_prior_mass(model, n=20_000, seed=3)
        draws = Predictive(model.sample_prior, num_samples=20_000)(jax.random.key(3))
        params = np.stack([np.asarray(draws[p]) for p in ("teff", "logg", "mh", "av", "rv")], axis=-1)
        floor = np.asarray(jax.vmap(model.forward.logg_floor)(params[:, 0], params[:, 2]))
        inside = np.asarray(jax.vmap(model.forward.in_grid)(params)) & (params[:, 1] >= floor)
        assert masses[library] == np.mean(inside), (library, np.mean(inside), masses[library])
        assert valid_prior_mass(model, n=20_000, seed=3) is masses[library]  # cached: computed once per process
    assert 0.7 < masses["phoenix"] < 0.95 and 0.7 < masses["kurucz"] < 0.95 and 0.6 < masses["bosz"] < 0.9
    assert len(set(masses.values())) == 3
