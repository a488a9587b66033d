"""Simulated catalogs from the model's prior predictive.

Two noise models, recorded in the table's metadata (``sedppl_noise_kind``): the
survey model (``surveys.SurveyNoise``, the default: errors, detection and
footprint from the star's own magnitudes) and the idealised one, ``NoiseModel``:

- each band's error is drawn per star from a log-uniform distribution on
  [err_min, err_max] (default 0.005 to 0.1 mag), the range of most survey
  photometry between bright and faint limits;
- each band is absent independently with probability ``p_missing`` (default
  0.2); if fewer than ``min_bands`` remain, the ``min_bands`` bands with the
  largest uniform draws are kept;
- the magnitudes are then drawn by NumPyro ``Predictive`` from the one
  generative model with those errors (so the systematic floor is part of the
  noise, as the likelihood assumes), and draws outside the grid's validity
  region are rejected and redrawn.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from astropy.table import Table
from numpyro import handlers
from numpyro.infer import Predictive

from .astrometry import GAIA_DR3_PARALLAX_ZERO_POINT, AstrometricPrior, sample_mass_and_distance_prior, size_and_distance
from .checks import is_whole
from .corrections import correction_name
from .forward import PARAMS, dilution_mag, vmap_in_blocks
from .generative import SEDModel, stack_params
from .priors import SCALE
from .surveys import SurveyNoise


@dataclass(frozen=True)
class NoiseModel:
    """How simulated per-band errors and missing bands are drawn."""

    err_min: float = 0.005
    err_max: float = 0.1
    p_missing: float = 0.2
    min_bands: int = 3

    def __post_init__(self):
        if not is_whole(int(self.min_bands) if isinstance(self.min_bands, np.integer) else self.min_bands, 1):
            raise ValueError(f"min_bands must be a whole number >= 1, got {self.min_bands!r}")
        if not (np.isfinite(self.err_min) and np.isfinite(self.err_max)):
            raise ValueError(f"err_min and err_max must be finite, got {self.err_min}, {self.err_max}")
        if not 0 < self.err_min <= self.err_max:
            raise ValueError(f"need 0 < err_min <= err_max, got {self.err_min}, {self.err_max}")
        if not 0 <= self.p_missing < 1:
            raise ValueError(f"p_missing must be in [0, 1), got {self.p_missing}")

    def draw(self, key: jax.Array, n: int, n_bands: int) -> tuple[jax.Array, jax.Array]:
        """Per-band errors (n, nb) and presence mask (n, nb)."""
        if self.min_bands > n_bands:
            raise ValueError(f"min_bands={self.min_bands} but only {n_bands} bands requested")
        k_err, k_mask = jax.random.split(key)
        log_err = jax.random.uniform(k_err, (n, n_bands), minval=np.log(self.err_min), maxval=np.log(self.err_max))
        u = jax.random.uniform(k_mask, (n, n_bands))
        kth_largest = -jnp.sort(-u, axis=1)[:, self.min_bands - 1 : self.min_bands]
        mask = (u >= self.p_missing) | (u >= kth_largest)
        return jnp.exp(log_err), mask


def prior_predictive(key: jax.Array, model: SEDModel, mag_err: jax.Array, mask: jax.Array) -> dict[str, np.ndarray]:
    """One prior-predictive draw per star (rows of mag_err/mask), all inside the grid's validity region."""
    return _until_valid(functools.partial(_prior_rows, model), key, mag_err.shape[0], mag_err, mask)


def survey_predictive(key: jax.Array, model: SEDModel, noise: SurveyNoise, n: int) -> dict[str, np.ndarray]:
    """n prior-predictive stars under the survey noise model: inside the grid, and each with at least
    ``noise.min_bands`` bands in the catalogue. Adds each star's ``err`` and ``mask``."""
    return _first_valid(functools.partial(_survey_rows, model, noise), key, n)


def survey_star(key: jax.Array, model: SEDModel, noise: SurveyNoise) -> dict[str, jax.Array]:
    """One prior-predictive star under the survey noise model: its latent values, errors and presence from
    its true magnitudes, observed magnitudes (every band), and ``ok``: inside the grid with enough bands."""
    if model.marginalize_scale:
        raise ValueError("simulations need the model with the scale sampled (marginalize_scale=False)")
    if noise.min_bands > len(model.bands):
        raise ValueError(f"min_bands={noise.min_bands} but only {len(model.bands)} bands requested")
    k_prior, k_noise, k_mag = jax.random.split(key, 3)
    latent = {k: v[0] for k, v in Predictive(model.sample_prior, num_samples=1)(k_prior).items() if k != "in_grid"}
    params = stack_params(latent)
    err, mask = noise.draw(k_noise, model.bands, model.magnitudes(params, latent[SCALE]))
    mag = observed_magnitudes(k_mag, model, {k: latent[k] for k in PARAMS + (SCALE,)}, err, mask)
    ok = model.forward.in_grid(params) & (jnp.sum(mask) >= noise.min_bands)
    return latent | {"mag": mag, "err": err, "mask": mask, "ok": ok}


