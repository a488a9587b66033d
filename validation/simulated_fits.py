"""The simulated catalog and the fits that the calibration and accuracy studies share.

Stars are drawn from the pretrained NPE's own model (its library, bands and
training prior), so every method answers under the prior the truths came
from. Each method's fit is written under ``out/<method>`` and reused by the
next study when the catalog and settings match, so running both studies costs
one set of fits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import numpy as np

from sedppl.inference.importance import ISConfig
from sedppl.inference.npe.card import read_card
from sedppl.inference.npe.simulations import card_noise
from sedppl.inference.nuts import NUTSConfig
from sedppl.io.catalog import Catalog, read_catalog, write_table
from sedppl.io.fit import DEFAULT_NPE_MODEL, REPORTED, FitResult, fit_catalog
from sedppl.io.run import code_fingerprint
from sedppl.model.simulate import NoiseModel, simulate_catalog
from sedppl.model.surveys import SurveyNoise

METHODS = ("npe", "npe-is", "nuts", "smc")
NOISE = {"ideal": "the idealised noise, `--noise ideal`", "survey": "the surveys' noise model (simulate's default)"}
EXACT = ("nuts", "smc")  # the slow ones on a CPU: they fit the first nuts_n stars


@dataclass(frozen=True)
class Study:
    n: int = 200  # simulated stars (npe and npe-is fit all of them)
    nuts_n: int = 100  # the first nuts_n stars are also fitted by NUTS and SMC (the slow ones on a CPU)
    seed: int = 0
    chains: int = 4
    draws: int = 1000
    warmup: int = 1000
    proposals: int = 1000
    model: str = str(DEFAULT_NPE_MODEL)
    noise: str = "survey"  # the surveys' errors, depths and footprints (the default model's), or "ideal"

    @classmethod
    def add_arguments(cls, parser) -> None:
        for name, value in asdict(cls()).items():
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)

    @classmethod
    def from_args(cls, args) -> Study:
        return cls(**{name: getattr(args, name) for name in asdict(cls())})

    def command(self) -> str:
        return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in asdict(self).items() if k != "model")


CODE = code_fingerprint()  # taken when the study starts: the code this process runs, whatever is edited later


def fingerprint(catalog: Catalog) -> dict[str, str]:
    """What a cached fit depends on beyond its settings: the catalogue's numbers and sedppl's code. A fit
    is reused only when both match, so a model change (zero points, say) never reuses stale fits."""
    data = hashlib.sha256()
    for a in (catalog.mag, catalog.err, catalog.mask):
        data.update(np.ascontiguousarray(np.nan_to_num(np.asarray(a, float), nan=-99.0)).tobytes())
    return {"catalog": data.hexdigest()[:16], "code": CODE}


def simulated_fits(study: Study, out: Path, methods=METHODS, progress: bool = True
                   ) -> tuple[Catalog, dict[str, np.ndarray], dict[str, FitResult], dict[str, float]]:
    """The catalog, its truths (param -> (star,)), each method's fit, and each method's minutes.

    NPE-IS runs without its fallback, so that what is measured is importance sampling;
    its unreliable stars are kept and counted.
    """
    out.mkdir(parents=True, exist_ok=True)
    card = read_card(study.model)
    if study.noise not in ("ideal", "survey"):
        raise ValueError(f"noise must be 'ideal' or 'survey', got {study.noise!r}")
    if study.noise == "survey":  # the model's own survey settings where it was trained under them
        noise = card_noise(card.noise) if card.noise.get("kind") == "survey" else SurveyNoise()
    else:
        noise = NoiseModel()
    table = simulate_catalog(jax.random.key(study.seed), study.n, card.model(), noise)
    write_table(table, out / "catalog.parquet")
    catalog = read_catalog(table)
    truths = {p: np.asarray(table[f"true_{p}"], float) for p in REPORTED}
    fits, minutes = {}, {}
    for method in methods:
        rows = catalog if method not in EXACT else read_catalog(table[: study.nuts_n])
        folder, stamp = out / method, {**asdict(study), "method": method, **fingerprint(rows)}
        done = folder / "study.json"
        if done.exists() and json.loads(done.read_text())["settings"] == stamp:
            fits[method] = FitResult.read(folder)
            minutes[method] = json.loads(done.read_text())["minutes"]
            continue
        config = NUTSConfig(chains=study.chains, draws=study.draws, warmup=study.warmup)  # as `sedppl fit` runs it
        importance = ISConfig(proposals=study.proposals)
        fit = fit_catalog(rows, method, out=folder, config=config, seed=study.seed + 1, progress=progress,
                          npe_model=study.model, importance=importance, fallback=False,
                          prior=card.prior() if method in EXACT else None, overwrite=True,
                          correction=card.correction)  # the model the stars were simulated from
        fits[method] = fit
        minutes[method] = float(np.sum(fit.summary["seconds"])) / 60
        done.write_text(json.dumps({"settings": stamp, "minutes": minutes[method]}, indent=2))
    return catalog, truths, fits, minutes


def draws_and_truths(fit: FitResult, truths: dict[str, np.ndarray], catalog: Catalog
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Each fitted star's draws (star, draw) and truth per parameter (log10 for θ), and the catalog rows."""
    post = fit.posterior["posterior"]
    stars = [str(s) for s in post["star"].values]
    rows = np.array([int(np.nonzero(catalog.ids.astype(str) == s)[0][0]) for s in stars])
    draws, truth = {}, {}
    for p in REPORTED:
        values = np.moveaxis(post[p].values, -1, 0).reshape(len(stars), -1)
        draws[p] = np.log10(values) if p == "theta_mas" else values
        truth[p] = np.log10(truths[p][rows]) if p == "theta_mas" else truths[p][rows]
    return draws, truth, rows
