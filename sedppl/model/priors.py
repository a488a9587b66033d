"""Priors on (teff, logg, mh, av, rv) and the angular-diameter scale, loaded from TOML.

A prior file has one table per parameter; every table names a ``dist`` and its
arguments. Bounds may be numbers or ``"grid"`` (the atmosphere library's
range). The model further restricts the prior to the grid's validity region.

.. code-block:: toml

    [teff]                       # K
    dist = "loguniform"          # uniform | loguniform | truncnormal | exponential | mixture
    low = "grid"
    high = "grid"

    [mh]
    dist = "mixture"             # components share the parameter's [low, high]
    low = "grid"
    high = "grid"
    weights = [0.8, 0.2]
    components = [{dist = "truncnormal", loc = -0.1, scale = 0.3},
                  {dist = "truncnormal", loc = -1.0, scale = 0.6}]

    [av]                         # mag; shift + Exponential(mean), truncated at high
    dist = "exponential"
    shift = 0.003
    mean = 1.5
    high = 15.0

    [log10_theta]                # angular diameter [mas], log10; flat, so the scale
    dist = "uniform"             # marginal is analytic
    low = -6.0
    high = 3.0

    [likelihood]
    sys_floor = "libraries"      # added in quadrature to every band's error: per band and Teff, the
                                 # atmosphere libraries' disagreement (library_floor.py); or a number [mag]

``sedppl prior`` prints the default file.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jaxtyping import ArrayLike

import jax.numpy as jnp
import numpyro.distributions as dist

from .files import read_toml
from .forward import PARAMS

SCALE = "log10_theta"
DISTS = ("uniform", "loguniform", "truncnormal", "exponential", "mixture")
_REQUIRED = {
    "uniform": ("low", "high"),
    "loguniform": ("low", "high"),
    "truncnormal": ("loc", "scale", "low", "high"),
    "exponential": ("mean", "high"),
    "mixture": ("low", "high", "weights", "components"),
}
_OPTIONAL = {"exponential": ("shift",)}
_COMPONENT_KEYS = {"truncnormal": ("loc", "scale"), "uniform": ("low", "high")}  # of a mixture's components
MAX_TAIL_SCALES = 8.0  # a truncnormal's loc at most this many scales outside its support (NumPyro samples it
#                        correctly to ~10; at 20 every draw lands outside)


class PriorError(ValueError):
    """A prior file or table that cannot be used, with the parameter and key named."""


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple) and value and all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) for v in value):
        return {k: _thaw(v) for k, v in value}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _check_numbers(name: str, args: dict, where: str = "") -> None:
    """Every number of a prior table is finite, and scales and means are positive (named when not)."""
    for key, value in args.items():
        if isinstance(value, dict):
            _check_numbers(name, value, f"{where}{key}.")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    _check_numbers(name, item, f"{where}{key}[{i}].")
                else:
                    _check_numbers(name, {f"{key}[{i}]": item}, where)
        elif isinstance(value, bool) or (not isinstance(value, (int, float)) and value != "grid"):
            if key != "dist":
                raise PriorError(f"prior [{name}]: {where}{key} must be a number, got {value!r}")
        elif value != "grid" and not math.isfinite(value):
            raise PriorError(f"prior [{name}]: {where}{key} must be finite, got {value}")
        elif key in ("scale", "mean") and value <= 0:
            raise PriorError(f"prior [{name}]: {where}{key} must be > 0, got {value}")


@dataclass(frozen=True)
class ParameterPrior:
    """One parameter's prior, as written in the file (hashable, so models stay static)."""

    name: str
    dist: str
    args: tuple = ()

    @classmethod
    def from_dict(cls, name: str, table: dict) -> ParameterPrior:
        if not isinstance(table, dict) or "dist" not in table:
            raise PriorError(f"prior [{name}]: needs a table with a 'dist' key, got {table!r}")
        kind = table["dist"]
        if kind not in DISTS:
            raise PriorError(f"prior [{name}]: unknown dist {kind!r}; choose one of {DISTS}")
        missing = [k for k in _REQUIRED[kind] if k not in table]
        if missing:
            raise PriorError(f"prior [{name}]: dist {kind!r} needs {missing}")
        unknown = sorted(set(table) - {"dist", *_REQUIRED[kind], *_OPTIONAL.get(kind, ())})
        if unknown:  # a misspelt optional key would otherwise be dropped without a word
            raise PriorError(f"prior [{name}]: unknown key(s) {unknown} for dist {kind!r}; it takes "
                             f"{list(_REQUIRED[kind] + _OPTIONAL.get(kind, ()))}")
        args = {k: v for k, v in table.items() if k != "dist"}
        if kind == "mixture":
            for key in ("weights", "components"):
                if not isinstance(args[key], list):
                    raise PriorError(f"prior [{name}]: {key} must be a list, got {args[key]!r}")
            for i, comp in enumerate(args["components"]):
                kind_i = comp.get("dist") if isinstance(comp, dict) else None
                if kind_i not in _COMPONENT_KEYS:
                    raise PriorError(f"prior [{name}]: mixture components must be tables with dist truncnormal or "
                                     f"uniform, got components[{i}] = {comp!r}")
                if sorted(set(comp) - {"dist"}) != sorted(_COMPONENT_KEYS[kind_i]):
                    raise PriorError(f"prior [{name}]: components[{i}] ({kind_i}) needs exactly "
                                     f"{list(_COMPONENT_KEYS[kind_i])}, got {sorted(set(comp) - {'dist'})}")
        _check_numbers(name, args)
        if kind == "mixture":
            if len(args["weights"]) != len(args["components"]) or not args["components"]:
                raise PriorError(f"prior [{name}]: 'weights' and 'components' must have the same non-zero length")
            if any(w < 0 for w in args["weights"]) or not math.isclose(sum(args["weights"]), 1.0, rel_tol=1e-6):
                raise PriorError(f"prior [{name}]: mixture weights must be non-negative and sum to 1")
        return cls(name, kind, _freeze(args))

    def to_dict(self) -> dict:
        return {"dist": self.dist, **_thaw(self.args)}

    def bounds(self, grid_bounds: dict[str, tuple[float, float]]) -> tuple[float, float]:
        """Numeric (low, high) of the support; 'grid' resolves to the library's range."""
        args = self.to_dict()
        low = args.get("low", args.get("shift", 0.0) if self.dist == "exponential" else None)
        high = args.get("high")

        def resolve(value, side):
            if value == "grid":
                if self.name not in grid_bounds:
                    raise PriorError(f"prior [{self.name}]: 'grid' bounds only apply to teff, logg and mh")
                return float(grid_bounds[self.name][side])
            return float(value)

        low, high = resolve(low, 0), resolve(high, 1)
        if self.name in grid_bounds:  # never outside the library
            low, high = max(low, grid_bounds[self.name][0]), min(high, grid_bounds[self.name][1])
        if not low < high:
            raise PriorError(f"prior [{self.name}]: empty support [{low}, {high}]")
        normals = [("", args)] if self.dist == "truncnormal" else [
            (f"components[{i}].", c) for i, c in enumerate(args.get("components", ())) if c["dist"] == "truncnormal"]
        for where, normal in normals:
            outside = max(low - normal["loc"], normal["loc"] - high, 0.0) / normal["scale"]
            if outside > MAX_TAIL_SCALES:
                raise PriorError(f"prior [{self.name}]: {where}loc = {normal['loc']} lies {outside:.0f} scales outside "
                                 f"the support [{low:g}, {high:g}] (at most {MAX_TAIL_SCALES:g}): its draws "
                                 "would not stay inside")
        return low, high

    def distribution(self, grid_bounds: dict[str, tuple[float, float]]) -> dist.Distribution:
        """The NumPyro distribution of this parameter, supported on ``bounds``."""
        low, high = self.bounds(grid_bounds)
        args = self.to_dict()
        if self.dist == "uniform":
            return dist.Uniform(low, high)
        if self.dist == "loguniform":
            if low <= 0:
                raise PriorError(f"prior [{self.name}]: loguniform needs low > 0")
            return dist.LogUniform(low, high)
        if self.dist == "truncnormal":
            return dist.TruncatedNormal(args["loc"], args["scale"], low=low, high=high)
        if self.dist == "exponential":
            shift = float(args.get("shift", 0.0))
            base = dist.TruncatedGamma(1.0, 1.0 / args["mean"], low=0.0, high=high - shift)
            return dist.TransformedDistribution(base, dist.transforms.AffineTransform(shift, 1.0, domain=base.support))
        comps = [
            dist.TruncatedNormal(c["loc"], c["scale"], low=low, high=high) if c["dist"] == "truncnormal"
            else dist.Uniform(max(low, c["low"]), min(high, c["high"]))
            for c in args["components"]
        ]
        # the mixture lives on the parameter's range: by default numpyro takes the first component's support
        return dist.MixtureGeneral(dist.Categorical(jnp.asarray(args["weights"])), comps,
                                   support=dist.constraints.interval(low, high))


