"""Fit a catalog and write the results: ``summary.parquet`` and the draws in ``posterior/`` (``io.run``).

``fit_catalog`` is what ``sedppl fit`` runs. The summary has one row per input
star, in input order -- stars rejected by input validation included, with
their flag -- and the ArviZ DataTree holds the draws of the fitted stars with
``star`` as a dimension.

The ``posterior`` group always holds equal-weight draws of the posterior. For
NUTS these are the chains pooled with each mode's estimated mass
(``inference.modes``), so one chain per dimension ``chain``; the chains as
sampled, their sampler statistics, weights and mode labels are in the group
``nuts_chains``. A star is ``trusted`` when it was fitted by an exact method
(nuts, smc, or npe-is with reliable weights) whose own diagnostics pass.
"""

from __future__ import annotations

import shutil
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from astropy.table import Table

from ..diagnostics import ood
from ..diagnostics.convergence import ConvergenceCriteria, mode_rhat_ess, star_diagnostics
from ..inference.averaging import (MIN_WEIGHT, LibraryAverage, averaged_log_evidence, library_weights, pool,
                                   shared_prior, valid_prior_mass)
from ..inference.batching import fold_rows
from ..inference.importance import RESCUE_STREAMS, ISConfig
from ..inference.nuts import NUTSConfig, NUTSSampler, StarDraws
from ..inference.smc import SMCConfig, SMCDraws, SMCSampler
from ..model.forward import PARAMS
from ..model import astrometry as astro
from ..model.atmospheres import library_names
from ..model.corrections import correction_name, describe, for_library
from ..model.generative import sed_model
from ..model.offsets import BandOffsets
from ..model.priors import Prior
from .catalog import Catalog, catalog_astrometry, read_catalog
from .columns import DIAGNOSTICS, Verdict, summary_column, verdict_columns

REPORTED = PARAMS + ("theta_mas",)
SIZES = ("radius_rsun", "distance_pc", "mass_msun")  # reported where the catalogue has parallaxes
NPE_IGNORES = "plain npe ignores the parallax and the dust map (npe-is, nuts and smc use them)"


def reported(params: dict) -> tuple[str, ...]:
    """The quantities a fit reports: the five parameters and theta, and radius, distance and mass when
    the stars had parallaxes."""
    return REPORTED + tuple(p for p in SIZES if p in params)
METHODS = ("nuts", "smc", "npe", "npe-is")
AVERAGING = ("smc", "npe-is")  # methods that yield each library's evidence
FALLBACKS = ("nuts", "smc")
FALLBACK_STREAM = 2  # the fallback's fold of a star's key: not one of the rescues'
assert FALLBACK_STREAM not in RESCUE_STREAMS
INITS = ("prior", "npe")  # where NUTS chains start: the best of prior candidates, or NPE draws
MIN_DIVERSITY = 0.1  # SMC: fewer distinct particles than this share after the last reweighting is a collapse
MIN_ACCEPTANCE = 0.1  # SMC: HMC moves at the posterior that accept less than this do not refresh the particles


def _default_npe_model() -> Path:
    """The default NPE model: the copy an installed wheel ships as ``sedppl/pretrained/default``
    (pyproject maps ``models/`` there), else ``models/default`` of a source checkout."""
    package = Path(__file__).resolve().parents[1]
    candidates = (package / "pretrained" / "default", package.parent / "models" / "default")
    return next((c for c in candidates if (c / "card.json").exists()), candidates[0])


DEFAULT_NPE_MODEL = _default_npe_model()
MAX_REJECTED_FRACTION = 0.5  # NPE stars with more of their draws in grid holes are flagged


@dataclass
class FitResult:
    summary: Table
    posterior: object  # xarray.DataTree

    def write(self, out: str | Path) -> dict[str, Path]:
        """Write to ``out`` in the layout of a finished streamed run (``io.run``): ``summary.parquet``,
        ``posterior/000000.nc`` and ``run.json``; a result already there is replaced."""
        import json

        from .run import OURS, RUN_FILE, atomic_write

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for name in OURS:
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        paths = {"summary": out / "summary.parquet", "posterior": out / "posterior" / "000000.nc"}
        paths["posterior"].parent.mkdir()
        atomic_write(paths["posterior"], lambda tmp: self.posterior.to_netcdf(tmp, engine="h5netcdf"))
        atomic_write(paths["summary"], lambda tmp: self.summary.write(tmp, format="parquet"))
        record = {"status": "complete", "chunks": 1, "identity": {"written_by": "FitResult.write"}}
        atomic_write(out / RUN_FILE, lambda tmp: tmp.write_text(json.dumps(record, indent=1) + "\n"))
        return paths

    @classmethod
    def read(cls, out: str | Path) -> FitResult:
        """The fit that ``write``, ``fit_catalog(out=...)`` or ``sedppl fit --out`` left in ``out``; refuses a
        run that has not finished (``run.UnfinishedRunError``)."""
        import xarray as xr

        from .run import UnfinishedRunError, check_finished, read_posterior

        out = Path(out)
        if not (out / "summary.parquet").exists() and not (out / "run.json").exists():
            raise FileNotFoundError(f"{out} holds no fit: no summary.parquet")
        record = check_finished(out)
        try:
            summary = Table.read(out / "summary.parquet")
        except FileNotFoundError:
            raise FileNotFoundError(f"{out} holds no fit: no summary.parquet (its run.json says it finished)") from None
        except Exception as err:  # pyarrow's errors do not name the file
            raise UnfinishedRunError(f"{out / 'summary.parquet'} cannot be read ({err}): the fit is damaged; "
                                     "rerun it with --overwrite") from err
        if (out / "posterior.nc").exists():  # written before results were streamed in chunks
            return cls(summary, xr.open_datatree(out / "posterior.nc", engine="h5netcdf").load())
        posterior = read_posterior(out)
        _check_draws_present(out, summary, posterior, record.get("identity", {}).get("keep_draws"))
        return cls(summary, posterior)


