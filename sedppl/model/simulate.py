"""Simulated catalogs from the model's prior predictive.

Noise model (documented in the README and recorded in the table's metadata):

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

from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import numpy as np
from astropy.table import Table
from numpyro.infer import Predictive

from .forward import PARAMS
from .generative import SEDModel, stack_params
from .priors import SCALE


@dataclass(frozen=True)
class NoiseModel:
    """How simulated per-band errors and missing bands are drawn."""

    err_min: float = 0.005
    err_max: float = 0.1
    p_missing: float = 0.2
    min_bands: int = 3

    def __post_init__(self):
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
    """One prior-predictive draw per star (rows of mag_err/mask), all inside the grid's validity region.

    Each round redraws every star still outside the grid, in a batch of fixed
    shape so that the draw compiles once.
    """
    draw = _compiled_draw(model)
    n = mag_err.shape[0]
    out: dict[str, np.ndarray] = {}
    todo = np.arange(n)
    for _ in range(100):
        key, sub = jax.random.split(key)
        rows = np.resize(todo, n)  # the stars still to draw, repeated to the fixed batch size
        sample = draw(jax.random.split(sub, n), mag_err[rows], mask[rows])
        sample = {k: np.asarray(v) for k, v in sample.items()}
        ok = sample.pop("ok")[: len(todo)]
        for k, v in sample.items():
            out.setdefault(k, np.zeros((n,) + v.shape[1:], v.dtype))[todo[ok]] = v[: len(todo)][ok]
        todo = todo[~ok]
        if len(todo) == 0:
            return out
    raise RuntimeError("prior draws keep falling outside the grid; is the prior disjoint from the library?")


def _compiled_draw(model: SEDModel):
    def one(key, err, mask):
        sample = {k: v[0] for k, v in Predictive(model, num_samples=1)(key, err, mask).items() if k != "in_grid"}
        sample["ok"] = model.forward.in_grid(stack_params(sample))
        return sample

    return jax.jit(jax.vmap(one))


def simulate_catalog(key: jax.Array, n: int, model: SEDModel, noise: NoiseModel = NoiseModel()) -> Table:
    """A catalog of n simulated stars (input format of ``read_catalog``) with ``true_*`` columns."""
    if n < 1:
        raise ValueError(f"need at least one star, got n={n}")
    k_noise, k_draw = jax.random.split(key)
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
            "sedppl_prior": model.prior.source,
            "sedppl_sys_floor": model.prior.sys_floor,
            **{f"sedppl_noise_{k}": v for k, v in asdict(noise).items()},
        }
    )
    return table
