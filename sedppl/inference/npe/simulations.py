"""Training simulations for NPE, drawn from the one generative model's prior predictive.

Per star: the five parameters and the scale from the model's prior (draws
outside the grid's validity region are discarded), a subset of bands and
per-band errors from ``TrainingNoise``, then the magnitudes from the model's
own likelihood (systematic floor included) -- never a second simulator.

Fresh simulations are drawn for every training batch, inside the compiled
epoch: a forward-model call costs less than the network's gradient, so an
endless stream is nearly free and the network can never overfit a buffer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float
from numpyro.infer import Predictive

from ...model.forward import PARAMS
from ...model.generative import SEDModel, stack_params
from ...model.likelihood import total_sigma
from ...model.priors import SCALE
from ...model.simulate import NoiseModel, observed_magnitudes, survey_star
from ...model.surveys import SurveyNoise, survey_of

SURVEY_OVERDRAW = 4  # candidates per training star under the survey noise model


@dataclass(frozen=True)
class TrainingNoise:
    """How training stars' errors and band subsets are drawn (documented in the model card).

    Errors: a star's depth level s is log-uniform on [err_min, err_max]; each band's
    error is s times a log-normal factor (``band_scatter_dex``), clipped to the
    range. Real catalogs look like this -- a bright star is precise in every
    survey, but surveys differ in depth -- and the range 0.003-0.3 mag spans
    bright Gaia photometry to faint GALEX/WISE detections.

    Bands: with probability ``p_survey`` whole surveys are present or absent
    (each with probability 1/2, then each of its bands with 0.9), as in a real
    cross-match; otherwise the number of bands is uniform on [min_bands, all]
    and the subset is uniform. At least ``min_bands`` are always kept.
    """

    err_min: float = 0.003
    err_max: float = 0.3
    band_scatter_dex: float = 0.25
    p_survey: float = 0.5
    min_bands: int = 3

    def __post_init__(self):
        if not 0 < self.err_min < self.err_max:
            raise ValueError(f"need 0 < err_min < err_max, got {self.err_min}, {self.err_max}")
        if not 0 <= self.p_survey <= 1:
            raise ValueError(f"p_survey must be in [0, 1], got {self.p_survey}")

    def to_dict(self) -> dict:
        return asdict(self)

    def error_range(self, bands: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Per band, the smallest and largest error training draws (out-of-range errors are flagged)."""
        return np.full(len(bands), self.err_min), np.full(len(bands), self.err_max)

    def draw(self, key: jax.Array, surveys: np.ndarray) -> tuple[Float[Array, " nb"], Bool[Array, " nb"]]:
        """Errors and presence mask of one star; ``surveys`` (NumPy) gives each band's survey index."""
        nb = len(surveys)
        k_level, k_scatter, k_mode, k_k, k_u, k_survey, k_band = jax.random.split(key, 7)
        lo, hi = np.log10(self.err_min), np.log10(self.err_max)
        level = jax.random.uniform(k_level, minval=lo, maxval=hi)
        log_err = jnp.clip(level + self.band_scatter_dex * jax.random.normal(k_scatter, (nb,)), lo, hi)
        u = jax.random.uniform(k_u, (nb,))
        rank = jnp.argsort(jnp.argsort(u))  # a random order of the bands
        k = jax.random.randint(k_k, (), self.min_bands, nb + 1)
        uniform_subset = rank < k
        survey_on = jax.random.bernoulli(k_survey, 0.5, (int(surveys.max()) + 1,))
        by_survey = survey_on[surveys] & jax.random.bernoulli(k_band, 0.9, (nb,))
        mask = jnp.where(jax.random.bernoulli(k_mode, self.p_survey), by_survey, uniform_subset)
        return 10.0**log_err, mask | (rank < self.min_bands)


def survey_index(bands: tuple[str, ...]) -> np.ndarray:
    """Survey of each band (the name before the first underscore), as small integers."""
    names = [survey_of(b) for b in bands]
    order = list(dict.fromkeys(names))
    return np.asarray([order.index(n) for n in names])