def _check_draws_present(out: Path, summary: Table, posterior, keep_draws: int | None) -> None:
    """Refuse a fit whose stored draws lack fitted stars (draw files removed or lost after the run finished),
    unless the run kept none (``keep_draws=0``): such a fit would read as whole."""
    from .run import UnfinishedRunError

    if keep_draws == 0 or "teff_median" not in summary.colnames:
        return
    fitted = np.asarray(summary["id"]).astype(str)[np.isfinite(np.asarray(summary["teff_median"], float))]
    stored = posterior["posterior"]["star"].values.astype(str) if "posterior" in posterior.children else []
    lost = np.setdiff1d(fitted, stored)
    if lost.size:
        raise UnfinishedRunError(f"{out}: the draws of {lost.size} fitted star(s) are missing from posterior/ "
                                 f"({', '.join(map(repr, lost[:5]))}{' ...' if lost.size > 5 else ''}): files were "
                                 "removed or lost; rerun the fit with --overwrite")


@dataclass
class _Fitted:
    """Draws of the fitted stars, however they were produced: params (star, chain, draw)."""

    params: dict[str, np.ndarray]
    seconds: np.ndarray
    verdicts: list[Verdict]
    methods: np.ndarray  # (star,) method that produced each star's draws
    stats: dict[str, np.ndarray]  # sample_stats, (star, chain, draw)
    extra: dict[str, np.ndarray]  # summary columns declared in ``columns.COLUMNS``, (star,)
    importance: object = None  # importance.ISDraws for npe-is: proposals and weights
    chains: StarDraws | None = None  # nuts: the chains as sampled, with their weights and modes
    libraries: LibraryAverage | None = None  # averaged over libraries (smc or npe-is): each one's evidence and weight


def fit_catalog(
    catalog, method: str = "nuts", out: str | Path | None = None, prior: Prior | str | Path | None = None,
    library: str = "phoenix", config: NUTSConfig = NUTSConfig(), seed: int = 0, progress: bool = True,
    criteria: ConvergenceCriteria = ConvergenceCriteria(), npe_model: str | Path | None = None,
    draws: int | None = None, importance: ISConfig = ISConfig(), fallback: str | bool | None = "smc",
    smc: SMCConfig = SMCConfig(), nuts_init: str = "prior", chunk: int | None = None, overwrite: bool = False,
    keep_draws: int | None = None, workers: int | None = None, scheduler: str | None = None, forward: str = "fast",
    parallax_zero_point: float = astro.GAIA_DR3_PARALLAX_ZERO_POINT, dust_map: str | None = "SFD",
    offsets: str | Path | BandOffsets | None = None, use_parallax: bool = True, correction: str = "default",
) -> FitResult:
    """Fit every usable star of ``catalog`` (a Catalog, a Table or a path) with ``method``.

    - ``nuts``: NUTS on the model under ``prior`` (default prior if None), run as ``config``; chains
      pooled with each mode's mass.
      ``nuts_init="npe"`` starts each chain at a draw of the NPE model (``npe_model``, default
      ``models/default``) where its bands allow, instead of the best of the prior candidates.
    - ``smc``: adaptive tempered SMC on the same model, run as ``smc``. With several libraries
      (``library="phoenix,kurucz"``) each star is fitted under each, and the posteriors are averaged by
      their evidence (``inference.averaging``); the summary gives each library's weight and evidence.
    - ``npe``: the trained model in ``npe_model`` (default ``models/default``), ``draws`` per star
      (default 1000); the prior must be the one it was trained under (None: that one).
    - ``npe-is``: NPE proposals importance-weighted to the model under ``prior`` (None: the
      training prior), as ``importance``; a different prior is fine while the proposals cover it, and so
      is another library's model (``library``): its evidence is the mean raw weight, so several libraries
      are averaged as with smc. Stars with k̂ or ESS out of bounds are refitted with ``fallback`` ("smc",
      the default: faster than NUTS and trusted more often on the hard stars that reach it; "nuts"; None or
      False: flagged only; when averaging, SMC averaging).

    A catalogue with ``parallax`` and ``parallax_error`` columns [mas] (and ``ra``, ``dec`` [deg]) is fitted
    with the astrometric model (``model.astrometry``): the parallax less ``parallax_zero_point``, and an
    A_V prior from ``dust_map`` ("SFD", "Planck13" or None) scaled by distance; radius, distance and mass
    are reported (``use_parallax=False`` ignores the columns). Plain ``npe`` cannot use them and says so
    in the summary.

    ``offsets`` (a ``model.offsets.BandOffsets`` or its TOML file, from ``sedppl calibrate-offsets``)
    corrects each band before fitting: magnitude minus offset, scatter added to the error; the summary
    keeps the input photometry as read.

    ``correction`` is the library's empirical correction (``model.corrections``): "default" (Phoenix: its
    M-dwarf offsets), "none" or a correction's name. Plain ``npe`` keeps the correction its NPE was
    trained with (its card's); npe-is weights to the fit's.

    Every method flags stars whose photometry the model does not fit (``diagnostics.ood``). Each star's
    draws depend on ``seed`` and its id only, not on the other stars or the chunk it is fitted in.

    With ``out``, the fit streams into that folder (``io.run``): ``chunk`` rows at a time (default per
    method), each chunk written as it finishes, an interrupted run resumed by the same call, a folder
    holding another run refused unless ``overwrite``; ``keep_draws`` thins the stored posterior to that
    many draws per star (0: the summary only). The result is then read back from ``out``.

    A folder as ``catalog`` is a partitioned dataset (Parquet files, or a HATS catalogue: ``partitions``):
    it needs ``out``, and runs its partitions as Dask tasks on ``workers`` local processes or on the
    cluster at ``scheduler`` (neither: in this process).
    """
    from .partitions import fit_dataset, is_partitioned

    if is_partitioned(catalog):
        if out is None:
            raise ValueError("a partitioned catalogue (a folder) is fitted into a run folder: pass out=")
        settings = {"method": method, "prior": prior, "library": library, "forward": forward, "config": config,
                    "seed": seed,
                    "criteria": criteria, "npe_model": npe_model, "draws": draws, "importance": importance,
                    "fallback": fallback, "smc": smc, "nuts_init": nuts_init,
                    "parallax_zero_point": parallax_zero_point, "dust_map": dust_map, "offsets": offsets,
                    "use_parallax": use_parallax, "correction": correction}
        fit_dataset(catalog, out, settings, chunk=chunk, overwrite=overwrite, keep_draws=keep_draws,
                    progress=progress, workers=workers, scheduler=scheduler)
        return FitResult.read(out)
    if workers is not None or scheduler is not None:
        raise ValueError("workers and scheduler run the partitions of a partitioned catalogue (a folder); "
                         "split one file with `sedppl partition` first")
    fitter = Fitter(catalog, method, prior, library, config, seed, criteria, npe_model, draws, importance, fallback,
                    smc, nuts_init, forward, parallax_zero_point, dust_map, offsets, use_parallax, correction)
    if out is None:
        return fitter.fit_rows(np.arange(len(fitter.catalog)), progress)
    from .run import fit_to_folder

    fit_to_folder(fitter, out, chunk=chunk, overwrite=overwrite, keep_draws=keep_draws, progress=progress)
    return FitResult.read(out)