LIBRARY_FLOOR = "libraries"


def _floor(value, source: str) -> float | str:
    if isinstance(value, str):
        return value  # checked by Prior
    if isinstance(value, bool):
        raise PriorError(f"prior file {source} [likelihood]: sys_floor must be a number or {LIBRARY_FLOOR!r}, "
                         f"got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise PriorError(f"prior file {source} [likelihood]: sys_floor must be a number or {LIBRARY_FLOOR!r}, "
                         f"got {value!r}") from None


@dataclass(frozen=True)
class Prior:
    """The full prior: five stellar parameters, the scale, and the likelihood's systematic floor."""

    params: tuple[ParameterPrior, ...]
    scale: ParameterPrior
    sys_floor: float | str = LIBRARY_FLOOR  # ``library_floor``, or one number [mag]
    source: str = field(default="default", compare=False)

    def __post_init__(self):
        names = tuple(p.name for p in self.params)
        if names != PARAMS:
            raise PriorError(f"prior must define {PARAMS} in this order, got {names}")
        if self.scale.dist != "uniform":
            raise PriorError("prior [log10_theta]: must be 'uniform' (the scale marginal is analytic for a flat prior)")
        if isinstance(self.sys_floor, str):
            if self.sys_floor != LIBRARY_FLOOR:
                raise PriorError(f"prior [likelihood]: sys_floor must be a number >= 0 (mag) or "
                                 f"{LIBRARY_FLOOR!r}, got {self.sys_floor!r}")
        elif not (self.sys_floor >= 0 and math.isfinite(self.sys_floor)):
            raise PriorError(f"prior [likelihood]: sys_floor must be a finite number >= 0, got {self.sys_floor}")

    @classmethod
    def from_dict(cls, tables: dict, source: str = "<dict>") -> Prior:
        unknown = set(tables) - set(PARAMS) - {SCALE, "likelihood"}
        if unknown:
            raise PriorError(f"prior file {source}: unknown table(s) {sorted(unknown)}; expected {PARAMS + (SCALE, 'likelihood')}")
        missing = [p for p in PARAMS + (SCALE,) if p not in tables]
        if missing:
            raise PriorError(f"prior file {source}: missing table(s) {missing}")
        likelihood = tables.get("likelihood", {})
        if not isinstance(likelihood, dict) or set(likelihood) - {"sys_floor"}:
            raise PriorError(f"prior file {source} [likelihood]: takes only 'sys_floor', got {likelihood!r}")
        return cls(
            params=tuple(ParameterPrior.from_dict(p, tables[p]) for p in PARAMS),
            scale=ParameterPrior.from_dict(SCALE, tables[SCALE]),
            sys_floor=_floor(likelihood.get("sys_floor", LIBRARY_FLOOR), source),
            source=source,
        )

    def floor(self, bands, teff: ArrayLike) -> ArrayLike:
        """The systematic floor of each band at ``teff`` [mag]: one number, or the library scatter."""
        if self.sys_floor == LIBRARY_FLOOR:
            from .library_floor import library_floor

            return library_floor(bands, teff)
        return self.sys_floor

    @property
    def nominal_floor(self) -> float:
        """One number for what needs one (NPE's input scaling): the floor, or 0.02 mag for the libraries'."""
        return 0.02 if self.sys_floor == LIBRARY_FLOOR else self.sys_floor

    @classmethod
    def load(cls, path: str | Path) -> Prior:
        return cls.from_dict(read_toml(path, "prior file", PriorError), source=str(path))

    @classmethod
    def default(cls, sys_floor: float | str = LIBRARY_FLOOR) -> Prior:
        """The default prior; ``sys_floor=0.02`` gives the default before 2026-12-02 (``models/ideal``'s)."""
        prior = cls.from_dict(tomllib.loads(DEFAULT_PRIOR_TOML), source="default")
        return prior if sys_floor == LIBRARY_FLOOR else replace(prior, sys_floor=sys_floor)

    def to_dict(self) -> dict:
        tables = {p.name: p.to_dict() for p in self.params}
        tables[SCALE] = self.scale.to_dict()
        tables["likelihood"] = {"sys_floor": self.sys_floor}
        return tables

    def to_toml(self) -> str:
        lines = []
        for name, table in self.to_dict().items():
            lines.append(f"[{name}]")
            for key, value in table.items():
                lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)

    def distributions(self, grid_bounds) -> dict[str, dist.Distribution]:
        return {p.name: p.distribution(grid_bounds) for p in self.params + (self.scale,)}

    def support(self, grid_bounds) -> dict[str, tuple[float, float]]:
        """The prior's support box, per parameter (the NPE maps its draws into it)."""
        return {p.name: p.bounds(grid_bounds) for p in self.params + (self.scale,)}


