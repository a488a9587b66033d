import os
import warnings

os.environ.setdefault("JAX_PLATFORMS", "cpu")
warnings.filterwarnings("ignore", message=".*NumPy 2.*")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def phoenix():
    from sedppl.model.atmospheres import load_library

    return load_library("phoenix")


@pytest.fixture(scope="session")
def model():
    from sedppl.model.generative import sed_model

    return sed_model()
