"""Fit a catalog and write the results: ``summary.parquet`` and ``posterior.nc``.

``fit_catalog`` is what ``sedppl fit`` runs. The summary has one row per input
star, in input order -- stars rejected by input validation included, with
their flag -- and the ArviZ DataTree holds the draws of the fitted stars with
``star`` as a dimension.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import jax
import numpy as np
from astropy.table import Table

from ..diagnostics.convergence import ConvergenceCriteria, star_diagnostics
from ..inference.nuts import NUTSConfig, NUTSSampler, StarDraws
from ..model.forward import PARAMS
from ..model.generative import sed_model
from ..model.priors import Prior
from .catalog import Catalog, read_catalog

REPORTED = PARAMS + ("theta_mas",)
METHODS = ("nuts", "npe")
DEFAULT_NPE_MODEL = Path(__file__).resolve().parents[2] / "models" / "default"
MAX_REJECTED_FRACTION = 0.5  # NPE stars with more of their draws in grid holes are flagged


@dataclass
class FitResult:
    summary: Table
    posterior: object  # xarray.DataTree

    def write(self, out: str | Path) -> dict[str, Path]:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"summary": out / "summary.parquet", "posterior": out / "posterior.nc"}
        self.summary.write(paths["summary"], format="parquet", overwrite=True)
        self.posterior.to_netcdf(paths["posterior"], engine="h5netcdf")
        return paths


def fit_catalog(
    catalog, method: str = "nuts", out: str | Path | None = None, prior: Prior | str | Path | None = None,
    library: str = "phoenix", config: NUTSConfig = NUTSConfig(), seed: int = 0, progress: bool = True,
    criteria: ConvergenceCriteria = ConvergenceCriteria(), npe_model: str | Path | None = None, draws: int | None = None,
) -> FitResult:
    """Fit every usable star of ``catalog`` (a Catalog, a Table or a path) with ``method``.

    ``nuts`` uses ``config``; ``npe`` samples the trained model in ``npe_model``
    (default ``models/default``), ``draws`` per star (default 1000), and refuses
    a model trained for another library or prior.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; available: {METHODS}")
    catalog = catalog if isinstance(catalog, Catalog) else read_catalog(catalog)
    if not isinstance(prior, Prior):
        prior = Prior.load(prior) if prior is not None else Prior.default()
    key = jax.random.key(seed)
    if method == "npe":
        return _fit_npe(catalog, out, prior, library, key, progress, npe_model, draws or 1000)
    if draws is not None:
        config = replace(config, draws=draws)
    model = sed_model(library, catalog.bands, prior, marginalize_scale=True)
    sampler = NUTSSampler(model, config)
    fitted = np.nonzero(catalog.usable)[0]
    draws = sampler.sample(key, catalog.err[fitted], catalog.mask[fitted], catalog.mag[fitted], progress)
    diags = [_diagnose(draws, i, config, criteria) for i in range(len(fitted))]

    failed = [i for i, d in enumerate(diags) if d["flag"]]
    if config.retry and failed:
        retry = sampler.with_config(warmup=2 * config.warmup)
        rows = fitted[failed]
        again = retry.sample(jax.random.fold_in(key, 1), catalog.err[rows], catalog.mask[rows], catalog.mag[rows], progress)
        for j, i in enumerate(failed):
            _replace_star(draws, i, again, j)
            diags[i] = _diagnose(draws, i, config, criteria) | {"retried": True}
            diags[i]["flag"] = (diags[i]["flag"] + " (after retry)") if diags[i]["flag"] else ""

    result = FitResult(_summary(catalog, fitted, draws, diags, method), _posterior(catalog, fitted, draws, model, method))
    if out is not None:
        result.write(out)
    return result


def _fit_npe(catalog: Catalog, out, prior: Prior, library: str, key, progress: bool, npe_model, n_draws: int) -> FitResult:
    from ..inference.npe.card import load_npe
    from ..inference.npe.estimator import NPEEstimator

    path = Path(npe_model) if npe_model is not None else DEFAULT_NPE_MODEL
    present = [b for j, b in enumerate(catalog.bands) if catalog.mask[:, j].any()]
    posterior, card = load_npe(path, bands=present, library=library, prior=prior)
    catalog = catalog.with_bands(card.bands)
    model = card.model(marginalize_scale=True)
    fitted = np.nonzero(catalog.usable)[0]
    draws = NPEEstimator(posterior, model, n_draws).sample(
        key, catalog.err[fitted], catalog.mask[fitted], catalog.mag[fitted], progress)
    diags = [_npe_diagnostics(n_rejected, n_draws) for n_rejected in draws.n_rejected]
    summary = _summary(catalog, fitted, draws, diags, "npe")
    n_rejected = np.full(len(catalog), -1)
    n_rejected[fitted] = draws.n_rejected
    summary["n_rejected"] = n_rejected
    result = FitResult(summary, _posterior(catalog, fitted, draws, model, "npe"))
    result.posterior.attrs["sedppl_npe_model"] = str(path)
    if out is not None:
        result.write(out)
    return result


