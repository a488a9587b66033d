"""The model room: everything the inference engines share, written once."""

from .atmospheres import LIBRARIES, load_library
from .extinction import Fitzpatrick99, fitzpatrick99
from .forward import PARAMS, dilution_mag, forward_model, many_magnitudes
from .generative import SEDModel, log_joint, log_prior, sed_model
from .likelihood import scale_conditional, scale_marginal_log_likelihood, total_sigma
from .passbands import REGISTRY, SURVEY_BANDS
from .priors import Prior, PriorError
from .simulate import NoiseModel, simulate_catalog
from .surveys import SurveyNoise

__all__ = [
    "LIBRARIES", "PARAMS", "REGISTRY", "SURVEY_BANDS", "Fitzpatrick99", "NoiseModel", "Prior", "PriorError",
    "SEDModel", "SurveyNoise", "dilution_mag", "fitzpatrick99", "forward_model", "load_library", "log_joint", "log_prior",
    "many_magnitudes", "scale_conditional", "scale_marginal_log_likelihood", "sed_model", "simulate_catalog", "total_sigma",
]
