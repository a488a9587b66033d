import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

from sedppl.model import library_floor
from sedppl.model.forward import PARAMS
from sedppl.model.generative import SEDModel, log_joint, log_prior, sed_model
from sedppl.model.priors import Prior
from sedppl.model.simulate import NoiseModel, simulate_catalog


@pytest.fixture(scope="module")
def star(model):
    err = jnp.full(len(model.bands), 0.03)
    mask = jnp.ones(len(model.bands), bool).at[3:6].set(False)
    truth = {"teff": 5200.0, "logg": 4.5, "mh": -0.2, "av": 0.4, "rv": 3.2, "log10_theta": -1.3}
    mu = model.magnitudes(jnp.array([truth[p] for p in PARAMS]), truth["log10_theta"])
    mag = jnp.where(mask, mu + 0.01, jnp.nan)
    return truth, err, mask, mag


def test_scale_marginal_model_is_the_integral_of_the_full_model(model, star):
    """log p(params, mag) with the scale integrated analytically == numerical integral of the full log-joint."""
    truth, err, mask, mag = star
    marginal = sed_model(prior=model.prior, marginalize_scale=True)
    params = {p: truth[p] for p in PARAMS}
    lj = jax.jit(lambda t: log_joint(model, {**params, "log10_theta": t}, err, mask, mag))
    peak = float(lj(truth["log10_theta"]))
    integral, _ = quad(lambda t: np.exp(float(lj(t)) - peak), -1.5, -1.1, points=[-1.3], limit=200)
    ref = peak + np.log(integral)
    assert float(log_joint(marginal, params, err, mask, mag)) == pytest.approx(ref, abs=2e-3)


def test_log_joint_is_minus_infinity_off_the_grid(model, star):
    truth, err, mask, mag = star
    off = {**truth, "teff": 11900.0, "logg": 0.2}
    assert float(log_joint(model, off, err, mask, mag)) == -np.inf
    assert float(log_prior(model, off)) == -np.inf
    assert np.isfinite(float(log_prior(model, truth)))


def test_missing_bands_do_not_change_the_likelihood_when_nan(model, star):
    truth, err, mask, mag = star
    a = log_joint(model, truth, err, mask, mag)
    b = log_joint(model, truth, err, mask, jnp.where(mask, mag, 99.0))
    assert float(a) == float(b)


def _with_compilations(caplog, fn, *args):
    """``fn(*args)`` and the programs JAX compiled while running it (the start of each "Compiling ..." log line)."""
    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        caplog.clear()
        out = fn(*args)
    return out, [r.getMessage()[:80] for r in caplog.records if r.getMessage().startswith("Compiling")]


def test_simulated_catalog_is_inside_prior_and_grid(model, caplog):
    table = simulate_catalog(jax.random.key(3), 300, model, NoiseModel(p_missing=0.9))
    # another catalogue of that size: compiled already
    _, compiled = _with_compilations(caplog, simulate_catalog, jax.random.key(4), 300, sed_model(), NoiseModel(p_missing=0.9))
    assert not compiled
    support = model.support()
    for p, (lo, hi) in support.items():
        assert np.all((table[f"true_{p}"] >= lo) & (table[f"true_{p}"] <= hi)), p
    params = jnp.asarray(np.column_stack([table[f"true_{p}"] for p in PARAMS]))
    assert bool(jnp.all(jax.vmap(model.forward.in_grid)(params)))
    present = np.column_stack([np.isfinite(table[b]) for b in model.bands])
    errors = np.column_stack([table[f"{b}_err"] for b in model.bands])[present]
    assert present.sum(axis=1).min() >= 3
    assert 0.005 <= errors.min() and errors.max() <= 0.1
    assert 0.75 < 1 - present.mean() < 0.9  # p_missing=0.9, with at least 3 of 26 kept