def star_keys(seed: int, ids) -> jax.Array:
    """One key per star from the seed and the star's id (CRC-32): the same star gets the same draws in any
    catalogue, chunk, partition or device layout."""
    data = np.array([zlib.crc32(str(i).encode()) for i in ids], np.uint32)
    return jax.vmap(lambda d: jax.random.fold_in(jax.random.key(seed), d))(jnp.asarray(data))


_SAMPLERS: OrderedDict = OrderedDict()  # process-wide (``_shared_sampler``)
_SAMPLERS_LOCK = threading.Lock()
_MAX_SAMPLERS = 16


def _shared_sampler(cls, models: tuple, *args):
    """``cls(*args)``, built once per process for the same class, models (``models``: their keys) and
    settings (the other arguments' reprs). Samplers hold no state beyond their compiled programs, so fits
    of partitions, chunks and runs with the same model and settings reuse them instead of tracing again."""
    key = (cls, models, tuple(repr(a) for a in args if not isinstance(a, eqx.Module)))
    with _SAMPLERS_LOCK:  # threads of one process (a threaded Dask worker) share the cache
        if key in _SAMPLERS:
            _SAMPLERS.move_to_end(key)
        else:
            _SAMPLERS[key] = cls(*args)
            while len(_SAMPLERS) > _MAX_SAMPLERS:
                _SAMPLERS.popitem(last=False)
        return _SAMPLERS[key]


def _model_key(model) -> tuple:
    """What defines a model (its forward model is built once per library, bands and path: ``forward_model``)."""
    return (id(model.forward), model.prior.to_toml(), model.marginalize_scale, repr(model.astrometric),
            model.correction and model.correction.name)


def _npe_key(path, card) -> tuple:
    """The NPE model this fit loaded: its folder and the weights' checksum its card carries (checked on
    loading), so that a model retrained in place is never served by a sampler of the old weights."""
    return str(Path(path).resolve()), card.checksums.get("weights.eqx"), card.checksums.get("card")


