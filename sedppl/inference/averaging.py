"""Bayesian model averaging over atmosphere libraries: each library's posterior weighted by its evidence.

Every library is somewhat wrong, and which one is less wrong depends on the star. Fitted under libraries
L = 1..K with an engine that yields the evidence Z_L = p(photometry | L) (tempered SMC or NPE-IS), the averaged
posterior is sum_L w_L p(theta | photometry, L) with w_L = Z_L / sum_K Z_K under equal prior odds, as
ARIADNE averages its atmosphere models. The pooled draws of a star take round(n w_L) draws of library L
(largest remainders), chosen at random from that library's equal-weight draws.

The evidences compare libraries only if every library has the same prior: ``shared_prior`` sets the
stellar parameters' bounds to the range all the libraries cover (a prior bound of "grid" would otherwise
be each library's own, and a wider range a lower density, an Occam penalty unrelated to the fit). Each
library's model still keeps only its own validity region (holes, the logg floor): SMC's evidence is
relative to the prior restricted to that region, so it is multiplied by the region's prior mass
(``valid_prior_mass``) to be relative to the one prior, as if each library's likelihood were zero where it
has no model. Without it a library with a smaller region would gain odds on every star. NPE-IS's evidence
(the mean raw importance weight, ``importance.log_mean_ratio``) is relative to the one prior already.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import jax
import numpy as np
from jaxtyping import Float
from numpyro.infer import Predictive

from ..model.atmospheres import load_library
from ..model.forward import PARAMS
from ..model.generative import log_prior
from ..model.priors import Prior, PriorError

MIN_WEIGHT = 0.05  # a library below this share hardly moves the pooled draws: its misfit flags are not the star's


@dataclass
class LibraryAverage:
    """The libraries behind an averaged fit and each one's evidence and weight per star."""

    libraries: tuple[str, ...]
    log_evidence: Float[np.ndarray, "star library"]
    weight: Float[np.ndarray, "star library"]

    @property
    def dominant(self) -> np.ndarray:
        """(star,) index of the library with the largest weight."""
        return np.argmax(np.nan_to_num(self.weight, nan=-1.0), axis=1)


def shared_prior(prior: Prior, libraries) -> Prior:
    """``prior`` with teff, logg and [M/H] bounded by the range every library in ``libraries`` covers (its
    own bounds where narrower): one prior, the same numbers, under each library."""
    ranges = [load_library(name).bounds for name in libraries]
    shared = {p: (max(r[p][0] for r in ranges), min(r[p][1] for r in ranges)) for p in ranges[0]}
    empty = [p for p, (low, high) in shared.items() if not low < high]
    if empty:
        raise ValueError(f"libraries {', '.join(libraries)} share no range of {', '.join(empty)}")
    try:
        support = prior.support(shared)
    except PriorError as err:
        raise ValueError(f"{err}: the prior lies outside the range libraries {', '.join(libraries)} share "
                         f"({', '.join(f'{p} {low:g} to {high:g}' for p, (low, high) in shared.items())})") from None
    tables = prior.to_dict()
    for name in shared:
        tables[name]["low"], tables[name]["high"] = support[name]
    return Prior.from_dict(tables, source=f"{prior.source}, bounded to the range of {', '.join(libraries)}")


def valid_prior_mass(model, n: int = 200_000, seed: int = 0) -> float:
    """Share of the model's prior where its own log prior density is finite: the library's validity region
    (in the grid, logg above the floor), from ``n`` seeded prior draws (the same number in every run; its
    Monte Carlo error is ~0.1%). Cached per library, forward path, bands and prior, so a process (a Dask
    worker) computes it once."""
    key = (model.forward.library, model.forward.path, model.bands, json.dumps(model.prior.to_dict(), sort_keys=True),
           n, seed)
    if key not in _VALID_MASS:
        draws = Predictive(model.sample_prior, num_samples=n)(jax.random.key(seed))  # logg from its base prior
        log_p = jax.jit(jax.vmap(lambda v: log_prior(model, v)))({p: draws[p] for p in PARAMS})
        _VALID_MASS[key] = float(np.mean(np.isfinite(np.asarray(log_p))))
    return _VALID_MASS[key]


_VALID_MASS: dict[tuple, float] = {}


def library_weights(log_evidence: Float[np.ndarray, "star library"]) -> Float[np.ndarray, "star library"]:
    """Posterior probabilities of the libraries under equal prior odds. A library without a finite evidence
    (its fit failed, or no prior mass where the photometry is) gets weight 0; a star with none gets NaN."""
    log_z = np.where(np.isfinite(log_evidence), log_evidence, -np.inf)
    top = np.max(log_z, axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        relative = np.exp(log_z - np.where(np.isfinite(top), top, 0.0))
        return relative / relative.sum(axis=1, keepdims=True)


def averaged_log_evidence(log_evidence: Float[np.ndarray, "star library"]) -> Float[np.ndarray, " star"]:
    """log of the evidence averaged over the libraries with equal prior odds: log(mean_L Z_L); NaN where a
    library's evidence is unknown (NaN: its fit failed)."""
    log_z = np.where(np.isnan(log_evidence), -np.inf, log_evidence)
    top = np.max(log_z, axis=1)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        mean = safe + np.log(np.exp(log_z - safe[:, None]).mean(axis=1))
    return np.where(np.isnan(log_evidence).any(axis=1), np.nan, mean)


def draw_counts(weight: Float[np.ndarray, " library"], n: int) -> np.ndarray:
    """Integer draws per library summing to ``n``, proportional to ``weight`` (largest remainders)."""
    exact = np.asarray(weight, float) * n
    counts = np.floor(exact).astype(int)
    short = n - counts.sum()
    counts[np.argsort(-(exact - counts), kind="stable")[:short]] += 1
    return counts


def pool(seeds, draws: list[dict[str, np.ndarray]], weight: Float[np.ndarray, "star library"]) -> dict[str, np.ndarray]:
    """Each star's draws from every library (``draws[L][p]``: (star, chain, draw), the same n per library)
    pooled in proportion to ``weight`` into (star, 1, n), each library's subset random and the pool shuffled
    (NumPy ``seeds``, one per star). A star without weights (NaN) keeps the first library's draws."""
    names = list(draws[0])
    n_star = weight.shape[0]
    flat = [{p: d[p].reshape(n_star, -1) for p in names} for d in draws]
    n = flat[0][names[0]].shape[1]
    out = {p: np.empty((n_star, 1, n), flat[0][p].dtype) for p in names}
    for s in range(n_star):
        rng = np.random.default_rng(seeds[s])
        counts = draw_counts(weight[s], n) if np.all(np.isfinite(weight[s])) else np.eye(len(draws), dtype=int)[0] * n
        picks = [rng.permutation(n)[:c] for c in counts]
        order = rng.permutation(n)  # one chain of exchangeable draws, not the libraries one after another
        for p in names:
            out[p][s, 0] = np.concatenate([f[p][s, pick] for f, pick in zip(flat, picks)])[order]
    return out