def observed_magnitudes(key: jax.Array, model: SEDModel, latent: dict, err, mask) -> jax.Array:
    """One star's magnitudes drawn by the model's own likelihood given its latent values (every band)."""
    conditioned = handlers.seed(handlers.condition(model, latent), key)
    return handlers.trace(conditioned).get_trace(err, mask)["mag"]["value"]


def _until_valid(draw, key: jax.Array, n: int, *per_star) -> dict[str, np.ndarray]:
    """Rows of ``draw(keys, *per_star)`` (a dict with a boolean "ok") until every one of the n is ok.

    Each round redraws every star not yet ok, in a batch of fixed shape so that
    the draw compiles once.
    """
    out: dict[str, np.ndarray] = {}
    todo = np.arange(n)
    for _ in range(100):
        key, sub = jax.random.split(key)
        rows = np.resize(todo, n)  # the stars still to draw, repeated to the fixed batch size
        sample = draw(jax.random.split(sub, n), *(a[rows] for a in per_star))
        sample = {k: np.asarray(v) for k, v in sample.items()}
        ok = sample.pop("ok")[: len(todo)]
        for k, v in sample.items():
            out.setdefault(k, np.zeros((n,) + v.shape[1:], v.dtype))[todo[ok]] = v[: len(todo)][ok]
        todo = todo[~ok]
        if len(todo) == 0:
            return out
    raise RuntimeError("prior draws keep falling outside the grid; is the prior disjoint from the library?")


def _first_valid(draw, key: jax.Array, n: int, batch: int = 1024, rounds: int = 200) -> dict[str, np.ndarray]:
    """n ok rows of ``draw(keys)`` (exchangeable candidates: no per-star inputs), taken in draw order from
    batches of fixed size; a ValueError when fewer pass than ``rounds`` batches can supply."""
    batch = max(batch, n)
    parts, found = [], 0
    for _ in range(rounds):
        key, sub = jax.random.split(key)
        sample = {k: np.asarray(v) for k, v in draw(jax.random.split(sub, batch)).items()}
        ok = sample.pop("ok")
        parts.append({k: v[ok] for k, v in sample.items()})
        found += int(ok.sum())
        if found >= n:
            return {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0]}
    raise ValueError(f"only {found} of {rounds * batch} prior draws fall inside the grid with enough bands in "
                     f"the catalogue ({n} needed): choose bands that more stars are detected in, or a lower min_bands")


# Compiled once per model structure and batch shape (the model's arrays are arguments, its settings static),
# so a second simulation under an equal model does not compile again. The programs stay in JAX's caches for
# the process (a loop over thousands of priors keeps thousands; ``jax.clear_caches()`` drops them).
# Large batches are drawn in blocks (``forward.vmap_in_blocks``): the same draws (to float32 rounding)
# in bounded memory.
@eqx.filter_jit
def _survey_rows(model: SEDModel, noise: SurveyNoise, keys: jax.Array) -> dict[str, jax.Array]:
    return vmap_in_blocks(lambda k: survey_star(k, model, noise), keys)