class Fitter:
    """A fit's fixed parts -- settings, model, NPE, samplers (and so their compilations) -- applied to any
    rows of the catalogue: every chunk of a streamed fit reuses them."""

    def __init__(self, catalog, method: str = "nuts", prior=None, library: str = "phoenix",
                 config: NUTSConfig = NUTSConfig(), seed: int = 0,
                 criteria: ConvergenceCriteria = ConvergenceCriteria(), npe_model=None, draws: int | None = None,
                 importance: ISConfig = ISConfig(), fallback: str | bool | None = "smc", smc: SMCConfig = SMCConfig(),
                 nuts_init: str = "prior", forward: str = "fast",
                 parallax_zero_point: float = astro.GAIA_DR3_PARALLAX_ZERO_POINT, dust_map: str | None = "SFD",
                 offsets: str | Path | BandOffsets | None = None, use_parallax: bool = True,
                 correction: str = "default"):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; available: {METHODS}")
        if nuts_init not in INITS:
            raise ValueError(f"unknown nuts_init {nuts_init!r}; available: {INITS}")
        fallback = "smc" if fallback is True else (fallback or None)
        if fallback is not None and fallback not in FALLBACKS:
            raise ValueError(f"unknown fallback {fallback!r}; available: {FALLBACKS} or None")
        catalog = catalog if isinstance(catalog, Catalog) else read_catalog(catalog)
        if prior is not None and not isinstance(prior, Prior):
            prior = Prior.load(prior)
        if draws is not None:
            config = replace(config, draws=draws)
            importance = replace(importance, draws=draws)
        self.libraries = library_names(library)
        if len(self.libraries) > 1 and method not in AVERAGING:
            raise ValueError(f"averaging over libraries ({', '.join(self.libraries)}) weighs each by its evidence, "
                             f"which only methods {' and '.join(AVERAGING)} compute; got method {method!r}")
        library = ",".join(self.libraries)
        self.method, self.library, self.config, self.seed, self.criteria = method, library, config, seed, criteria
        self.importance, self.fallback, self.smc, self.nuts_init = importance, fallback, smc, nuts_init
        self.forward, self.correction = forward, correction
        if not np.isfinite(parallax_zero_point):
            raise ValueError(f"parallax_zero_point must be a finite number (mas), got {parallax_zero_point!r}")
        dust_map = None if dust_map in (None, "none") else dust_map
        if dust_map not in (None, "SFD", "Planck13"):
            raise ValueError(f"unknown dust map {dust_map!r}; available: 'SFD', 'Planck13' or 'none'")
        self.parallax_zero_point, self.dust_map = float(parallax_zero_point), dust_map
        self.use_parallax = bool(use_parallax)
        self.offsets = offsets if offsets is None or isinstance(offsets, BandOffsets) else BandOffsets.load(offsets)
        self.npe_path = Path(npe_model) if npe_model is not None else DEFAULT_NPE_MODEL
        self.prior, self.card, self.posterior = prior, None, None
        self._samplers: dict = {}
        self.model, self.models = None, {}
        corrections = {name: for_library(correction, name) if len(self.libraries) > 1 else correction
                       for name in self.libraries}
        if catalog.usable.any() or len(catalog) == 0:  # a catalogue without stars is a template (``partitions``)
            if method in FALLBACKS:
                shared = prior or Prior.default()
                if len(self.libraries) > 1:  # the evidences compare libraries under one prior
                    shared = shared_prior(shared, self.libraries)
                self.models = {name: sed_model(name, catalog.bands, shared, marginalize_scale=True, path=forward,
                                               correction=corrections[name]) for name in self.libraries}
                self.model = self.models[self.libraries[0]]
            elif method == "npe":
                self.posterior, self.card, catalog = _load_npe(self.npe_path, catalog, library, prior)
                # the model the NPE learned: plain npe cannot take up another correction (npe-is can)
                if correction not in ("default", self.card.correction):
                    import warnings

                    warnings.warn(f"plain npe answers under the correction its NPE was trained with "
                                  f"({self.card.correction!r}), not {correction!r}; npe-is applies {correction!r}",
                                  UserWarning, stacklevel=2)
                self.model = sed_model(self.card.library, self.card.bands, prior or self.card.prior(),
                                       marginalize_scale=True, path=forward, correction=self.card.correction)
            else:  # npe-is: the NPE proposes, each library's model is a target (another library: a change of target)
                self.posterior, self.card, catalog = _load_npe(self.npe_path, catalog, None, None)
                target = prior or self.card.prior()
                if self.libraries != (self.card.library,):  # the range every library and the proposals cover
                    target = shared_prior(target, tuple(dict.fromkeys((self.card.library, *self.libraries))))
                self.models = {name: sed_model(name, self.card.bands, target, marginalize_scale=True, path=forward,
                                               correction=corrections[name]) for name in self.libraries}
                self.model = self.models[self.libraries[0]]
        if self.use_parallax:
            catalog_astrometry(catalog, self.parallax_zero_point, None)  # unreadable columns: an error before any work
        self.catalog = catalog
        self.keys = star_keys(seed, catalog.ids)

    def _library_models(self) -> dict:
        """library -> the model this fit uses for it (plain npe: its card's one model)."""
        return self.models or {self.library: self.model}

    def settings(self) -> dict:
        """What the draws depend on, besides the catalogue (``io.run`` compares them before resuming)."""
        s = {"method": self.method, "library": self.library, "forward": self.forward, "seed": self.seed,
             "correction": self.correction if self.model is None else
             {name: describe(m.correction) for name, m in self._library_models().items()},
             "nuts": repr(self.config),
             "smc": repr(self.smc), "importance": repr(self.importance), "criteria": repr(self.criteria),
             "fallback": self.fallback, "nuts_init": self.nuts_init,
             "parallax_zero_point": self.parallax_zero_point, "dust_map": self.dust_map,
             "offsets": self.offsets.to_toml() if self.offsets is not None else None,
             "use_parallax": self.use_parallax,
             "prior": self.model.prior.to_toml() if self.model is not None else None}
        if self.method not in FALLBACKS or self.nuts_init == "npe":
            s["npe_model"] = str(self.npe_path)
        return s

    def sampler(self, kind: str, library: str | None = None, **changes):
        """The NUTS, SMC, NPE or NPE-IS sampler of this fit (``library``: the model of that library, for
        averaging; ``changes``: NUTS/SMC settings of a retry), built once per process (``_shared_sampler``)."""
        from ..inference.importance import ImportanceSampler
        from ..inference.npe.estimator import NPEEstimator

        model = self.models[library] if library is not None else self.model
        if kind == "nuts":
            return _shared_sampler(NUTSSampler, _model_key(model), model, replace(self.config, **changes))
        if kind == "smc":
            return _shared_sampler(SMCSampler, _model_key(model), model, replace(self.smc, **changes))
        proposal = self.card.model(marginalize_scale=True)
        npe = (_npe_key(self.npe_path, self.card), _model_key(proposal))
        if kind == "npe":
            return _shared_sampler(NPEEstimator, npe, self.posterior, proposal, self.importance.draws)
        return _shared_sampler(ImportanceSampler, npe + _model_key(model), self.posterior, proposal, model,
                               self.importance)

    def fit_rows(self, rows, progress: bool = True) -> FitResult:
        """The fit of the catalogue's ``rows`` (positions): their summary rows and posterior."""
        return self._fit(self.catalog.take(rows), self.keys[np.asarray(rows, int)], progress)

    def fit_part(self, catalog: Catalog, progress: bool = True) -> FitResult:
        """The fit of another catalogue with this fit's bands: one partition of a dataset (``partitions``)."""
        return self._fit(catalog.with_bands(self.catalog.bands), star_keys(self.seed, catalog.ids), progress)

    def _fit(self, read: Catalog, keys, progress: bool) -> FitResult:
        fitted = np.nonzero(read.usable)[0]
        if len(fitted) == 0:
            return FitResult(_unfitted_summary(read, self.method), _empty_posterior(self.method))
        keys = keys[fitted]
        # what is fitted: the photometry with band offsets applied, if any (the summary keeps ``read``'s), and
        # the astrometric vectors (plain npe cannot use them: no dust-map lookup)
        mag, err = (read.mag, read.err) if self.offsets is None else self.offsets.apply(read.bands, read.mag, read.err)
        vectors = catalog_astrometry(read, self.parallax_zero_point, None if self.method == "npe" else self.dust_map) \
            if self.use_parallax else None
        catalog = replace(read, mag=mag, err=err, astrometry=vectors)
        if self.method == "nuts":
            init = self._npe_starts(catalog, fitted, fold_rows(keys, 3), progress) if self.nuts_init == "npe" else None
            result = self._nuts(catalog, fitted, keys, progress, init)
        elif len(self.libraries) > 1:
            result = self._averaged(catalog, fitted, keys, progress, vectors is not None, self.method)
            if self.method == "npe-is":
                _flag_errors_outside_training(result, catalog, fitted, self.card)
        elif self.method == "smc":
            result = self._smc(catalog, fitted, keys, progress)
        else:
            result = self._npe(catalog, fitted, keys, progress)
            _flag_errors_outside_training(result, catalog, fitted, self.card)
        if result.libraries is None:  # averaged fits were checked under each library's own model
            _flag_misfit(result, catalog, fitted, self.model)
            if vectors is not None:
                _flag_parallax_tension(result, catalog, fitted, self.model)
        if vectors is not None:
            has = np.asarray(astro.has_parallax(vectors.T))
            result.extra["parallax_used"] = has[fitted] & (self.method != "npe")
        fit = FitResult(_summary(read, fitted, result, self.method, None if vectors is None else has),
                        _posterior(catalog, fitted, result, self.model, self.method))
        fit.posterior.attrs["sedppl_library"] = self.library
        fit.posterior.attrs["sedppl_correction"] = ", ".join(
            f"{name}: {correction_name(m.correction)}" for name, m in self._library_models().items())
        if self.method not in FALLBACKS:
            fit.posterior.attrs["sedppl_npe_model"] = str(self.npe_path)
        return fit

    def _rows_astrometry(self, catalog: Catalog, rows):
        """The astrometric vectors of ``rows`` of ``catalog``, or None (no parallaxes, or plain npe)."""
        return None if catalog.astrometry is None or self.method == "npe" else catalog.astrometry[rows]

    def _npe_starts(self, catalog: Catalog, rows, keys, progress) -> np.ndarray | None:
        """(star, chain, 5) NPE draws to start NUTS chains at, or None (with a warning) if the NPE model
        does not know this catalog's bands or library. Any start is valid: a point outside the prior or
        the grid falls back to the prior candidates."""
        import warnings

        from ..inference.npe.card import ModelMismatchError
        from ..inference.npe.estimator import NPEEstimator

        if "npe_starts" not in self._samplers:
            try:
                posterior, card, _ = _load_npe(self.npe_path, self.catalog, self.library, None)
                self._samplers["npe_starts"] = (NPEEstimator(posterior, card.model(marginalize_scale=True),
                                                             self.config.chains), card.bands)
            except (ModelMismatchError, FileNotFoundError) as err:
                warnings.warn(f"nuts_init='npe': {err}; chains start from prior draws", stacklevel=4)
                self._samplers["npe_starts"] = None
        if self._samplers["npe_starts"] is None:
            return None
        estimator, bands = self._samplers["npe_starts"]
        cat = catalog.with_bands(bands)
        draws = estimator.sample(keys, cat.err[rows], cat.mask[rows], cat.mag[rows], progress)
        return np.stack([draws.params[p][:, 0, :] for p in PARAMS], axis=-1)

    def _nuts(self, catalog: Catalog, rows, keys, progress, init=None) -> _Fitted:
        """NUTS on ``rows`` of the catalog (chains start at ``init`` where given); flagged stars are rerun
        once with twice the warm-up. The reported draws pool the chains with their modes' masses."""
        config, criteria = self.config, self.criteria
        draws = self.sampler("nuts").sample(keys, catalog.err[rows], catalog.mask[rows], catalog.mag[rows],
                                            progress, init, astrometry=self._rows_astrometry(catalog, rows))
        verdicts = [_diagnose(draws, i, config, criteria) for i in range(len(rows))]
        failed = [i for i, v in enumerate(verdicts) if v.flag]
        if config.retry and failed:
            again_rows = rows[failed]
            again = self.sampler("nuts", warmup=2 * config.warmup).sample(
                fold_rows(keys[np.asarray(failed)], 1), catalog.err[again_rows], catalog.mask[again_rows],
                catalog.mag[again_rows], progress, None if init is None else init[failed],
                astrometry=self._rows_astrometry(catalog, again_rows))
            for j, i in enumerate(failed):
                _replace_star(draws, i, again, j)
                verdicts[i] = _retried(_diagnose(draws, i, config, criteria))
        for v in verdicts:
            v.trusted = not v.flag
        pooled = [draws.pooled(i) for i in range(len(rows))]
        params = {p: np.stack([d[p] for d in pooled])[:, None, :] for p in reported(draws.params)}
        return _Fitted(params, draws.seconds, verdicts, np.full(len(rows), "nuts"), {},
                       {"chains_restarted": draws.restarted}, chains=draws)

    def _smc(self, catalog: Catalog, rows, keys, progress, library: str | None = None) -> _Fitted:
        """Adaptive tempered SMC on ``rows`` of the catalog (under ``library``'s model, for averaging):
        ``runs`` independent runs per star, pooled. Flagged stars are rerun once with twice the particles
        (``SMCConfig.retry``); their draws are then an equal-weight random half of the larger run's, so every
        star keeps the same number of draws."""
        config, criteria = self.smc, self.criteria
        res = self.sampler("smc", library).sample(keys, catalog.err[rows], catalog.mask[rows], catalog.mag[rows], progress,
                                         astrometry=self._rows_astrometry(catalog, rows))
        verdicts = [_smc_diagnose(res, i, criteria) for i in range(len(rows))]
        failed = [i for i, v in enumerate(verdicts) if v.flag]
        if config.retry and failed:
            again_rows = rows[failed]
            again = self.sampler("smc", library, particles=2 * config.particles).sample(
                fold_rows(keys[np.asarray(failed)], 1), catalog.err[again_rows], catalog.mask[again_rows],
                catalog.mag[again_rows], progress, astrometry=self._rows_astrometry(catalog, again_rows))
            n_kept = res.params["teff"].shape[-1]
            for j, i in enumerate(failed):
                verdicts[i] = _retried(_smc_diagnose(again, j, criteria))
                for name in ("log_evidence", "n_steps", "tempering", "ess", "diversity", "acceptance"):
                    getattr(res, name)[i] = getattr(again, name)[j]
                half = np.random.default_rng(_star_seed(keys[i])).permutation(again.params["teff"].shape[-1])[:n_kept]
                for p in res.params:
                    res.params[p][i] = again.params[p][j][:, half]
                res.seconds[i] += again.seconds[j]
        extra = {"log_evidence": res.combined_log_evidence, "log_evidence_spread": np.ptp(res.log_evidence, axis=1),
                 "smc_steps": res.n_steps.max(axis=1), "smc_ess": res.ess.min(axis=1),
                 "smc_diversity": res.diversity.min(axis=1), "smc_acceptance": res.acceptance.min(axis=1)}
        params = {p: v.reshape(len(rows), 1, -1) for p, v in res.params.items()}  # runs pooled: equal-weight draws
        return _Fitted(params, res.seconds, verdicts, np.full(len(rows), "smc"), {}, extra)

    def _averaged(self, catalog: Catalog, rows, keys, progress, astrometric: bool, engine: str) -> _Fitted:
        """``engine`` ("smc" or "npe-is") under each library, the draws pooled by evidence
        (``inference.averaging``). Each library's misfit (and parallax) check uses its own model. A star is
        flagged where a library's engine failed (its evidence, and so every weight, is then in doubt) and by
        the checks of each library with weight >= MIN_WEIGHT; its other columns are those of the library with
        the largest weight. With npe-is and a fallback, stars whose weights fail under any library are
        averaged again with SMC (the engine that yields evidences)."""
        fits, engine_flags = [], []
        for library in self.libraries:
            if engine == "smc":
                fit = self._smc(catalog, rows, keys, progress, library)
            else:
                fit = self._npe(catalog, rows, keys, progress, library, fallback=False)
            engine_flags.append([v.flag for v in fit.verdicts])
            _flag_misfit(fit, catalog, rows, self.models[library])
            if astrometric:
                _flag_parallax_tension(fit, catalog, rows, self.models[library])
            fits.append(fit)
        if engine == "smc":  # relative to each library's region: put on the one prior (``averaging``)
            log_z = np.stack([f.extra["log_evidence"] + np.log(valid_prior_mass(self.models[library]))
                              for f, library in zip(fits, self.libraries)], axis=1)
        else:  # importance sampling's evidence is relative to the one prior as it stands
            log_z = np.stack([f.importance.log_evidence for f in fits], axis=1)
        average = LibraryAverage(self.libraries, log_z, library_weights(log_z))
        weight, dominant, n = average.weight, average.dominant, len(rows)
        params = pool([_star_seed(k) for k in fold_rows(keys, 7)], [f.params for f in fits], weight)
        verdicts = []
        for s in range(n):
            reasons = []
            for j, library in enumerate(self.libraries):
                flag = fits[j].verdicts[s].flag if weight[s, j] >= MIN_WEIGHT else engine_flags[j][s]
                reasons.append(flag and f"{library}: {flag}")
            if not np.all(np.isfinite(weight[s])):
                reasons.append("no library has a finite evidence")
            flag = ood.join(*reasons)
            verdicts.append(replace(fits[dominant[s]].verdicts[s], flag=flag, trusted=not flag,
                                    retried=any(f.verdicts[s].retried for f in fits)))
        extra = {name: np.stack([f.extra[name] for f in fits], axis=1)[np.arange(n), dominant] for name in fits[0].extra}
        extra["log_evidence"] = averaged_log_evidence(log_z)
        for j, library in enumerate(self.libraries):
            extra[f"log_evidence_{library}"], extra[f"library_weight_{library}"] = log_z[:, j], weight[:, j]
        result = _Fitted(params, sum(f.seconds for f in fits), verdicts, np.full(n, engine), {}, extra,
                         libraries=average)
        if engine == "npe-is" and self.fallback:
            failed = np.flatnonzero(np.any([~f.importance.reliable for f in fits], axis=0))
            if len(failed):
                again = self._averaged(catalog, rows[failed], fold_rows(keys[failed], FALLBACK_STREAM), progress, astrometric, "smc")
                _replace_averaged(result, failed, again)
        return result

    def _npe(self, catalog: Catalog, rows, keys, progress, library: str | None = None, fallback: bool = True) -> _Fitted:
        """NPE draws, or NPE-IS draws (to ``library``'s model, for averaging) with the unreliable stars refitted
        by the fallback engine (unless ``fallback`` is False)."""
        if self.method == "npe":
            n_draws = self.importance.draws
            draws = self.sampler("npe").sample(keys, catalog.err[rows], catalog.mask[rows], catalog.mag[rows],
                                               progress)
            verdicts = [Verdict(flag=_rejected_flag(r, n_draws)) for r in draws.n_rejected]
            return _Fitted(draws.params, draws.seconds, verdicts, np.full(len(rows), "npe"),
                           {"log_q": draws.log_q[:, None, :]}, {"n_rejected": draws.n_rejected})
        cfg = self.importance
        res = self.sampler("npe-is", library).sample(keys, catalog.err[rows], catalog.mask[rows], catalog.mag[rows], progress,
                                            astrometry=self._rows_astrometry(catalog, rows))
        verdicts = []
        for i in range(len(rows)):
            reasons = [_rejected_flag(res.n_rejected[i], res.proposals[i] - res.n_rejected[i])]
            if res.khat[i] > cfg.khat_max:
                reasons.append(f"npe-is: khat {res.khat[i]:.2f} > {cfg.khat_max}")
            if res.ess[i] < cfg.min_ess:
                reasons.append(f"npe-is: ESS {res.ess[i]:.0f} < {cfg.min_ess:g}")
            verdicts.append(Verdict(flag=ood.join(*reasons), trusted=bool(res.reliable[i])))
        extra = {"n_rejected": res.n_rejected, "ess": res.ess, "ess_per_draw": res.ess_per_draw, "khat": res.khat,
                 "khat_npe": res.khat_npe, "adapt_rounds": res.rounds, "proposals": res.proposals,
                 "fallback": np.zeros(len(rows), bool)}
        result = _Fitted(res.params, res.seconds, verdicts, np.full(len(rows), "npe-is"), {}, extra, importance=res)
        if self.fallback and fallback:
            self._fall_back(result, catalog, rows, keys, progress)
        return result

    def _fall_back(self, result: _Fitted, catalog, rows, keys, progress) -> None:
        """Refit the stars whose importance weights cannot be trusted with the fallback engine, in place."""
        unreliable = np.nonzero(~result.importance.reliable)[0]
        if len(unreliable) == 0:
            return
        engine = self._nuts if self.fallback == "nuts" else self._smc
        exact = engine(catalog, rows[unreliable], fold_rows(keys[unreliable], FALLBACK_STREAM), progress)
        n_draws = result.params["teff"].shape[-1]
        for j, i in enumerate(unreliable):
            for p in reported(result.params):  # the equal-weight draws, thinned evenly to the importance draws' length
                result.params[p][i, 0] = _thinned(exact.params[p][j], n_draws)
            result.verdicts[i] = exact.verdicts[j]
            result.seconds[i] += exact.seconds[j]
            result.methods[i] = self.fallback
            result.extra["fallback"][i] = True


