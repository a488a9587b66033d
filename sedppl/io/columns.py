"""The summary's per-star columns beyond the quantiles: each declared once, with its type and meaning.

``Verdict`` holds what every method reports about a star (its diagnostics, flag and trust); the
fields a method has no number for keep their defaults, which are also what a row that was not fitted
shows. ``COLUMNS`` declares the columns that only some methods or inputs add (``_Fitted.extra``): a
new column is one line here, and ``io.fit`` refuses a column that is not declared.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import get_type_hints

import numpy as np

from ..model.atmospheres import LIBRARIES

NAN = float("nan")


@dataclass
class Verdict:
    """One star's diagnostics, flag and trust; methods without chains (smc, npe, npe-is) leave the
    MCMC fields at their defaults."""

    rhat_max: float = NAN  # worst R-hat within a mode
    rhat_pooled: float = NAN  # over all chains
    ess_bulk_min: float = NAN
    ess_tail_min: float = NAN
    n_divergent: int = -1
    n_max_treedepth: int = -1
    step_size: float = NAN
    logp_gap: float = NAN  # how far the worst chain's mean log-density trails the best's (nats)
    n_modes: int = -1
    major_mode_weight: float = NAN
    mode_khat: float = NAN  # PSIS k-hat behind the mode masses
    flag: str = ""  # why the draws cannot be trusted; empty when fine
    retried: bool = False
    trusted: bool = False  # an exact method whose own diagnostics pass

    @classmethod
    def from_diagnostics(cls, diagnostics: dict, **changes) -> Verdict:
        """From ``diagnostics.convergence.star_diagnostics``'s dict (its other keys are dropped)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in diagnostics.items() if k in names} | changes)


DIAGNOSTICS = tuple(f.name for f in dataclasses.fields(Verdict) if f.name not in ("flag", "retried", "trusted"))


@dataclass(frozen=True)
class Column:
    """A summary column some methods add: its type, and what a row without the number shows."""

    kind: type  # bool, int or float
    doc: str

    @property
    def missing(self):
        return {bool: False, int: -1, float: NAN}[self.kind]


COLUMNS: dict[str, Column] = {
    # every method
    "chi2": Column(float, "smallest chi-square of the photometry over the posterior draws (scale at its optimum)"),
    "chi2_p": Column(float, "its tail probability; below 1e-3 the star is flagged as a misfit"),
    "parallax_used": Column(bool, "the parallax entered the model (not for plain npe)"),
    "parallax_p": Column(float, "two-sided tail probability of the parallax given the photometry"),
    "parallax_photometric": Column(float, "the parallax the photometry predicts (mas)"),
    # nuts
    "chains_restarted": Column(int, "chains moved onto the best chain after warm-up"),
    # smc
    "log_evidence": Column(float, "log of the runs' mean evidence (averaged over the libraries where several)"),
    "log_evidence_spread": Column(float, "range of the runs' log evidences"),
    "smc_steps": Column(int, "most tempering steps of a run"),
    "smc_ess": Column(float, "least ESS at a run's last tempering step"),
    "smc_diversity": Column(float, "least share of distinct particles after the last reweighting"),
    "smc_acceptance": Column(float, "least HMC acceptance at the posterior"),
    # npe, npe-is
    "n_rejected": Column(int, "draws (npe) or final proposals (npe-is) in holes of the model grid"),
    "ess": Column(float, "effective sample size of the importance weights"),
    "ess_per_draw": Column(float, "ess over the number of proposals"),
    "khat": Column(float, "Pareto k-hat of the importance weights"),
    "khat_npe": Column(float, "Pareto k-hat of the flow's own draws"),
    "adapt_rounds": Column(int, "adaptation rounds behind the proposals"),
    "proposals": Column(int, "proposals per round behind the weights (more for a star of the wider rescue)"),
    "fallback": Column(bool, "refitted with the fallback method (weights unreliable)"),
    # smc or npe-is averaged over libraries (``inference.averaging``)
    **{f"log_evidence_{name}": Column(float, f"log evidence under the {name} library") for name in LIBRARIES},
    **{f"library_weight_{name}": Column(float, f"posterior probability of the {name} library (equal prior odds)")
       for name in LIBRARIES},
}


def summary_column(name: str, values, n: int, rows) -> np.ndarray:
    """Column ``name`` for ``n`` rows: ``values`` at ``rows``, the column's missing value elsewhere."""
    if name not in COLUMNS:
        raise KeyError(f"summary column {name!r} is not declared in sedppl.io.columns.COLUMNS")
    column = COLUMNS[name]
    out = np.full(n, column.missing, dtype=column.kind)
    out[rows] = values
    return out


def verdict_columns(verdicts: list[Verdict], n: int, rows) -> dict[str, np.ndarray]:
    """The ``Verdict`` fields as columns for ``n`` rows: the fitted ``rows`` from ``verdicts``, the
    defaults elsewhere (text as object arrays, free to take longer strings)."""
    kinds = get_type_hints(Verdict)
    cols = {}
    for f in dataclasses.fields(Verdict):
        kind = kinds[f.name]
        out = np.full(n, f.default, dtype=object if kind is str else kind)
        out[rows] = [getattr(v, f.name) for v in verdicts]
        cols[f.name] = out
    return cols