@pytest.mark.parametrize("floor", [0.02, "libraries"])
def test_simulation_is_reproducible_and_noise_matches_the_model(model, floor, caplog):
    """Standardised residuals of simulated magnitudes against the noiseless model are N(0, 1), with the
    floor each star's own: one number, or the library floor at its true Teff (computed here from the
    table, not through the model). The same simulation under the same model built afresh compiles
    nothing again (the two floors, two priors, get a program each: the residuals would show it if not)."""
    tables = model.prior.to_dict()
    tables["likelihood"]["sys_floor"] = floor
    model = SEDModel(model.forward, Prior.from_dict(tables))
    a = simulate_catalog(jax.random.key(7), 400, model)
    b, compiled = _with_compilations(caplog, simulate_catalog, jax.random.key(7), 400,
                                     SEDModel(model.forward, Prior.from_dict(tables)))  # the same model, built afresh
    assert not compiled
    assert np.array_equal(np.asarray(a["gaia_g"]), np.asarray(b["gaia_g"]), equal_nan=True)
    params = jnp.asarray(np.column_stack([a[f"true_{p}"] for p in PARAMS]))
    mu = np.asarray(jax.vmap(model.magnitudes)(params, jnp.asarray(a["true_log10_theta"])))
    mag = np.column_stack([a[b] for b in model.bands])
    if floor == "libraries":
        table = np.load(Path(library_floor.__file__).parent / "data" / "library_floor.npz")
        columns = [list(table["bands"]).index(b) for b in model.bands]
        floor = np.column_stack([np.interp(np.log10(np.asarray(a["true_teff"])), table["log_teff"],
                                           table["floor"][:, j]) for j in columns])
    sig = np.sqrt(np.column_stack([a[f"{b}_err"] for b in model.bands]) ** 2 + np.asarray(floor) ** 2)
    z = ((mag - mu) / sig)[np.isfinite(mag)]
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03


def test_unconstrained_space_maps_above_the_gravity_floor():
    """Samplers work in NumPyro's unconstrained space; there logg's lower end follows the grid's
    floor, so almost every point is valid (bar interior holes) with a finite log-density and gradient."""
    from numpyro.infer.util import initialize_model

    model = sed_model(marginalize_scale=True)
    nb = len(model.bands)
    args = (jnp.full(nb, 0.05), jnp.ones(nb, bool), jnp.full(nb, 10.0))
    info = initialize_model(jax.random.key(0), model, model_args=args)
    z = {k: 2.0 * jax.random.normal(jax.random.fold_in(jax.random.key(1), i), (2000,))
         for i, k in enumerate(info.param_info.z)}
    values = jax.vmap(info.postprocess_fn)(z)
    params = jnp.stack([values[p] for p in ("teff", "logg", "mh", "av", "rv")], -1)
    valid = np.asarray(jax.vmap(model.forward.in_grid)(params))
    assert valid.mean() > 0.97
    bad = np.asarray(params[~valid])  # Phoenix's interior holes: hot stars at [M/H] = -4, and near 12000 K
    assert np.all((bad[:, 2] < -3) | (bad[:, 0] > 11500))
    logp, grad = jax.vmap(jax.value_and_grad(lambda v: -info.potential_fn(v)))(z)
    assert np.all(np.isfinite(np.asarray(logp)[valid]))
    assert all(np.all(np.isfinite(np.asarray(g)[valid])) for g in grad.values())


def test_ideal_noise_model_refuses_settings_it_cannot_simulate():
    """As ``SurveyNoise`` does: a band count that is not a whole number >= 1 (0 once failed inside JAX, -2
    silently changed the missing-band rate) and an infinite error (once a misleading non-finite-magnitudes error)."""
    for bad in ({"min_bands": 0}, {"min_bands": -2}, {"min_bands": 2.5}, {"min_bands": True}):
        with pytest.raises(ValueError, match="min_bands must be a whole number >= 1"):
            NoiseModel(**bad)
    with pytest.raises(ValueError, match="must be finite"):
        NoiseModel(err_max=np.inf)
    assert NoiseModel(min_bands=np.int64(4)).min_bands == 4


def test_simulate_catalog_refuses_a_count_or_noise_it_cannot_use():
    """Once Python's own errors from deep inside (a float n, a text n, noise=None); True counted as one star."""
    model = sed_model()
    for bad in (2.5, "3", True, None):
        with pytest.raises(TypeError, match="n must be a whole number of stars"):
            simulate_catalog(jax.random.key(0), bad, model)
    with pytest.raises(ValueError, match="need at least one star"):
        simulate_catalog(jax.random.key(0), 0, model)
    with pytest.raises(TypeError, match="noise must be"):
        simulate_catalog(jax.random.key(0), 3, model, noise=None)
    assert len(simulate_catalog(jax.random.key(0), np.int64(2), model, noise=NoiseModel())) == 2