def _toml_value(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


DEFAULT_PRIOR_TOML = """\
# sedppl default prior, close to IrisML (Kapusta 2025, arXiv:2510.26964).
# Schema: see sedppl/model/priors.py or `sedppl prior --help`.

[teff]            # K: log Teff uniform inside the grid
dist = "loguniform"
low = "grid"
high = "grid"

[logg]            # dex (cgs)
dist = "uniform"
low = 0.1
high = 5.5

[mh]              # [M/H]: thin disk + thick disk/halo
dist = "mixture"
low = "grid"
high = "grid"
weights = [0.8, 0.2]
components = [{dist = "truncnormal", loc = -0.1, scale = 0.3}, {dist = "truncnormal", loc = -1.0, scale = 0.6}]

[av]              # mag: 0.003 + Exponential(mean 1.5), truncated at 15 (drops 5e-5 of the mass)
dist = "exponential"
shift = 0.003
mean = 1.5
high = 15.0

[rv]
dist = "truncnormal"
loc = 3.13
scale = 0.18
low = 2.5
high = 4.5

[log10_theta]     # angular diameter [mas], flat in log10: 1e-6 to 1e3 mas
dist = "uniform"
low = -6.0
high = 3.0

[likelihood]
sys_floor = "libraries"  # in quadrature with each band's error: per band and Teff, the atmosphere libraries'
                         # disagreement (sedppl/model/library_floor.py); or one number [mag], e.g. 0.02
"""