@eqx.filter_jit
def _prior_rows(model: SEDModel, keys: jax.Array, err: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
    def one(key, err, mask):
        sample = {k: v[0] for k, v in Predictive(model, num_samples=1)(key, err, mask).items() if k != "in_grid"}
        sample["ok"] = model.forward.in_grid(stack_params(sample))
        return sample

    return vmap_in_blocks(lambda row: one(*row), (keys, err, mask))


def noise_settings(noise: NoiseModel | SurveyNoise) -> dict:
    """The noise model as recorded in a table's metadata and a model card (``kind``: "ideal" or "survey")."""
    return noise.to_dict() if isinstance(noise, SurveyNoise) else {"kind": "ideal", **asdict(noise)}


def simulate_catalog(key: jax.Array, n: int, model: SEDModel, noise: NoiseModel | SurveyNoise = SurveyNoise()) -> Table:
    """A catalog of n simulated stars (input format of ``read_catalog``) with ``true_*`` columns.

    ``noise``: ``surveys.SurveyNoise`` (the default, as the default NPE model was trained: errors,
    detection and footprint from the star's magnitudes) or ``NoiseModel`` (idealised: errors and
    missing bands drawn blind to the star)."""
    n = int(n) if isinstance(n, np.integer) else n
    if not is_whole(n):
        raise TypeError(f"n must be a whole number of stars, got {n!r}")
    if n < 1:
        raise ValueError(f"need at least one star, got n={n}")
    if not isinstance(noise, (NoiseModel, SurveyNoise)):
        raise TypeError(f"noise must be a simulate.NoiseModel or a surveys.SurveyNoise, got {noise!r}")
    k_noise, k_draw = jax.random.split(key)
    if isinstance(noise, SurveyNoise):
        sample = survey_predictive(k_draw, model, noise, n)
        err, mask = sample.pop("err"), sample.pop("mask")
    else:
        err, mask = noise.draw(k_noise, n, len(model.bands))
        sample = prior_predictive(k_draw, model, err, mask)
        err, mask = np.asarray(err), np.asarray(mask)
    if not np.all(np.isfinite(sample["mag"])):
        raise RuntimeError("forward model produced non-finite magnitudes")  # never expected
    width = len(str(n))
    table = Table({"id": [f"sim{i:0{width}d}" for i in range(n)]})
    for j, band in enumerate(model.bands):
        table[band] = np.where(mask[:, j], sample["mag"][:, j], np.nan).round(5)
        table[f"{band}_err"] = np.where(mask[:, j], err[:, j], np.nan).round(5)
    for p in PARAMS + (SCALE,):
        table[f"true_{p}"] = sample[p]
    table["true_theta_mas"] = sample["theta_mas"]
    table.meta.update(
        {
            "sedppl_library": model.forward.library,
            "sedppl_forward": model.forward.path,
            "sedppl_correction": correction_name(model.correction),
            "sedppl_prior": model.prior.source,
            "sedppl_sys_floor": model.prior.sys_floor,
            **{f"sedppl_noise_{k}": v for k, v in noise_settings(noise).items()},
        }
    )
    return table


def with_parallaxes(key: jax.Array, table: Table, parallax_error, config: AstrometricPrior = AstrometricPrior(),
                    zero_point: float = GAIA_DR3_PARALLAX_ZERO_POINT) -> Table:
    """The simulated catalogue ``table`` (idealised noise) as seen with parallaxes: each star's mass and
    distance drawn from the astrometric priors (``model.astrometry``), its magnitudes moved to the
    angular diameter they imply (the same noise draw), and ``parallax``, ``parallax_error`` [mas] and
    ``true_radius_rsun``, ``true_distance_pc``, ``true_mass_msun`` added; the parallax carries
    ``zero_point`` (a fit's default removes Gaia DR3's). No dust map: fit it with ``dust_map=None``.
    ``parallax_error``: one number or one per star."""
    if table.meta.get("sedppl_noise_kind", "ideal") != "ideal":
        raise ValueError("with_parallaxes moves magnitudes, so it needs errors blind to the magnitude (ideal noise)")
    n = len(table)
    k_prior, k_plx = jax.random.split(key)
    teff, logg = np.asarray(table["true_teff"], float), np.asarray(table["true_logg"], float)
    log10_mass, u = (np.asarray(a, float) for a in sample_mass_and_distance_prior(k_prior, teff, logg, config))
    distance = 1000.0 / 10.0**u
    sizes = {k: np.asarray(v, float) for k, v in size_and_distance(log10_mass, u, logg).items()}
    shift = np.asarray(dilution_mag(sizes["log10_theta"])) - np.asarray(dilution_mag(np.asarray(table[f"true_{SCALE}"])))
    out = table.copy()
    for name in out.colnames:
        if f"{name}_err" in out.colnames:
            out[name] = (np.asarray(out[name], float) + shift).round(5)
    error = np.broadcast_to(np.asarray(parallax_error, float), (n,))
    out["parallax"] = 1000.0 / distance + zero_point + error * np.asarray(jax.random.normal(k_plx, (n,)))
    out["parallax_error"] = error
    out[f"true_{SCALE}"] = sizes["log10_theta"]
    out["true_theta_mas"] = 10.0 ** sizes["log10_theta"]
    for name in ("radius_rsun", "distance_pc", "mass_msun"):
        out[f"true_{name}"] = sizes[name]
    out.meta["sedppl_astrometry"] = repr(config)
    return out
