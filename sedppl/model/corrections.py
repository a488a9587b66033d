"""Empirical corrections to a library's surface magnitudes where real stars show it is off.

Phoenix's M dwarfs are too bright in the blue: fitted to real CARMENES M dwarfs
(Gaia DR3, 2MASS, AllWISE, parallaxes) with the libraries' floor, the best fits
miss Gaia BP by 0.4 mag and G by 0.16 mag, and Teff comes out 140 K low. A
correction adds a per-band offset to the model's surface magnitudes,

    surface_b(params) + offset_b * w(teff, logg),

with w = 1 where it was calibrated (cool dwarfs) and 0 away from it, joined
by a C1 smoothstep so that gradients stay continuous. It is part of the model
(every method, the simulations and the misfit check see it), like brutus's
empirical corrections to MIST for low-mass stars. Offsets are relative: a
constant shared by all bands is an angular diameter. ``data/corrections.toml``
holds each correction with its source; ``sed_model(correction=...)`` selects
one ("default": the library's own, if it has one; "none": the bare library).
"""

from __future__ import annotations

import functools
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .files import read_toml
from .passbands import SURVEY_BANDS

DATA = Path(__file__).parent / "data" / "corrections.toml"
NONE = "none"
DEFAULT = "default"


def smoothstep(x: Array, start: float, end: float) -> Array:
    """0 at or before ``start``, 1 at or after ``end``, C1 in between (3u^2 - 2u^3); ``end`` may be < ``start``."""
    u = jnp.clip((x - start) / (end - start), 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


class LibraryCorrection(eqx.Module):
    """Offsets [mag] added to the surface magnitudes of ``bands`` for stars cooler than ``teff[1]`` (in full
    below ``teff[0]``) and with logg above ``logg[0]`` (in full above ``logg[1]``)."""

    offsets: Float[Array, " nb"]
    name: str = eqx.field(static=True)
    teff: tuple[float, float] = eqx.field(static=True)
    logg: tuple[float, float] = eqx.field(static=True)

    def weight(self, params: Float[Array, " 5"]) -> Float[Array, ""]:
        return smoothstep(params[0], self.teff[1], self.teff[0]) * smoothstep(params[1], *self.logg)

    def __call__(self, params: Float[Array, " 5"]) -> Float[Array, " nb"]:
        return self.offsets * self.weight(params)


@functools.cache
def _table() -> dict:
    return read_toml(DATA, "corrections file")


def correction_names(library: str) -> tuple[str, ...]:
    return tuple(name for name, c in _table().items() if c["library"] == library)


def load_correction(library: str, bands: tuple[str, ...], name: str = DEFAULT) -> LibraryCorrection | None:
    """The correction ``name`` of ``library`` for ``bands`` (bands it does not name get 0), the library's
    default correction for "default" (None if it has none), None for "none"."""
    if name == NONE:
        return None
    table = _table()
    if name == DEFAULT:
        defaults = [n for n, c in table.items() if c["library"] == library and c.get("default", False)]
        if not defaults:
            return None
        name = defaults[0]
    if name not in table or table[name]["library"] != library:
        raise ValueError(f"unknown correction {name!r} for library {library!r}; it has "
                         f"{list(correction_names(library)) + [DEFAULT, NONE]}")
    c = table[name]
    unknown = sorted(set(c["offsets"]) - set(SURVEY_BANDS))
    if unknown:  # a misspelt band would otherwise be corrected by nothing, silently
        raise ValueError(f"correction {name!r} in {DATA} names unknown bands {unknown}")
    offsets = np.array([c["offsets"].get(b, 0.0) for b in bands], np.float32)
    return LibraryCorrection(jnp.asarray(offsets), name, tuple(map(float, c["teff"])), tuple(map(float, c["logg"])))


def correction_name(correction: LibraryCorrection | None) -> str:
    """What a model card records: the correction's name, or "none"."""
    return NONE if correction is None else correction.name


def describe(correction: LibraryCorrection | None) -> str:
    """What a run's settings record: the name and the numbers (an edited correction is another model)."""
    if correction is None:
        return NONE
    return f"{correction.name}: offsets {np.asarray(correction.offsets).tolist()}, teff {correction.teff}, logg {correction.logg}"


def for_library(name: str, library: str) -> str:
    """The correction a fit averaged over several libraries gives ``library``: a named correction goes to
    its own library only, the others get their default ("default" and "none" go to every library)."""
    if name in (DEFAULT, NONE) or name not in _table():  # an unknown name: load_correction lists the choices
        return name
    return name if _table()[name]["library"] == library else DEFAULT
