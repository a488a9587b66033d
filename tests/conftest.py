import os
import warnings

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The suite's time is mostly XLA compiling programs it runs briefly: LLVM's level 0 compiles them ~35% faster
# (BENCHMARKS.md, "Compilation"). Results may differ from XLA's default level in the last bits; a level named
# in XLA_FLAGS wins.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
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


# Heaviest files first, so that two workers (``--dist loadfile``) end together instead of one finishing
# a long file alone: seconds per file from a full run (2026-12-01, 2-core CPU, empty compilation cache).
# A file not listed is quick and runs after these; the numbers only order, they assert nothing.
FILE_SECONDS = {  # CI of 2026-12-01 (29d8aea); test_nuts first: test_cli and notebook 01 reuse its NUTS program
    "tests/inference/test_nuts.py": 360, "tests/inference/test_smc.py": 262, "tests/io/test_fit.py": 256,
    "tests/inference/test_importance.py": 199, "tests/io/test_cli.py": 190, "tests/inference/npe/test_train.py": 163,
    "tests/model/test_astrometry.py": 157, "notebooks/01_fit_one_star.ipynb": 140, "tests/io/test_partitions.py": 127,
    "notebooks/02_swap_a_prior.ipynb": 123, "tests/model/test_band_tables.py": 120, "tests/model/test_generative.py": 106,
    "tests/io/test_run.py": 99, "tests/inference/npe/test_posterior.py": 73, "notebooks/03_small_sbc.ipynb": 64,
    "tests/model/test_forward.py": 60, "tests/inference/npe/test_pretrained.py": 58, "tests/io/test_wheel.py": 57,
    "tests/diagnostics/test_ood.py": 55, "tests/io/test_fit_astrometry.py": 21,
}


def pytest_collection_modifyitems(session, config, items):
    root = config.rootpath

    def seconds(item):
        return FILE_SECONDS.get(item.path.relative_to(root).as_posix(), 0)

    items.sort(key=lambda item: -seconds(item))  # stable: a file's tests keep their order


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Seconds per file (setup, call and teardown of its tests), heaviest first: the numbers for FILE_SECONDS."""
    per_file: dict[str, float] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) in ("setup", "call", "teardown") and hasattr(report, "duration"):
                path = report.nodeid.split("::")[0]
                per_file[path] = per_file.get(path, 0.0) + report.duration
    heavy = sorted(((s, f) for f, s in per_file.items() if s >= 20), reverse=True)
    if heavy:
        terminalreporter.write_sep("=", "seconds per file (>= 20 s; tests/conftest.py FILE_SECONDS)")
        for seconds, path in heavy:
            terminalreporter.write_line(f"{seconds:7.1f}  {path}")
        terminalreporter.write_line(f"{sum(per_file.values()):7.1f}  all {len(per_file)} files")