def _smc_diagnose(res: SMCDraws, i: int, criteria: ConvergenceCriteria) -> Verdict:
    draws = np.stack([res.params[p][i] for p in REPORTED], axis=-1)  # (run, draw, param)
    rhat, bulk, tail = mode_rhat_ess(draws, np.zeros(len(draws), int), np.full(len(draws), 1.0 / len(draws)))
    verdict = Verdict(rhat_max=float(np.nanmax(rhat)) if res.config.runs > 1 else np.nan,
                      ess_bulk_min=float(np.nanmin(bulk)), ess_tail_min=float(np.nanmin(tail)))
    verdict.flag = smc_flag(res, i, verdict, criteria)
    verdict.trusted = not verdict.flag
    return verdict


def smc_flag(res: SMCDraws, i: int, verdict: Verdict, criteria: ConvergenceCriteria) -> str:
    """Why star ``i``'s SMC draws cannot be trusted ('' when they can): a run that did not reach the
    posterior or whose particles collapsed or stopped moving, or runs that disagree."""
    reasons = []
    if not res.reached_posterior[i]:  # then there were no moves at the posterior to judge
        reasons.append(f"smc: stopped at temperature {res.tempering[i].min():.3g} after {res.n_steps[i].max()} steps")
    else:
        if not res.diversity[i].min() >= MIN_DIVERSITY:
            reasons.append(f"smc: {res.diversity[i].min():.0%} of particles distinct after the last reweighting")
        if not res.acceptance[i].min() >= MIN_ACCEPTANCE:
            reasons.append(f"smc: acceptance {res.acceptance[i].min():.2f} at the posterior")
    if res.config.runs > 1 and not verdict.rhat_max <= criteria.rhat_max:
        reasons.append(f"smc: runs disagree (rhat {verdict.rhat_max:.3f} > {criteria.rhat_max})")
    ess = min(verdict.ess_bulk_min, verdict.ess_tail_min)
    if not ess >= criteria.ess_min:
        reasons.append(f"smc: ess {ess:.0f} < {criteria.ess_min:.0f}")
    return "; ".join(reasons)


