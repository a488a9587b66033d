"""Per-band systematic offsets and extra scatter, learned from stars of known parameters.

Real photometry and model atmospheres disagree band by band (zero points, the
models' own colours): a star fitted with all bands is pulled to the parameters
that best absorb those differences. Given stars whose (Teff, logg, [M/H], A_V,
R_V) are known from elsewhere (spectroscopic labels), each band's residual is

    mag_ib - surface_b(labels_i) = d_i + offset_b + noise,   noise ~ N(0, err_ib^2 + floor^2 + scatter_b^2)

with d_i the star's own dilution (its angular diameter). ``calibrate`` solves
this by alternating d_i (weighted mean) and offset_b (median), then sets
scatter_b from the residuals' robust spread beyond the errors. A common
constant moves between d and the offsets unseen, so the offsets are reported
with a zero median over bands. ``BandOffsets.apply`` corrects a catalogue:
mag - offset, and scatter added in quadrature to the error -- the model itself
is unchanged, so every method (npe included) uses it. As brutus does for MIST.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .files import read_toml


@dataclass(frozen=True)
class BandOffsets:
    """offset and extra scatter [mag] per band, and what they were learned from."""

    offsets: dict[str, float]
    scatter: dict[str, float]
    stars: dict[str, int]  # stars that had the band
    source: str = ""

    def apply(self, bands, mag: np.ndarray, err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Corrected (mag, err) of a catalogue in ``bands`` order; bands without an offset are unchanged."""
        offset = np.array([self.offsets.get(b, 0.0) for b in bands])
        scatter = np.array([self.scatter.get(b, 0.0) for b in bands])
        return mag - offset, np.sqrt(err**2 + scatter**2)

    def to_toml(self) -> str:
        lines = [f"# sedppl band offsets: mag - offset, scatter added to the error in quadrature ({self.source})", ""]
        for band in self.offsets:
            lines += [f"[{band}]", f"offset = {self.offsets[band]:.5f}", f"scatter = {self.scatter[band]:.5f}",
                      f"stars = {self.stars[band]}", ""]
        return "\n".join(lines)

    @classmethod
    def load(cls, path: str | Path) -> BandOffsets:
        tables = read_toml(path, "offsets file")
        offsets, scatter, stars = {}, {}, {}
        for band, table in tables.items():
            if not isinstance(table, dict) or set(table) - {"offset", "scatter", "stars"} or "offset" not in table:
                raise ValueError(f"offsets file {path}: [{band}] needs 'offset' (and optional 'scatter', 'stars')")
            values = (table["offset"], table.get("scatter", 0.0))
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in values) \
                    or values[1] < 0:
                raise ValueError(f"offsets file {path}: [{band}] offset must be a finite number and scatter >= 0")
            offsets[band], scatter[band], stars[band] = float(values[0]), float(values[1]), int(table.get("stars", 0))
        return cls(offsets, scatter, stars, str(path))


def calibrate(model, params: np.ndarray, mag: np.ndarray, err: np.ndarray, mask: np.ndarray,
              iterations: int = 20, min_stars: int = 10, source: str = "") -> BandOffsets:
    """Offsets and scatter of ``model``'s bands from stars of known ``params`` (star, 5) with photometry
    (star, band); bands seen in fewer than ``min_stars`` stars get none."""
    params = jnp.asarray(params, jnp.float32)
    surface = np.asarray(jax.jit(jax.vmap(model.surface))(params), float)
    floor = np.broadcast_to(np.asarray(model.prior.floor(model.bands, params[:, 0]), float), surface.shape)
    mask = np.asarray(mask, bool) & np.isfinite(surface)
    resid = np.where(mask, np.asarray(mag, float) - surface, np.nan)
    var = np.where(mask, np.asarray(err, float) ** 2 + floor**2, np.nan)
    offset, scatter = np.zeros(len(model.bands)), np.zeros(len(model.bands))
    counts = mask.sum(axis=0)
    used = counts >= min_stars
    for _ in range(iterations):
        total = var + scatter**2
        weight = np.where(mask & used, 1.0 / total, 0.0)
        dilution = np.nansum(weight * np.nan_to_num(resid - offset), axis=1) / np.maximum(weight.sum(axis=1), 1e-12)
        left = resid - dilution[:, None]
        offset = np.where(used, np.nanmedian(left, axis=0), 0.0)
        offset -= np.median(offset[used])
        spread = 1.4826 * np.nanmedian(np.abs(left - offset), axis=0)
        scatter = np.where(used, np.sqrt(np.maximum(spread**2 - np.nanmedian(var, axis=0), 0.0)), 0.0)
    keep = [j for j, b in enumerate(model.bands) if used[j]]
    return BandOffsets({model.bands[j]: float(offset[j]) for j in keep},
                       {model.bands[j]: float(scatter[j]) for j in keep},
                       {model.bands[j]: int(counts[j]) for j in keep}, source)
