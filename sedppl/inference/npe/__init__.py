"""Neural posterior estimation on simulations of the one model.

- ``simulations``: training stars from the model's prior predictive, with the training noise model
- ``encoder``: the permutation-invariant set transformer over band tokens
- ``posterior``: encoder + masked autoregressive or coupling flow + fixed map onto the prior's box
- ``train``: the training loop (``sedppl train``)
- ``card``: model cards, saving and checked loading
- ``estimator``: posterior draws for a catalog, with grid-hole rejection and the exact scale
"""

from .card import ModelCard, ModelMismatchError, load_npe, save_npe
from .estimator import NPEDraws, NPEEstimator
from .posterior import Architecture, NPEPosterior
from .simulations import TrainingNoise, simulate_batch
from .train import TrainConfig, train

__all__ = [
    "Architecture", "ModelCard", "ModelMismatchError", "NPEDraws", "NPEEstimator", "NPEPosterior",
    "TrainConfig", "TrainingNoise", "load_npe", "save_npe", "simulate_batch", "train",
]
