import os
import warnings

os.environ.setdefault("JAX_PLATFORMS", "cpu")
warnings.filterwarnings("ignore", message=".*NumPy 2.*")

import jax  # noqa: E402
import pytest  # noqa: E402

# Identical programs (the same sampler on the same shapes) recur across tests: compile them once. The
# environment carries the cache to the processes tests start (Dask workers, CLI subprocesses) as well.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "jax")))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


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
    """NUTS on one star as a reference for other methods (``sedppl.diagnostics.reference``)."""
    from sedppl.diagnostics.reference import nuts_reference

    return nuts_reference


@pytest.fixture(scope="session")
def reference_star():
    """The Sun-like dwarf of the agreement tests: ``star(model, bands=..., err_mag=...)``."""
    from sedppl.diagnostics.reference import reference_star

    return reference_star
