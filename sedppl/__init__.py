"""sedppl: Bayesian stellar SED fitting with NUTS and neural posterior estimation on one model.

The package has four rooms; arrows point towards the model:

- ``sedppl.model``        priors, atmosphere libraries, passbands, extinction, forward model, likelihood,
                          and the one NumPyro generative model (``SEDModel``)
- ``sedppl.inference``    NUTS, NPE and importance sampling on that model
- ``sedppl.diagnostics``  SBC, coverage, method comparison
- ``sedppl.io``           catalogs, outputs and the command line
"""

from .io.catalog import Catalog, CatalogError, read_catalog, write_table
from .model import (
    PARAMS,
    NoiseModel,
    Prior,
    SEDModel,
    forward_model,
    load_library,
    log_joint,
    scale_marginal_log_likelihood,
    sed_model,
    simulate_catalog,
)

__version__ = "0.1.0"
__all__ = [
    "PARAMS", "Catalog", "CatalogError", "NoiseModel", "Prior", "SEDModel", "forward_model", "load_library",
    "log_joint", "read_catalog", "scale_marginal_log_likelihood", "sed_model", "simulate_catalog", "write_table",
]
