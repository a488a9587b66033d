import os
import warnings

os.environ.setdefault("JAX_PLATFORMS", "cpu")
warnings.filterwarnings("ignore", message=".*NumPy 2.*")

import jax  # noqa: E402
import pytest  # noqa: E402

# Identical programs (the same sampler on the same shapes) recur across tests: compile them once.
jax.config.update("jax_compilation_cache_dir", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "jax"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


@pytest.fixture(scope="session")
def phoenix():
    from sedppl.model.atmospheres import load_library

    return load_library("phoenix")


@pytest.fixture(scope="session")
def model():
    from sedppl.model.generative import sed_model

    return sed_model()


@pytest.fixture(scope="session")
def nuts_reference():
    """NUTS on one star (4 chains x (500 + 500)) as a reference for other methods; refuses to serve
    as one unless its chains agree (with 2 chains, one once sat in a minor mode on another CPU)."""
    import numpy as np
    from arviz_stats.base import array_stats

    from sedppl.inference.nuts import NUTSConfig, NUTSSampler

    def run(model, err, mask, mag):
        nuts = NUTSSampler(model, NUTSConfig(chains=4, draws=500, warmup=500, stars_per_call=1)).sample(
            jax.random.key(0), err, mask, mag, progress=False)
        draws = np.stack([nuts.params[p][0] for p in ("teff", "logg", "mh", "av", "rv")], axis=-1)
        rhat = np.asarray(array_stats.rhat(draws, chain_axis=0, draw_axis=1))
        assert rhat.max() < 1.05, f"NUTS reference not converged: R-hat {rhat.round(3)}"
        return nuts

    return run


GAIA_2MASS_WISE = ("gaia_g", "gaia_bp", "gaia_rp", "2mass_j", "2mass_h", "2mass_ks", "wise_w1", "wise_w2")


@pytest.fixture(scope="session")
def reference_star():
    """One simulated Sun-like dwarf (Teff 5600 K, logg 4.4, [M/H] -0.1, A_V 0.5, R_V 3.1) observed in
    ``bands`` at ``err_mag``: (err, mask, mag), each with a leading star axis of one."""
    import jax.numpy as jnp
    import numpy as np

    def star(model, bands=GAIA_2MASS_WISE, err_mag=0.05):
        mu = np.asarray(model.forward.magnitudes(jnp.array([5600.0, 4.4, -0.1, 0.5, 3.1]), -1.3))
        err, mask = np.full(len(model.bands), err_mag), np.isin(model.bands, bands)
        mag = mu + np.random.default_rng(3).normal(0, np.hypot(err_mag, model.prior.sys_floor), len(mu))
        return err[None], mask[None], mag[None]

    return star