def _npe_diagnostics(n_rejected: int, n_draws: int) -> dict:
    """NPE has no chains: the MCMC columns are empty; many rejected draws are flagged."""
    fraction = n_rejected / (n_rejected + n_draws)
    flag = f"npe: {fraction:.0%} of draws in grid holes" if fraction > MAX_REJECTED_FRACTION else ""
    return {"rhat_max": np.nan, "ess_bulk_min": np.nan, "ess_tail_min": np.nan, "n_divergent": -1,
            "n_max_treedepth": -1, "step_size": np.nan, "flag": flag, "retried": False}


def _diagnose(draws: StarDraws, i: int, config: NUTSConfig, criteria) -> dict:
    params = {p: draws.params[p][i] for p in REPORTED}
    diag = star_diagnostics(params, draws.diverging[i], draws.tree_depth[i], draws.step_size[i],
                            config.max_tree_depth, criteria)
    return diag | {"retried": False}


def _replace_star(draws: StarDraws, i: int, other: StarDraws, j: int) -> None:
    for p in draws.params:
        draws.params[p][i] = other.params[p][j]
    for name in ("diverging", "tree_depth", "acceptance", "step_size"):
        getattr(draws, name)[i] = getattr(other, name)[j]
    draws.seconds[i] += other.seconds[j]


def _summary(catalog: Catalog, fitted, draws, diags, method: str) -> Table:
    n = len(catalog)
    cols: dict[str, np.ndarray] = {"id": catalog.ids, "method": np.full(n, method), "n_bands": catalog.n_bands}
    for p in REPORTED:
        for name, q in (("median", 50), ("p16", 16), ("p84", 84)):
            col = np.full(n, np.nan)
            col[fitted] = np.percentile(draws.params[p].reshape(len(fitted), -1), q, axis=1)
            cols[f"{p}_{name}"] = col
    for name, fill in (("rhat_max", np.nan), ("ess_bulk_min", np.nan), ("ess_tail_min", np.nan),
                       ("n_divergent", -1), ("n_max_treedepth", -1), ("step_size", np.nan)):
        col = np.full(n, fill, dtype=type(fill) if isinstance(fill, int) else float)
        col[fitted] = [d[name] for d in diags]
        cols[name] = col
    seconds = np.zeros(n)
    seconds[fitted] = draws.seconds
    cols["seconds"] = seconds
    retried = np.zeros(n, bool)
    retried[fitted] = [d["retried"] for d in diags]
    flags = np.array([f"input: {f}" if f else "" for f in catalog.flags], dtype=object)
    flags[fitted] = [d["flag"] for d in diags]
    cols["flag"] = flags.astype(str)
    cols["retried"] = retried
    table = Table(cols)
    table.meta["sedppl_method"] = method
    return table


def _posterior(catalog: Catalog, fitted, draws, model, method: str):
    import arviz_base as azb

    move = lambda a: np.moveaxis(np.asarray(a), 0, -1)  # (star, chain, draw) -> (chain, draw, star)  # noqa: E731
    posterior = {p: move(draws.params[p]) for p in REPORTED}
    if isinstance(draws, StarDraws):
        stats = {"diverging": move(draws.diverging), "tree_depth": move(draws.tree_depth),
                 "acceptance_rate": move(draws.acceptance)}
    else:  # NPE: one "chain"; the flow's log density of each draw, for importance weights
        stats = {"log_q": move(draws.log_q[:, None, :])}
    dims = {name: ["star"] for name in list(posterior) + list(stats)}
    tree = azb.from_dict(
        {"posterior": posterior, "sample_stats": stats},
        dims=dims, coords={"star": catalog.ids[fitted].astype(str)},
    )
    tree.attrs.update({"sedppl_method": method, "sedppl_library": model.forward.library,
                       "sedppl_bands": ",".join(model.bands), "sedppl_prior": model.prior.to_toml()})
    return tree


def default_config(chains: int = 4, draws: int = 1000, warmup: int = 1000, **kw) -> NUTSConfig:
    return replace(NUTSConfig(), chains=chains, draws=draws, warmup=warmup, **kw)
