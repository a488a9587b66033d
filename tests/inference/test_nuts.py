"""NUTS on the model: agreement with the NumPyro reference, and interval coverage on simulations."""

import arviz_stats as azs
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sedppl.diagnostics.sbc import binomial_band, interval_coverage, pit_values
from sedppl.inference.nuts import NUTSConfig, NUTSSampler, _restart_stuck_chains, numpyro_reference
from sedppl.io.catalog import read_catalog
from sedppl.io.fit import REPORTED, FitResult, fit_catalog
from sedppl.model.forward import PARAMS
from sedppl.model.generative import sed_model
from sedppl.model.simulate import NoiseModel, simulate_catalog

# One program for the NumPyro comparison, the 8-star fit, tests/io/test_cli.py's fit and notebook 01 (the
# 26-band default model, this config): compiled once per CI run, then read from JAX's compilation cache.
SHORT = NUTSConfig(chains=2, draws=300, warmup=300, retry=False)
BANDS = ("gaia_g", "gaia_bp", "gaia_rp", "sdss_u", "ps1_g", "ps1_i", "2mass_j", "2mass_h", "2mass_ks", "wise_w1", "wise_w2")


def test_blackjax_agrees_with_the_numpyro_reference():
    """Same star (11 of the model's bands observed), same model: posterior means agree within Monte Carlo
    error, and so do 16/84% quantiles."""
    model = sed_model()
    truth = jnp.array([5400.0, 4.5, -0.2, 0.4, 3.1])
    mu = model.magnitudes(truth, -1.0)
    mask = np.isin(model.bands, BANDS)
    err = np.full(len(mask), 0.02)
    noise = np.random.default_rng(0).normal(0, 0.0283, len(mask))  # err and floor in quadrature
    mag = np.where(mask, np.asarray(mu) + noise, 0.0)
    ours = NUTSSampler(model, SHORT).sample(jax.random.key(0), err[None], mask[None], mag[None], progress=False)
    ref = numpyro_reference(jax.random.key(1), model, err, mask, mag, chains=2, draws=SHORT.draws, warmup=SHORT.warmup)
    for p in ("teff", "logg", "av", "theta_mas"):
        a, b = ours.params[p][0], ref[p]
        se = np.hypot(float(azs.mcse(a, chain_axis=0, draw_axis=1)), float(azs.mcse(b, chain_axis=0, draw_axis=1)))
        assert abs(a.mean() - b.mean()) < 4 * se + 1e-6 * abs(b.mean()), p
        for q in (0.16, 0.84):
            se_q = np.hypot(*[float(azs.mcse(x, method="quantile", prob=q, chain_axis=0, draw_axis=1)) for x in (a, b)])
            assert abs(np.quantile(a, q) - np.quantile(b, q)) < 4 * se_q, (p, q)


N_FIT = 8


@pytest.fixture(scope="module")
def simulated_fit(tmp_path_factory):
    model = sed_model()
    table = simulate_catalog(jax.random.key(11), N_FIT, model, NoiseModel(p_missing=0.3))
    broken = {c: np.nan for c in table.colnames if c != "id"} | {"id": "broken", "gaia_g": 10.0, "gaia_g_err": -1.0}
    table.add_row(broken)  # rejected by input validation
    out = tmp_path_factory.mktemp("fit")
    return table, fit_catalog(read_catalog(table), "nuts", out=out, config=SHORT, progress=False), out


@pytest.mark.slow
def test_intervals_cover_the_truth_at_nominal_rates():
    """68% and 95% intervals on 60 stars simulated as ``sedppl simulate`` does (all survey bands, default
    noise) contain the truth at their nominal rates. A star's six parameters are not independent, so each
    parameter is counted over the 60 stars (3-sigma binomial band for 60), not pooled as 360 truths."""
    n = 60
    model = sed_model()
    table = simulate_catalog(jax.random.key(11), n, model)
    config = NUTSConfig(chains=4, draws=500, warmup=500, retry=False)
    post = fit_catalog(read_catalog(table), "nuts", config=config, progress=False).posterior["posterior"]
    for level in (0.68, 0.95):
        lo, hi = binomial_band(level, n)
        for p in REPORTED:
            pit = pit_values(np.moveaxis(post[p].values, -1, 0), np.asarray(table[f"true_{p}"]))
            assert lo <= interval_coverage(pit, level) <= hi, (p, level)