def _thinned(draws: np.ndarray, n: int) -> np.ndarray:
    """``n`` of a star's equal-weight draws (any shape, flattened), evenly spaced."""
    pooled = draws.reshape(-1)
    return pooled[np.linspace(0, len(pooled) - 1, n).round().astype(int)]


def _replace_averaged(result: _Fitted, stars, again: _Fitted) -> None:
    """Put ``again``'s averaged fit of ``stars`` (positions in ``result``) in place of theirs: draws thinned
    evenly to ``result``'s length, verdicts, methods, every per-star column and the libraries' evidences."""
    n_draws = result.params["teff"].shape[-1]
    for j, i in enumerate(stars):
        for p in result.params:
            result.params[p][i, 0] = _thinned(again.params[p][j], n_draws)
        result.verdicts[i] = again.verdicts[j]
        result.seconds[i] += again.seconds[j]
        result.methods[i] = again.methods[j]
    for name in result.extra.keys() & again.extra.keys():  # not SMC's own: every chunk has the same columns
        result.extra[name][stars] = again.extra[name]
    result.extra["fallback"][stars] = True
    result.libraries.log_evidence[stars] = again.libraries.log_evidence
    result.libraries.weight[stars] = again.libraries.weight


def _star_seed(key) -> int:
    """A NumPy seed from a star's JAX key (host-side choices that must follow the star, not the batch)."""
    return int(np.asarray(jax.random.key_data(key)).ravel()[-1])


