"""Model cards: what an NPE model was trained on, saved beside its weights, checked on loading.

A model directory holds ``card.json`` (architecture, bands, atmosphere library,
training prior, noise model, data and code hashes, training metrics),
``prior.toml`` (the training prior, readable by ``sedppl fit --prior``),
``weights.eqx`` and a human-readable ``README.md``. ``load_npe`` rebuilds the
network from the card and refuses a model whose bands, library or prior do
not match what the caller asks for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from ...model.generative import SEDModel, sed_model
from ...model.passbands import ab_minus_catalogue
from ...model.priors import Prior
from .posterior import Architecture, NPEPosterior
from .simulations import card_noise

CARD_VERSION = 1


class ModelMismatchError(ValueError):
    """An NPE model that was trained for other bands, another library or another prior."""


def _sha256(paths) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths, key=str):
        digest.update(Path(path).name.encode())
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def data_hash(library: str, library_floor: bool = False, forward: str = "multilinear") -> str:
    """Hash of the atmosphere library file, of the library-floor table when the prior uses it, and of the
    band tables on the fast forward path (passband curves come from pinned packages)."""
    data = resources.files("sedppl.model.data")
    files = [f"{library}.npz"] + (["library_floor.npz"] if library_floor else [])
    if forward == "fast":
        files.append(f"{'phoenix' if library == 'bosz' else library}_bands.npz")  # BOSZ reddens with Phoenix's
    return _sha256([Path(str(data.joinpath(f))) for f in files])


def code_hash() -> str:
    """Hash of the model room and the NPE sources: what defines the simulations and the network."""
    root = Path(__file__).resolve().parents[2]
    return _sha256(list((root / "model").glob("*.py")) + list((root / "inference" / "npe").glob("*.py")))


@dataclass
class ModelCard:
    library: str
    bands: tuple[str, ...]
    prior_toml: str
    noise: dict
    architecture: dict
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    data_hash: str = ""
    code_hash: str = ""
    zero_points: dict = field(default_factory=dict)  # band -> m_AB - m_band when trained ({}: not recorded)
    checksums: dict = field(default_factory=dict)  # "weights.eqx" and "card" -> SHA-256 (written by save_npe)
    forward: str = "multilinear"  # the forward model's path it was trained on (cards before 0.5: multilinear)
    correction: str = "none"  # the library's empirical correction it was trained with (``model.corrections``)
    version: int = CARD_VERSION

    def prior(self) -> Prior:
        import tomllib

        return Prior.from_dict(tomllib.loads(self.prior_toml), source="model card")

    def model(self, marginalize_scale: bool = False) -> SEDModel:
        return sed_model(self.library, self.bands, self.prior(), marginalize_scale, self.forward,
                         correction=self.correction)

    def skeleton(self) -> NPEPosterior:
        """The network, freshly initialised, for its weights to be loaded into. Built on the CPU: its
        ~120 small initialisers compile in seconds there, but on an H200 they held every benchmark that
        loaded a model past its time limit (BENCHMARKS.md, GPU), only to be overwritten. Shapes alone
        will not do: the flow's layers keep constants that are not weights."""
        model = self.model()
        try:
            cpu = jax.devices("cpu")[0]
        except RuntimeError:  # JAX_PLATFORMS without the CPU: build where the arrays will live
            cpu = jax.devices()[0]
        with jax.default_device(cpu):
            return NPEPosterior(jax.random.key(0), len(self.bands), model.support(), model.prior.nominal_floor,
                                Architecture.from_card(self.architecture))

    def to_json(self) -> str:
        return json.dumps(self.__dict__ | {"bands": list(self.bands)}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict) -> ModelCard:
        if data.get("version") != CARD_VERSION:
            raise ModelMismatchError(f"model card version {data.get('version')} is not {CARD_VERSION}")
        return cls(**data | {"bands": tuple(data["bands"])})

    def markdown(self) -> str:
        noise = card_noise(self.noise)
        lines = [
            "# NPE model card", "",
            f"- Atmosphere library: `{self.library}` (data hash `{self.data_hash}`), forward path `{self.forward}`, "
            f"empirical correction `{self.correction}`; "
            f"code hash `{self.code_hash}`",
            f"- Bands ({len(self.bands)}): {', '.join(self.bands)}",
            f"- Zero points (m_AB - m_band when trained): {self.zero_points or 'not recorded (before 2026-11-30)'}",
            "- Training prior: `prior.toml` (plain NPE refuses any other prior; `npe-is` reweights to a new one)",
            f"- Noise model: {noise}",
            f"- Architecture: {self.architecture}",
            "", "## Training", "",
        ]
        lines += [f"- {k}: {v}" for k, v in self.training.items() if k != "history"]
        if self.metrics:
            lines += ["", "## Metrics", ""] + [f"- {k}: {v}" for k, v in self.metrics.items()]
        return "\n".join(lines) + "\n"


def save_npe(path: str | Path, posterior: NPEPosterior, card: ModelCard) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    eqx.tree_serialise_leaves(path / "weights.eqx", posterior)
    sign_card(path, card)
    (path / "prior.toml").write_text(card.prior_toml)
    (path / "README.md").write_text(card.markdown())
    return path