def test_fit_outputs(simulated_fit):
    from astropy.table import Table

    table, result, out = simulated_fit
    summary = Table.read(out / "summary.parquet")
    assert len(summary) == N_FIT + 1 and list(summary["id"]) == list(table["id"])
    for p in ("teff", "logg", "mh", "av", "rv", "theta_mas"):
        for q in ("median", "p16", "p84"):
            assert f"{p}_{q}" in summary.colnames
    for col in ("id", "method", "n_bands", "rhat_max", "ess_bulk_min", "n_divergent", "seconds", "flag"):
        assert col in summary.colnames
    broken = summary[summary["id"] == "broken"][0]
    assert broken["flag"].startswith("input:") and np.isnan(broken["teff_median"])
    fitted = summary[summary["id"] != "broken"]
    assert np.all(fitted["seconds"] > 0)
    tree = FitResult.read(out).posterior
    for p in ("teff", "av", "theta_mas"):  # the summary describes the posterior that was written
        for name, q in (("p16", 16), ("median", 50), ("p84", 84)):
            np.testing.assert_allclose(fitted[f"{p}_{name}"], np.percentile(tree["posterior"][p].values[0], q, axis=0),
                                       rtol=1e-5, err_msg=f"{p}_{name}")
    assert tree["posterior"]["teff"].dims == ("chain", "draw", "star") and tree["posterior"].sizes["star"] == N_FIT
    assert tree["posterior"].sizes["chain"] == 1 and tree["posterior"].sizes["draw"] == 600  # pooled by mode mass
    chains = tree["nuts_chains"]
    assert chains["teff"].dims == ("star", "chain", "draw") and chains.sizes["chain"] == 2
    assert "diverging" in chains and np.isfinite(chains["lp"]).all()
    depth, leapfrogs = chains["tree_depth"].values, chains["n_steps"].values  # d doublings: 2^(d-1) to 2^d - 1 steps
    assert np.all(depth >= 1) and np.all((2 ** (depth - 1) <= leapfrogs) & (leapfrogs <= 2 ** depth - 1))
    np.testing.assert_allclose(chains["chain_weight"].values.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(fitted["n_modes"] >= 1)
    one_mode = fitted["n_modes"] == 1  # then all the mass is that mode's
    assert np.any(one_mode) and np.allclose(fitted["major_mode_weight"][one_mode], 1.0, rtol=1e-5)
    assert list(fitted["trusted"]) == [not f for f in fitted["flag"]]
    assert np.all(fitted["logp_gap"] >= 0)  # the best chain's own gap is 0
    assert np.all((fitted["chains_restarted"] >= 0) & (fitted["chains_restarted"] < 2))  # never the best chain


def test_draws_stay_inside_the_prior_support(simulated_fit):
    _, result, _ = simulated_fit
    support = sed_model().support()
    post = result.posterior["posterior"]
    for p in PARAMS:
        lo, hi = support[p]
        assert float(post[p].min()) >= lo and float(post[p].max()) <= hi, p
    theta = np.log10(post["theta_mas"].values)
    assert theta.min() >= support["log10_theta"][0] and theta.max() <= support["log10_theta"][1]
    model = sed_model()
    params = jnp.stack([jnp.asarray(post[p].values.ravel()) for p in PARAMS], -1)
    assert bool(jnp.all(jax.vmap(model.forward.in_grid)(params)))  # and inside the grid's validity region



def test_only_chains_far_below_the_best_restart_from_it():
    """Chains ending warm-up >= gap nats below the best (or at a non-finite density) take the best
    chain's position and tuning; chains within the gap keep their own."""
    from blackjax.mcmc.hmc import HMCState

    logp = jnp.array([-20.0, -12.0, -35.0, jnp.nan])
    state = HMCState({"x": jnp.arange(4.0)[:, None] * jnp.ones((4, 2))}, logp, {"x": jnp.zeros((4, 2))})
    tuned = {"step_size": jnp.array([0.1, 0.2, 0.3, 0.4]), "inverse_mass_matrix": jnp.arange(4.0)[:, None, None] * jnp.eye(2)}
    new_state, new_tuned, moved = _restart_stuck_chains(state, tuned, 10.0)
    assert int(moved) == 2
    np.testing.assert_array_equal(new_state.position["x"][:, 0], [0.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(new_state.logdensity, [-20.0, -12.0, -12.0, -12.0])
    np.testing.assert_array_equal(new_tuned["step_size"], tuned["step_size"][jnp.array([0, 1, 1, 1])])
    np.testing.assert_array_equal(new_tuned["inverse_mass_matrix"][:, 0, 0], [0.0, 1.0, 1.0, 1.0])
    _, _, none_moved = _restart_stuck_chains(state._replace(logdensity=logp.at[3].set(-15.0)), tuned, jnp.inf)
    assert int(none_moved) == 0


def test_use_cpu_cores_only_before_jax_runs():
    import subprocess
    import sys

    from sedppl.io.cli import use_cpu_cores

    jnp.zeros(1).block_until_ready()
    assert use_cpu_cores() == 0  # too late in this process: nothing changes
    code = "import jax; from sedppl.io.cli import use_cpu_cores; n = use_cpu_cores(); print(n, len(jax.devices()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    asked, devices = map(int, done.stdout.split())
    assert asked >= 1 and devices == asked


def test_chains_start_at_given_points_where_they_have_density():
    """init: a finite point with density starts its chain there; NaN, a point outside the prior, or one on its
    edge (finite density, infinite sampler coordinates) falls back to the prior candidates' start (the same one
    as without init)."""
    from numpyro.infer.util import constrain_fn

    model = sed_model(bands=BANDS, marginalize_scale=True)
    sampler = NUTSSampler(model, NUTSConfig(chains=4))
    truth = np.array([5400.0, 4.5, -0.2, 0.4, 3.1])
    err, mask = np.full(len(BANDS), 0.02), np.ones(len(BANDS), bool)
    mag = np.asarray(model.magnitudes(jnp.asarray(truth), -1.0))
    edge = model.support()["teff"][1]
    init = np.stack([truth, np.full(5, np.nan), [1e6, 4.5, -0.2, 0.4, 3.1], [edge, 4.5, -0.2, 0.4, 3.1]])
    key, starting_points = jax.random.key(4), jax.jit(sampler._starting_points)  # compiled: eager ops take 40 s
    z = starting_points(key, err, mask, mag, None, jnp.asarray(init))
    prior_start = starting_points(key, err, mask, mag, None, jnp.full((4, 5), jnp.nan))
    start = jax.vmap(lambda v: constrain_fn(sampler._sampled, (err, mask, mag), {}, v))(z)  # its coordinates
    np.testing.assert_allclose([float(start[p][0]) for p in PARAMS], truth, rtol=1e-4)
    for p in prior_start:
        np.testing.assert_array_equal(np.asarray(z[p][1:]), np.asarray(prior_start[p][1:]))


def test_npe_starts_come_from_the_pretrained_model_or_warn():
    from sedppl.io.fit import Fitter

    table = simulate_catalog(jax.random.key(2), 3, sed_model(bands=BANDS), NoiseModel(p_missing=0.0))
    catalog = read_catalog(table)
    keys = jax.random.split(jax.random.key(0), 3)
    starts = Fitter(catalog, "nuts", nuts_init="npe")._npe_starts(catalog, np.arange(3), keys, False)
    assert starts.shape == (3, 4, 5) and np.all(np.isfinite(starts))
    assert np.all(np.abs(starts[:, :, 0] - np.asarray(table["true_teff"])[:, None]) < 3000)
    with pytest.warns(UserWarning, match="chains start from prior draws"):
        assert Fitter(catalog, "nuts", library="kurucz", nuts_init="npe")._npe_starts(
            catalog, np.arange(3), keys, False) is None


def test_compiled_ahead_then_each_star_reports_its_steps_while_it_runs():
    """``compile`` builds the program ``sample`` runs (nothing is compiled during the sample), and the running
    program reports every 50 of a star's steps: what moves the progress bar within a call and lets the GPU
    benchmark time a call it cannot wait for (``benchmarks/bench_gpu.py``)."""
    from sedppl.inference.batching import STEPS_PER_REPORT, listen_to_steps, reports_in

    model = sed_model()
    table = simulate_catalog(jax.random.key(5), 1, model, NoiseModel(p_missing=0.3))
    cat = read_catalog(table)
    sampler = NUTSSampler(model, SHORT)  # the program of the other tests here: compiled once per CI run
    compiles, heard = [], []
    listener = lambda event, seconds, fun_name="", **_: compiles.append(fun_name)  # noqa: E731
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        assert sampler.compile(cat.err, cat.mask, cat.mag) > 0
        assert "jit(call_of_stars)" in compiles
        compiles.clear()
        with listen_to_steps(heard.append):
            sampler.sample(jax.random.key(0), cat.err, cat.mask, cat.mag, progress=False)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert "jit(call_of_stars)" not in compiles
    assert heard == [STEPS_PER_REPORT] * reports_in(SHORT.warmup + SHORT.draws) == [50] * 11  # one star, lax.map