def _load_npe(path: Path, catalog: Catalog, library: str, prior: Prior | None):
    """The NPE model for this catalog's present bands (and, for plain NPE, this prior)."""
    from ..inference.npe.card import load_npe

    present = [b for j, b in enumerate(catalog.bands) if catalog.mask[:, j].any()]
    posterior, card = load_npe(path, bands=present, library=library, prior=prior)
    return posterior, card, catalog.with_bands(card.bands)


def _flag_errors_outside_training(result: _Fitted, catalog, rows, card) -> None:
    from ..inference.npe.simulations import card_noise

    low, high = card_noise(card.noise).error_range(tuple(catalog.bands))
    reasons = ood.error_range(catalog.err[rows], catalog.mask[rows], catalog.bands, low, high)
    _add_flags(result, reasons)


def _flag_misfit(result: _Fitted, catalog, rows, model) -> None:
    if len(rows) == 0:
        return
    x = np.stack([result.params[p].reshape(len(rows), -1) for p in PARAMS], axis=-1)
    chi2, p_value, reasons = ood.misfit(model, x, catalog.err[rows], catalog.mask[rows], catalog.mag[rows])
    result.extra["chi2"], result.extra["chi2_p"] = chi2, p_value
    _add_flags(result, reasons)


def _flag_parallax_tension(result: _Fitted, catalog, rows, model) -> None:
    if len(rows) == 0:
        return
    x = np.stack([result.params[p].reshape(len(rows), -1) for p in PARAMS], axis=-1)
    p_value, predicted, reasons = ood.parallax_tension(model, x, catalog.err[rows], catalog.mask[rows],
                                                       catalog.mag[rows], catalog.astrometry[rows])
    result.extra["parallax_p"], result.extra["parallax_photometric"] = p_value, predicted
    _add_flags(result, reasons)


def _add_flags(result: _Fitted, reasons) -> None:
    """Each star's out-of-distribution reason ('' for none) joined to its flag."""
    for verdict, reason in zip(result.verdicts, reasons):
        verdict.flag = ood.join(verdict.flag, reason and f"ood: {reason}")


def _rejected_flag(n_rejected: int, n_draws: int) -> str:
    fraction = n_rejected / (n_rejected + n_draws)
    return f"npe: {fraction:.0%} of draws in grid holes" if fraction > MAX_REJECTED_FRACTION else ""


def _retried(verdict: Verdict) -> Verdict:
    """The verdict on a star's second run: marked as retried, its flag (if any) saying so."""
    return replace(verdict, retried=True, flag=verdict.flag and verdict.flag + " (after retry)",
                   trusted=not verdict.flag)


def _diagnose(draws: StarDraws, i: int, config: NUTSConfig, criteria) -> Verdict:
    params = {p: draws.params[p][i] for p in REPORTED}
    return Verdict.from_diagnostics(star_diagnostics(
        params, draws.diverging[i], draws.tree_depth[i], draws.step_size[i], config.max_tree_depth, criteria,
        logdensity=draws.logdensity[i], mode=draws.mode[i], chain_weight=draws.chain_weight[i],
        mode_khat=draws.mode_khat[i]))


def _replace_star(draws: StarDraws, i: int, other: StarDraws, j: int) -> None:
    for p in draws.params:
        draws.params[p][i] = other.params[p][j]
    for name in ("diverging", "tree_depth", "n_steps", "acceptance", "logdensity", "step_size", "restarted",
                 "chain_weight", "mode", "n_modes", "mode_khat", "mode_ess"):
        getattr(draws, name)[i] = getattr(other, name)[j]
    draws.seconds[i] += other.seconds[j]