def centre(mag_err: Array, mask: Array, mag: Array, sys_floor: float) -> tuple[Array, Array]:
    """Magnitudes minus their inverse-variance weighted mean (0 where absent), and log10 errors.

    The scale (angular diameter) shifts every magnitude by one constant, so the
    centred magnitudes carry all the information on the five parameters."""
    w = jnp.where(mask, 1.0 / total_sigma(mag_err, sys_floor) ** 2, 0.0)
    mag = jnp.where(mask, mag, 0.0)
    reference = jnp.sum(w * mag) / jnp.sum(w)
    return jnp.where(mask, mag - reference, 0.0), jnp.where(mask, jnp.log10(jnp.where(mask, mag_err, 1.0)), 0.0)


def simulate_batch(key: jax.Array, model: SEDModel, noise: TrainingNoise | SurveyNoise, size: int) -> dict[str, Array]:
    """``size`` training stars: params (size, 5), log10_theta (size,), err, mask, mag (size, nb), all valid.

    Parameters are drawn twice over (``SURVEY_OVERDRAW`` times under ``SurveyNoise``, which also
    rejects stars the catalogue would not hold) and the first ``size`` valid ones kept, so the
    shape is fixed under jit (the default prior keeps ~88% of draws; a batch short of valid
    draws, a vanishing chance, repeats its first star).
    """
    if model.marginalize_scale:
        raise ValueError("training simulations need the model with the scale sampled (marginalize_scale=False)")
    if isinstance(noise, SurveyNoise):  # a catalogue holds only the stars it detected: draw candidates, keep those
        star = jax.vmap(lambda k: survey_star(k, model, noise))(jax.random.split(key, SURVEY_OVERDRAW * size))
        keep = jnp.nonzero(star["ok"], size=size, fill_value=jnp.argmax(star["ok"]))[0]
        return {"params": stack_params(star)[keep], "log10_theta": star[SCALE][keep], "err": star["err"][keep],
                "mask": star["mask"][keep], "mag": star["mag"][keep]}
    k_prior, k_noise, k_mag = jax.random.split(key, 3)
    prior = Predictive(model.sample_prior, num_samples=2 * size)(k_prior)
    params = stack_params(prior)
    ok = jax.vmap(model.forward.in_grid)(params)
    keep = jnp.nonzero(ok, size=size, fill_value=jnp.argmax(ok))[0]
    latent = {k: prior[k][keep] for k in PARAMS + (SCALE,)}
    surveys = survey_index(model.bands)
    err, mask = jax.vmap(lambda k: noise.draw(k, surveys))(jax.random.split(k_noise, size))
    mag = jax.vmap(lambda k, v, e, m: observed_magnitudes(k, model, v, e, m))(
        jax.random.split(k_mag, size), latent, err, mask)
    return {"params": params[keep], "log10_theta": latent[SCALE], "err": err, "mask": mask, "mag": mag}


ADDED_SINCE = {"survey": {"error_scatter": 0.0, "dropout": 0.0}}  # keys a noise model gained, and what a card without one meant


def card_noise(settings: dict) -> TrainingNoise | SurveyNoise:
    """The noise model a card (or checkpoint) records: as ``training_noise``, except that a key added to the
    model since the card was written means what the code did then (a survey card without ``error_scatter``
    was trained on errors without scatter), not today's default."""
    kind = settings.get("kind", "ideal")
    return training_noise(ADDED_SINCE.get(kind, {}) | dict(settings))


def catalog_noise(settings: dict) -> NoiseModel | SurveyNoise:
    """The noise ``simulate_catalog`` draws for stars like a card's training stars: its survey noise, or for
    a model trained on idealised noise ``simulate``'s idealised ``NoiseModel`` (``TrainingNoise`` draws
    training batches only, not catalogues)."""
    noise = card_noise(settings)
    return noise if isinstance(noise, SurveyNoise) else NoiseModel()


def training_noise(settings: dict) -> TrainingNoise | SurveyNoise:
    """The noise model of a ``[noise]`` table or a model card: ``kind = "survey"`` or "ideal" (the default,
    and what a card written before the survey model means)."""
    settings = dict(settings)
    kind = settings.pop("kind", "ideal")
    cls = {"ideal": TrainingNoise, "survey": SurveyNoise}.get(kind)
    if cls is None:
        raise ValueError(f"[noise] kind must be 'ideal' or 'survey', got {kind!r}")
    unknown = set(settings) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"[noise] kind = {kind!r} has unknown key(s) {sorted(unknown)}; "
                         f"allowed: {sorted(f.name for f in fields(cls))}")
    return cls(**settings)