def _card_digest(card: ModelCard) -> str:
    content = {k: v for k, v in card.__dict__.items() if k != "checksums"} | {"bands": list(card.bands)}
    if content["forward"] == "multilinear":  # the value of cards written before the field existed
        del content["forward"]
    if content["correction"] == "none":  # likewise
        del content["correction"]
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sign_card(path: str | Path, card: ModelCard) -> None:
    """Record the checksums of the weights and of the card itself, and write the card."""
    path = Path(path)
    card.checksums = {"weights.eqx": _file_digest(path / "weights.eqx"), "card": _card_digest(card)}
    (path / "card.json").write_text(card.to_json())


def verify_model(path: str | Path, card: ModelCard) -> None:
    """Refuse a model whose weights or card differ from what was saved (edited, truncated, corrupted)."""
    path = Path(path)
    if not card.checksums:
        warnings.warn(f"NPE model {path} has no checksums, so its files cannot be verified; saving it again "
                      "with sedppl.inference.npe.save_npe adds them", UserWarning, stacklevel=3)
        return
    if card.checksums.get("card") != _card_digest(card):
        raise ModelMismatchError(f"{path / 'card.json'} was edited after the model was saved (its checksum "
                                 "differs); restore it, or retrain")
    weights = path / "weights.eqx"
    if not weights.exists():
        raise ModelMismatchError(f"{weights} is missing")
    if _file_digest(weights) != card.checksums.get("weights.eqx"):
        raise ModelMismatchError(f"{weights} differs from the file the model was saved with (checksum "
                                 f"mismatch: modified, truncated or corrupted; {weights.stat().st_size} bytes); "
                                 "restore it, or retrain")


def read_card(path: str | Path) -> ModelCard:
    """The model card in ``path``; a card that is not JSON, not an object, or lacks a field is refused by name."""
    path = Path(path)
    file = path / "card.json"
    if not file.exists():
        raise FileNotFoundError(f"{path} is not an NPE model directory (no card.json)")
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelMismatchError(f"{file} is not valid JSON ({err}); restore it, or retrain") from None
    if not isinstance(data, dict):
        raise ModelMismatchError(f"{file} must hold a JSON object (a model card), got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(ModelCard)}
    required = [n for n, f in fields.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing, unknown = [n for n in required if n not in data], sorted(set(data) - set(fields))
    if missing or unknown:
        raise ModelMismatchError(f"{file} is not a whole model card: missing field(s) {missing}, unknown {unknown}; "
                                 "restore it, or retrain")
    return ModelCard.from_dict(data)


def load_npe(path: str | Path, bands=None, library: str | None = None, prior: Prior | None = None
             ) -> tuple[NPEPosterior, ModelCard]:
    """Load an NPE model, checking that it was trained for these bands, library and prior.

    ``bands`` may be any subset of the model's bands (absent ones are masked).
    """
    card = read_card(path)
    verify_model(path, card)
    if library is not None and library != card.library:
        raise ModelMismatchError(f"NPE model {path} was trained on library {card.library!r}, not {library!r}")
    if bands is not None:
        unknown = [b for b in bands if b not in card.bands]
        if unknown:
            raise ModelMismatchError(f"NPE model {path} was not trained on bands {unknown}; it knows {list(card.bands)}")
    if prior is not None and prior.to_dict() != card.prior().to_dict():
        differ = [k for k, v in prior.to_dict().items() if card.prior().to_dict().get(k) != v]
        raise ModelMismatchError(
            f"NPE model {path} was trained under another prior (tables that differ: {differ}). "
            "Retrain under this prior, or use --method npe-is, which importance-weights the NPE to the new prior."
        )
    stale = stale_zero_points(card)
    if stale:
        warnings.warn(f"NPE model {path} was trained under other photometric zero points ({stale}); plain NPE "
                      "draws inherit that offset until it is retrained, while npe-is weights them to the current "
                      "model", UserWarning, stacklevel=2)
    try:
        posterior = eqx.tree_deserialise_leaves(Path(path) / "weights.eqx", card.skeleton())
    except (RuntimeError, ValueError, TypeError, KeyError, OSError) as err:  # a card without checksums that does not fit its weights
        raise ModelMismatchError(f"NPE model {path}: weights.eqx does not fit the architecture in card.json ({err}); "
                                 "restore the files, or retrain") from err
    return posterior, card


def current_zero_points(bands) -> dict[str, float]:
    """m_AB - m_band of each band as the model defines it now (what a card records when trained)."""
    return {b: round(ab_minus_catalogue(b), 5) for b in bands}


def stale_zero_points(card: ModelCard) -> str:
    """'' when the card's zero points are today's, else what differs (a card without them predates them)."""
    if not card.zero_points:
        return "not recorded: trained before the catalogue zero points of 2026-11-30, up to 0.04 mag apart (SDSS u)"
    now = current_zero_points(card.bands)
    differ = {b: round(now[b] - card.zero_points.get(b, np.nan), 4) for b in card.bands
              if not abs(now[b] - card.zero_points.get(b, np.nan)) < 1e-4}
    return f"current minus trained, mag: {differ}" if differ else ""