def _summary(catalog: Catalog, fitted, result: _Fitted, method: str, has_parallax: np.ndarray | None = None) -> Table:
    n = len(catalog)
    methods = np.full(n, method, dtype=object)
    methods[fitted] = result.methods
    cols: dict[str, np.ndarray] = {"id": catalog.ids, "method": methods.astype(str), "n_bands": catalog.n_bands}
    for p in reported(result.params):
        for name, q in (("median", 50), ("p16", 16), ("p84", 84)):
            col = np.full(n, np.nan)
            col[fitted] = np.percentile(result.params[p].reshape(len(fitted), -1), q, axis=1)
            cols[f"{p}_{name}"] = col
    verdicts = verdict_columns(result.verdicts, n, fitted)
    cols |= {name: verdicts.pop(name) for name in DIAGNOSTICS}
    seconds = np.zeros(n)
    seconds[fitted] = result.seconds
    cols["seconds"] = seconds
    unfitted = np.ones(n, bool)
    unfitted[fitted] = False
    verdicts["flag"][unfitted] = [f"input: {f}" if f else "" for f in np.asarray(catalog.flags)[unfitted]]
    verdicts["flag"] = verdicts["flag"].astype(str)
    cols |= verdicts  # flag, retried, trusted
    for name, values in result.extra.items():
        cols[name] = summary_column(name, values, n, fitted)
    for j, band in enumerate(catalog.bands):  # the photometry fitted, under the catalogue's own column names
        cols[band], cols[f"{band}_err"] = catalog.mag[:, j], catalog.err[:, j]
    for name in catalog.extra.colnames:  # every other input column, carried along
        cols[name if name not in cols else f"input_{name}"] = catalog.extra[name]
    table = Table(cols)
    table.meta["sedppl_method"] = method
    if has_parallax is not None and method == "npe":
        table.meta["sedppl_note"] = NPE_IGNORES
        table["note"] = np.where(has_parallax, NPE_IGNORES, "")
    return table


def _unfitted_summary(catalog: Catalog, method: str) -> Table:
    """The summary of a catalogue with no usable star: the columns of any fit's summary (``_summary``), with
    why each row was not fitted; every fitted quantity is absent (NaN, -1), nothing is trusted."""
    n = len(catalog)
    cols = {"id": catalog.ids, "method": np.full(n, method), "n_bands": catalog.n_bands}
    for p in REPORTED:
        for name in ("median", "p16", "p84"):
            cols[f"{p}_{name}"] = np.full(n, np.nan)
    verdicts = verdict_columns([], n, [])
    cols |= {name: verdicts.pop(name) for name in DIAGNOSTICS}
    cols |= {"seconds": np.zeros(n), "flag": np.array([f"input: {f}" for f in catalog.flags], dtype=str),
             "retried": verdicts["retried"], "trusted": verdicts["trusted"]}
    cols |= {name: summary_column(name, [], n, []) for name in ("chi2", "chi2_p")}  # every method's
    for j, band in enumerate(catalog.bands):
        cols[band], cols[f"{band}_err"] = catalog.mag[:, j], catalog.err[:, j]
    for name in catalog.extra.colnames:
        cols[name if name not in cols else f"input_{name}"] = catalog.extra[name]
    table = Table(cols)
    table.meta["sedppl_method"] = method
    return table


def _empty_posterior(method: str):
    import xarray as xr

    return xr.DataTree(dataset=xr.Dataset(attrs={"sedppl_method": method, "note": "no usable star: nothing fitted"}))


def _posterior(catalog: Catalog, fitted, result: _Fitted, model, method: str):
    import arviz_base as azb
    import xarray as xr

    move = lambda a: np.moveaxis(np.asarray(a), 0, -1)  # (star, chain, draw) -> (chain, draw, star)  # noqa: E731
    posterior = {p: move(result.params[p]) for p in reported(result.params)}
    stats = {name: move(v) for name, v in result.stats.items()}
    groups = {"posterior": posterior} | ({"sample_stats": stats} if stats else {})
    dims = {name: ["star"] for name in list(posterior) + list(stats)}
    stars = catalog.ids[fitted].astype(str)
    tree = azb.from_dict(groups, dims=dims, coords={"star": stars})
    tree["posterior"] = tree["posterior"].to_dataset().assign_coords(method=("star", result.methods.astype(str)))
    importance = result.importance
    if importance is not None:  # the proposals and their weights: enough to reweight under another prior
        x, dims2 = importance.x, ("star", "proposal")
        data = {p: (dims2, x[..., i]) for i, p in enumerate(PARAMS)}
        data |= {"log_q": (dims2, importance.log_q), "log_weight": (dims2, importance.log_weights),
                 "khat": ("star", importance.khat), "ess": ("star", importance.ess),
                 "proposals": ("star", importance.proposals)}  # behind khat and ess; the first of them are stored
        tree["importance"] = xr.Dataset(data, coords={"star": stars})
    if result.libraries is not None:  # averaged over libraries: each one's evidence and weight
        a = result.libraries
        tree["library_average"] = xr.Dataset(
            {"log_evidence": (("star", "library"), a.log_evidence), "weight": (("star", "library"), a.weight)},
            coords={"star": stars, "library": list(a.libraries)})
    if result.chains is not None:  # nuts: the chains as sampled, with each one's share of the mass
        c, dims3 = result.chains, ("star", "chain", "draw")
        data = {p: (dims3, c.params[p]) for p in reported(c.params)}
        data |= {name: (dims3, v) for name, v in c.sample_stats().items()}
        data |= {"chain_weight": (("star", "chain"), c.chain_weight), "mode": (("star", "chain"), c.mode)}
        tree["nuts_chains"] = xr.Dataset(data, coords={"star": stars})
    tree.attrs.update({"sedppl_method": method, "sedppl_library": model.forward.library,
                       "sedppl_forward": model.forward.path,
                       "sedppl_bands": ",".join(model.bands), "sedppl_prior": model.prior.to_toml()})
    return tree


def default_config(chains: int = 4, draws: int = 1000, warmup: int = 1000, **kw) -> NUTSConfig:
    return replace(NUTSConfig(), chains=chains, draws=draws, warmup=warmup, **kw)
