"""The demo: simulate a small catalog and draw model SEDs with and without extinction."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..model.forward import forward_model
from ..model.generative import sed_model
from ..model.passbands import SURVEY_BANDS, effective_wavelength
from ..model.simulate import simulate_catalog
from .catalog import read_catalog, write_table

DEMO_STARS = {"M dwarf 3500 K": (3500.0, 4.8, 0.0), "Sun 5772 K": (5772.0, 4.44, 0.0), "A star 9000 K": (9000.0, 4.0, 0.0)}


def plot_extinction_seds(path: Path, library: str = "phoenix", av: float = 1.0) -> Path:
    """Spectra and band magnitudes of three stars at A_V = 0 and A_V = av, and A_band/A_V per band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fm = forward_model(library, SURVEY_BANDS, path="spectral")
    wave_um = np.asarray(fm.grid.wavelength_aa) / 1e4
    lam_eff = np.array([effective_wavelength(b) for b in fm.bands]) / 1e4
    fig, (ax_sed, ax_ext) = plt.subplots(2, 1, figsize=(8, 8), height_ratios=(3, 2), constrained_layout=True)
    for (label, (teff, logg, mh)), colour in zip(DEMO_STARS.items(), ("C3", "C1", "C0")):
        clean = jnp.array([teff, logg, mh, 0.0, 3.1])
        dusty = clean.at[3].set(av)
        for params, style in ((clean, "-"), (dusty, "--")):
            log_flux = np.asarray(fm.spectrum(params))
            norm = np.max(np.asarray(fm.spectrum(clean)))
            ax_sed.plot(wave_um, log_flux - norm, style, color=colour, lw=1,
                        label=f"{label}, $A_V$={float(params[3]):g}")
        a_band = np.asarray(fm.surface_magnitudes(dusty) - fm.surface_magnitudes(clean)) / av
        ax_ext.scatter(lam_eff, a_band, color=colour, s=14, label=label)
    a_lambda = np.asarray(fm.extinction_curve(3.1))
    ax_ext.plot(wave_um, a_lambda, color="0.5", lw=1, label=r"F99 $A_\lambda/A_V$, $R_V$=3.1")
    ax_sed.set(xscale="log", ylim=(-6, 0.3), ylabel=r"log$_{10}$ $\lambda F_\lambda$ (relative)",
               title=f"{library} model SEDs, unreddened (solid) and $A_V$={av:g}, $R_V$=3.1 (dashed)")
    ax_sed.legend(fontsize=7, ncol=2)
    ax_ext.set(xscale="log", xlabel=r"wavelength [$\mu$m]", ylabel=r"$A_{band}/A_V$",
               title="band-integrated extinction depends on the star's SED")
    ax_ext.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_demo(out: str | Path = "sedppl-demo", n_stars: int = 50, n_fit: int = 4, seed: int = 0,
             library: str = "phoenix") -> dict:
    """Simulate ``n_stars`` with the default prior and the noise the pretrained model was trained under
    (survey-like) and draw the SED figure; compare NPE and NPE-IS with
    the cross-checked NUTS and SMC reference on ``n_fit`` of them (report in ``out/compare``); fit all of
    them with the pretrained NPE
    model; and draw a corner plot of the first star: every method against the truth.

    For a library the pretrained model does not know, only NUTS runs on the ``n_fit`` stars."""
    from ..diagnostics.corner import corner
    from ..inference.npe.card import read_card
    from ..inference.npe.simulations import catalog_noise
    from ..inference.nuts import NUTSConfig
    from .compare import compare_catalog
    from .fit import DEFAULT_NPE_MODEL, REPORTED, fit_catalog

    out = Path(out)
    model = sed_model(library)
    table = simulate_catalog(jax.random.key(seed), n_stars, model, catalog_noise(read_card(DEFAULT_NPE_MODEL).noise))
    catalog_path = write_table(table, out / "catalog.parquet")
    catalog = read_catalog(catalog_path)
    figure = plot_extinction_seds(out / "sed_extinction.png", library)
    subset = read_catalog(table[:n_fit])
    config = NUTSConfig(chains=4, draws=500, warmup=500, retry=False)
    npe = comparison = None
    if library == read_card(DEFAULT_NPE_MODEL).library:  # the pretrained model knows one library
        comparison = compare_catalog(subset, out / "compare", library=library, config=config, seed=seed)
        fits = comparison.fits
        npe = fit_catalog(catalog, "npe", out=out / "npe", library=library, seed=seed, overwrite=True)
    else:
        fits = {"nuts": fit_catalog(subset, "nuts", out=out / "compare" / "nuts", library=library, seed=seed,
                                    config=config, overwrite=True)}
    star = str(subset.ids[0])
    truth = {p: float(table[f"true_{p}"][0]) for p in REPORTED}
    sets = [{p: fit.posterior["posterior"].sel(star=star)[p].values for p in REPORTED} for fit in fits.values()]
    corner(sets[0], out / "corner.png", truth, title=f"{star}: {', '.join(fits)} posteriors, truth (black lines)",
           overlay=sets[1:], labels=tuple(fits))
    return {"catalog": catalog_path, "n_stars": len(catalog), "n_usable": int(catalog.usable.sum()),
            "figure": figure, "fit": out / "compare" / "nuts", "n_fit": n_fit, "corner": out / "corner.png",
            "flagged": int((fits["nuts"].summary["flag"] != "").sum()),
            "report": None if comparison is None else comparison.report, "methods": list(fits),
            "npe": None if npe is None else out / "npe",
            "npe_seconds": None if npe is None else float(npe.summary["seconds"].sum())}
