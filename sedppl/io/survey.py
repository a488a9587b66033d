"""Turn a survey's own table into a sedppl catalog, by a small TOML mapping.

A mapping names the id column, and for each sedppl band the survey's magnitude
and error columns, optionally a quality-flag column with the characters that
count as good (one character per band in packed flags such as 2MASS ``Qf``),
optionally labels (e.g. spectroscopic parameters) to carry along as
``label_<name>`` columns, and optionally rows to keep (``select``: column ->
accepted values). Bands failing their flag, or with a missing or
non-positive error, become absent for that star -- dropped, never fitted::

    id = "Karmn"
    select = {Type = ["Single"]}
    [bands.2mass_j]
    mag = "J_mag"
    err = "eJ_mag"
    flag = "Qf_2M"   # optional
    flag_index = 0   # which character of the flag (default 0)
    good = "AB"      # accepted characters
    [labels.teff]
    value = "Teff"
    minus = "e_Teff" # optional lower and upper 1-sigma deltas
    plus = "E_Teff"
    [astrometry]         # optional: catalogue columns for the astrometric model
    parallax = "parallax"            # mas
    parallax_error = "parallax_error"
    ra = "RAJ2000"                   # deg
    dec = "DEJ2000"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import Table

from ..model.checks import is_real, is_whole
from ..model.files import read_toml
from ..model.passbands import REGISTRY, SURVEY_BANDS


ASTROMETRY_KEYS = ("parallax", "parallax_error", "ra", "dec")
MAX_MEDIAN_ERR = 1.0  # mag: a band whose typical error is larger is a mapping mistake, not photometry


class MappingError(ValueError):
    """A survey mapping that names unknown bands or columns the table lacks."""


@dataclass(frozen=True)
class BandColumns:
    mag: str
    err: str
    flag: str | None = None
    flag_index: int = 0
    good: str = ""
    max_err: float = np.inf  # errors above this drop the band (e.g. upper limits disguised as detections)


@dataclass(frozen=True)
class SurveyMapping:
    id: str
    bands: dict[str, BandColumns]
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {"value", "minus", "plus"}
    select: dict[str, list] = field(default_factory=dict)  # column -> accepted values
    astrometry: dict[str, str] = field(default_factory=dict)  # parallax, parallax_error, ra, dec -> column

    @classmethod
    def load(cls, path: str | Path) -> SurveyMapping:
        raw = read_toml(path, "survey mapping", MappingError)
        unknown = sorted(set(raw) - {"id", "bands", "labels", "select", "astrometry"})
        if unknown or "id" not in raw or "bands" not in raw:
            raise MappingError(f"{path}: a mapping has 'id', [bands.*], and optional [labels.*], [astrometry] and "
                               f"select; found keys {sorted(raw)}")
        astrometry = raw.get("astrometry", {})
        extra = sorted(set(astrometry) - set(ASTROMETRY_KEYS))
        if extra or not all(isinstance(v, str) for v in astrometry.values()):
            raise MappingError(f"{path}: [astrometry] maps {list(ASTROMETRY_KEYS)} to column names; got {astrometry}")
        if ("parallax" in astrometry) != ("parallax_error" in astrometry) or ("ra" in astrometry) != ("dec" in astrometry):
            raise MappingError(f"{path}: [astrometry] needs parallax with parallax_error, and ra with dec")
        bands = {}
        for band, cols in raw["bands"].items():
            if band not in REGISTRY:
                raise MappingError(f"{path}: unknown band {band!r}; known bands: {', '.join(SURVEY_BANDS)}")
            try:
                bands[band] = BandColumns(**cols)
            except TypeError as exc:
                raise MappingError(f"{path}: [bands.{band}]: {exc}") from None
            _check_band(path, band, bands[band])
        labels, select = raw.get("labels", {}), raw.get("select", {})
        for name, cols in (labels.items() if isinstance(labels, dict) else [("", labels)]):
            if (not isinstance(cols, dict) or "value" not in cols or set(cols) - {"value", "minus", "plus"}
                    or not all(isinstance(v, str) for v in cols.values())):
                raise MappingError(f"{path}: [labels.{name}] maps 'value' and optionally 'minus', 'plus' to column "
                                   f"names; got {cols!r}")
        if not isinstance(select, dict) or not all(isinstance(v, list) and v for v in select.values()):
            raise MappingError(f"{path}: select maps each column to a list of accepted values, e.g. "
                               f"select = {{Type = [\"Single\"]}}; got {select!r}")  # a text would match by letter
        return cls(raw["id"], bands, labels, select, astrometry)

    def columns(self) -> list[str]:
        cols = [self.id]
        for b in self.bands.values():
            cols += [b.mag, b.err] + ([b.flag] if b.flag else [])
        for lab in self.labels.values():
            cols += list(lab.values())
        return cols + list(self.select) + list(self.astrometry.values())


def _check_band(path, band: str, cols: BandColumns) -> None:
    """Refuse, by name, a band entry whose settings have the wrong type or point at the wrong column."""
    where = f"{path}: [bands.{band}]"
    for name in ("mag", "err", "flag", "good"):
        value = getattr(cols, name)
        if not (isinstance(value, str) or (name == "flag" and value is None)):
            raise MappingError(f"{where}: {name} must be a column name (text), got {value!r}")
    if not is_whole(cols.flag_index, 0):
        raise MappingError(f"{where}: flag_index must be a whole number >= 0 (a character position), "
                           f"got {cols.flag_index!r}")
    if not is_real(cols.max_err) or not cols.max_err > 0:
        raise MappingError(f"{where}: max_err must be a number > 0 (mag), got {cols.max_err!r}")
    if cols.err == cols.mag:
        raise MappingError(f"{where}: err and mag both name column {cols.mag!r}")


def _float(table: Table, name: str) -> np.ndarray:
    col = table[name]
    try:
        if np.ma.isMaskedArray(col):
            return np.ma.filled(np.ma.asarray(col, dtype=float), np.nan)
        return np.asarray(col, float)
    except (TypeError, ValueError):
        bad = next((v for v in np.asarray(col).tolist() if not _is_number(v)), None)
        raise MappingError(f"column {name!r} is not numeric (e.g. {bad!r})") from None


def _is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _flag_ok(table: Table, band: BandColumns) -> np.ndarray:
    if band.flag is None:
        return np.ones(len(table), bool)
    if np.asarray(table[band.flag]).dtype.kind == "f":
        raise MappingError(f"flag column {band.flag!r} holds real numbers, not flag characters: is it the right column?")
    flags = [str(v) if v is not None else "" for v in np.ma.filled(np.ma.asarray(table[band.flag]).astype(str), "")]
    longest = max(map(len, flags), default=0)
    if longest and band.flag_index >= longest:
        raise MappingError(f"flag_index {band.flag_index} is beyond every flag in column {band.flag!r} "
                           f"(the longest has {longest} characters)")
    return np.array([len(f) > band.flag_index and f[band.flag_index] in band.good for f in flags])


def survey_catalog(table: Table, mapping: SurveyMapping) -> Table:
    """The sedppl catalog of ``table``: id, ``<band>``/``<band>_err`` and ``label_*`` columns.

    Also ``dropped``: per star, which bands a flag or a bad error removed, for the record.
    """
    missing = [c for c in mapping.columns() if c not in table.colnames]
    if missing:
        raise MappingError(f"the table lacks the mapped columns {missing}")
    for column, accepted in mapping.select.items():
        table = table[np.isin(np.asarray(table[column]).astype(str), [str(a) for a in accepted])]
    if len(table) == 0:
        raise MappingError(f"no rows left after select {mapping.select}")
    out = Table({"id": np.array([str(v) for v in table[mapping.id]])})
    dropped = [[] for _ in range(len(table))]
    for band, cols in mapping.bands.items():
        mag, err = _float(table, cols.mag), _float(table, cols.err)
        measured = np.isfinite(mag)
        keep = measured & np.isfinite(err) & (err > 0) & (err <= cols.max_err) & _flag_ok(table, cols)
        for i in np.nonzero(measured & ~keep)[0]:
            dropped[i].append(band)
        if np.any(keep) and np.median(err[keep]) > MAX_MEDIAN_ERR:
            raise MappingError(f"band {band}: the errors in column {cols.err!r} have a median of "
                               f"{np.median(err[keep]):.3g} mag; is it a magnitude column?")
        out[band] = np.where(keep, mag, np.nan)
        out[f"{band}_err"] = np.where(keep, err, np.nan)
    for name, cols in mapping.labels.items():
        out[f"label_{name}"] = _float(table, cols["value"])
        for side in ("minus", "plus"):
            if side in cols:
                out[f"label_{name}_{side}"] = np.abs(_float(table, cols[side]))
    for name, column in mapping.astrometry.items():
        out[name] = _float(table, column)
    out["dropped"] = [",".join(d) for d in dropped]
    return out


def join_tables(left: Table, right: Table, on: tuple[str, str]) -> Table:
    """Rows of ``left`` and ``right`` whose ``on[0]`` and ``on[1]`` columns match (an inner join).

    Clashing column names keep the left table's and get ``_2`` on the right's.
    """
    from astropy.table import join

    left_key, right_key = on
    for table, key in ((left, left_key), (right, right_key)):
        if key not in table.colnames:
            raise MappingError(f"join key {key!r} is not a column; columns are {table.colnames[:12]}...")
    right = right.copy()
    clashes = (set(right.colnames) & set(left.colnames)) - {right_key}
    for name in clashes:
        right.rename_column(name, f"{name}_2")
    key = "__join_key"
    left = left.copy()
    left[key] = np.asarray(left[left_key]).astype(str)
    right[key] = np.asarray(right[right_key]).astype(str)
    if right_key in left.colnames:
        right.remove_column(right_key)
    joined = join(left, right, keys=key, join_type="inner")
    joined.remove_column(key)
    return joined


def read_survey_table(path: str | Path) -> Table:
    """A survey table from CSV, FITS, Parquet, ECSV or VOTable (by its extension)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return Table.read(path, format="ascii.csv")
    return Table.read(path)
