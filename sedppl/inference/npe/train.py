"""Training an NPE model: fresh simulations per batch, jit-compiled epochs, early stopping, checkpoints.

    sedppl train --config CONFIG.toml [--out DIR] [--resume]

An epoch is one compiled ``lax.scan`` of ``steps_per_epoch`` optimiser steps,
each on a fresh batch simulated inside the step. A fixed validation set
(simulated once from its own seed) decides early stopping; the best weights
are kept. Every epoch writes a checkpoint (``checkpoint.json`` naming one of two
weight files, see ``_checkpoint``) so an interrupted run, killed at any moment,
resumes where it stopped, with the same random stream.

``[train] init_from = "DIR"`` starts from a trained model's weights instead of
random ones (fine-tuning: a further schedule, or another prior or noise model
on the same bands, library and architecture, to which a conditional affine
layer may be added; or another kind of flow, which starts afresh on the
parent's encoder). The starting weights count as epoch 0, so the result is
never worse on the validation set than its parent -- except into another kind
of flow, whose epoch 0 is the fresh flow's.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import paramax
from tqdm.auto import tqdm

from ...model.checks import is_real, is_whole
from ...model.corrections import correction_name
from ...model.files import read_toml
from ...model.generative import sed_model
from ...model.passbands import SURVEY_BANDS
from ...model.priors import LIBRARY_FLOOR, Prior
from .card import ModelCard, code_hash, current_zero_points, data_hash, load_npe, save_npe
from .posterior import Architecture, NPEPosterior, negative_log_likelihood
from ...model.surveys import SurveyNoise
from .simulations import ADDED_SINCE, TrainingNoise, simulate_batch, training_noise


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (a TOML file with [model], [noise], [architecture], [train])."""

    library: str = "phoenix"
    forward: str = "fast"  # the forward model's path (model.forward.PATHS)
    correction: str = "default"  # the library's empirical correction (model.corrections)
    bands: tuple[str, ...] = SURVEY_BANDS
    prior: str = "default"  # "default" or a prior TOML path
    noise: TrainingNoise | SurveyNoise = TrainingNoise()  # [noise] kind = "ideal" (default) or "survey"
    architecture: Architecture = Architecture()
    seed: int = 0
    batch_size: int = 256
    steps_per_epoch: int = 200
    max_epochs: int = 200
    max_minutes: float = math.inf
    learning_rate: float = 1e-3
    warmup_steps: int = 500
    patience: int = 20  # epochs without a better validation loss before stopping
    val_size: int = 4096
    init_from: str | None = None  # a trained model directory to start from (fine-tuning)

    def __post_init__(self):
        """Refuse, by name, settings that would fail deep inside or train a model that reads as finished but
        is not one (a negative learning rate, zero epochs)."""
        for name, low in (("seed", 0), ("batch_size", 1), ("steps_per_epoch", 1), ("max_epochs", 1),
                          ("warmup_steps", 0), ("patience", 1), ("val_size", 1)):
            value = getattr(self, name)
            if not is_whole(value, low):
                raise ValueError(f"training config: [train] {name} must be a whole number >= {low}, got {value!r}")
        rate, budget = self.learning_rate, self.max_minutes
        if not is_real(rate) or not 0 < rate < math.inf:
            raise ValueError(f"training config: [train] learning_rate must be a finite number > 0, got {rate!r}")
        if not is_real(budget) or not budget >= 0:  # 0: one epoch
            raise ValueError(f"training config: [train] max_minutes must be a number >= 0, got {budget!r}")

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        tables = read_toml(path, "training config")
        unknown = set(tables) - {"model", "noise", "architecture", "train"}
        if unknown:
            raise ValueError(f"training config {path}: unknown table(s) {sorted(unknown)}")
        allowed = {"model": {"library", "forward", "bands", "prior", "correction"}, "train": _fields(cls) - {
                   "library", "forward", "bands", "prior", "correction", "noise", "architecture"}, "architecture": _fields(Architecture)}
        for name, table in tables.items():
            if name == "noise":
                continue  # checked by training_noise, which knows each kind's keys
            unknown_keys = set(table) - allowed[name]
            if unknown_keys:
                raise ValueError(f"training config {path}: [{name}] has unknown key(s) {sorted(unknown_keys)}; "
                                 f"allowed: {sorted(allowed[name])}")
        model = dict(tables.get("model", {}))
        if "bands" in model:
            model["bands"] = tuple(model["bands"])
        if "prior" in model and model["prior"] != "default":
            model["prior"] = str((Path(path).parent / model["prior"]).resolve())
        train = dict(tables.get("train", {}))
        if train.get("init_from"):
            train["init_from"] = str((Path(path).parent / train["init_from"]).resolve())
        return cls(**model, **train, noise=training_noise(tables.get("noise", {})),
                   architecture=Architecture(**tables.get("architecture", {})))

    def load_prior(self) -> Prior:
        return Prior.default() if self.prior == "default" else Prior.load(self.prior)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["bands"] = list(self.bands)
        return out

    def run_definition(self) -> dict:
        """What defines the training run; a resumed run may change only its budget (max_minutes).
        The prior enters by its content, so that "default" means the prior the run started under."""
        out = self.to_dict() | {"prior": self.load_prior().to_toml()}
        out.pop("max_minutes")
        return out


def warm_start(posterior: NPEPosterior, config: TrainConfig) -> tuple[NPEPosterior, dict]:
    """``posterior`` with the trainable weights of the model in ``config.init_from``, and what the
    card records of that parent. The support box stays the new prior's; a conditional affine layer
    that the parent lacks keeps its initial weights (the identity). Under another support map the
    encoder and flow layers start from the parent's, the base is the new map's. Under another kind
    of flow (``Architecture.flow``) only the encoder starts from the parent's; the flow starts afresh."""
    parent, card = load_npe(config.init_from)
    theirs = Architecture.from_card(card.architecture)
    mine = config.architecture
    new_flow = mine.flow != theirs.flow
    flow_sizes = ("flow", "flow_layers", "flow_width", "flow_depth", "knots", "interval", "conditional_affine")
    allowed = replace(theirs, conditional_affine=theirs.conditional_affine or mine.conditional_affine,
                      support_map=mine.support_map)
    if new_flow:
        allowed = replace(allowed, **{k: getattr(mine, k) for k in flow_sizes})
    differ = [name for name, ours, parents in (("bands", list(config.bands), list(card.bands)),
                                               ("library", config.library, card.library),
                                               ("architecture", mine, allowed)) if ours != parents]
    if differ:
        raise ValueError(f"init_from {config.init_from}: the model's {' and '.join(differ)} differ from this "
                         "configuration's; fine-tuning keeps bands, library and architecture (it may only add a "
                         "conditional affine layer, change the support map, or start another kind of flow)")
    n = len(parent.flow.bijection.bijections) - 1  # the parent's flow and its affine layer, if any: all but the box
    same_base = theirs.support_map == mine.support_map  # another map has another (fixed) base
    if new_flow:
        layers = lambda p: (p.encoder,)  # noqa: E731
    else:
        layers = lambda p: (p.encoder, *([p.flow.base_dist] if same_base else []),  # noqa: E731
                            *p.flow.bijection.bijections[:n])
    t = card.training
    lineage = {k: t.get(k) for k in ("epochs", "simulations_seen", "minutes", "best_validation_nll", "date")}
    lineage |= {"path": Path(config.init_from).name, "code_hash": card.code_hash, "init_from": t.get("init_from"),
                "forward": card.forward}  # a parent trained on another forward path is fine-tuned onto this one
    if new_flow:
        lineage["kept"] = "encoder"
    return eqx.tree_at(layers, posterior, layers(parent)), lineage


def _run_definition_as_written(written: dict, config: TrainConfig) -> dict:
    """A checkpoint's run definition with the keys added since it was written filled in as they were then:
    architecture keys by their defaults, a survey noise's ``error_scatter`` and ``dropout`` by 0 (what the
    code did before them), a prior named rather than stored by its content read as the name meant then
    ("default": the default prior, whose floor was 0.02 mag before 2026-12-02)."""
    written = {k: v for k, v in written.items() if k != "max_minutes"}
    if written["prior"] == "default":
        written["prior"] = Prior.default(sys_floor=0.02).to_toml()
    elif not written["prior"].lstrip().startswith("["):
        written["prior"] = Prior.load(written["prior"]).to_toml() if Path(written["prior"]).exists() else written["prior"]
    written["architecture"] = Architecture(**written["architecture"]).to_dict()
    if isinstance(config.noise, SurveyNoise):
        written["noise"] = ADDED_SINCE["survey"] | written["noise"]
    return written


def _checkpoint(out: Path, weights, saved: dict) -> None:
    """Write an epoch's checkpoint so that a kill at any moment leaves the last complete one readable.

    The weights go to the slot the previous epoch did not use; only then is ``checkpoint.json``
    replaced (atomically) by one that names that slot and the epoch's state."""
    slot = f"checkpoint-{saved['state']['epoch'] % 2}.eqx"
    eqx.tree_serialise_leaves(out / slot, weights)
    staged = out / "checkpoint.json.tmp"
    staged.write_text(json.dumps(saved | {"weights": slot}))
    os.replace(staged, out / "checkpoint.json")


def _portable(config: dict, out: Path) -> dict:
    """The config as the card records it: file paths relative to the model directory, not this machine's."""
    paths = {k: os.path.relpath(config[k], out) for k in ("prior", "init_from")
             if config.get(k) and config[k] != "default"}
    return config | paths


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _is_frozen(leaf) -> bool:
    return isinstance(leaf, paramax.NonTrainable)


class Trainer:
    """Holds the compiled epoch and validation functions of one configuration."""

    def __init__(self, config: TrainConfig):
        self.config = c = config
        self.model = sed_model(c.library, c.bands, c.load_prior(), path=c.forward, correction=c.correction)
        schedule = optax.warmup_cosine_decay_schedule(
            0.0, c.learning_rate, c.warmup_steps, max(c.max_epochs * c.steps_per_epoch, c.warmup_steps + 1),
            end_value=0.02 * c.learning_rate)
        # a rare non-finite batch loss skips its update instead of poisoning the weights
        self.optimizer = optax.apply_if_finite(
            optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=1e-5)), max_consecutive_errors=20)
        self.epoch = eqx.filter_jit(self._epoch)
        self.validation_loss = eqx.filter_jit(self._validation_loss)

    def initial_state(self):
        c = self.config
        posterior = NPEPosterior(jax.random.key(c.seed), len(c.bands), self.model.support(),
                                 self.model.prior.nominal_floor, c.architecture)
        params, _ = eqx.partition(posterior, eqx.is_inexact_array, is_leaf=_is_frozen)
        return posterior, self.optimizer.init(params)

    def _epoch(self, posterior, opt_state, key):
        params, static = eqx.partition(posterior, eqx.is_inexact_array, is_leaf=_is_frozen)
        c = self.config

        def step(carry, k):
            params, opt_state = carry
            batch = simulate_batch(k, self.model, c.noise, c.batch_size)
            loss, grads = eqx.filter_value_and_grad(
                lambda p: negative_log_likelihood(paramax.unwrap(eqx.combine(p, static)), batch))(params)
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            return (eqx.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), jax.random.split(key, c.steps_per_epoch))
        return eqx.combine(params, static), opt_state, jnp.mean(losses)

    def _validation_loss(self, posterior, batch):
        return negative_log_likelihood(paramax.unwrap(posterior), batch)

    @functools.cached_property
    def validation_set(self):
        c = self.config
        key = jax.random.fold_in(jax.random.key(c.seed), 10**6)  # never drawn for training
        return jax.jit(lambda k: simulate_batch(k, self.model, c.noise, c.val_size))(key)


@functools.cache
def _trainer(config: TrainConfig) -> Trainer:
    return Trainer(config)  # compiled once per configuration and process


def train(config: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True) -> tuple[NPEPosterior, ModelCard]:
    """Train (or resume) and save the best model with its card in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trainer = _trainer(replace(config, max_minutes=math.inf))
    posterior, opt_state = trainer.initial_state()
    state = {"epoch": 0, "best_val": math.inf, "best_epoch": 0, "seconds": 0.0, "history": []}
    val = trainer.validation_set
    definition = config.run_definition()  # read once: the prior the trainer was built with, whatever its file does later
    resuming = resume and (out / "checkpoint.json").exists()
    if not resuming:  # a fresh run never writes into the slots a stale checkpoint names
        (out / "checkpoint.json").unlink(missing_ok=True)
    if config.init_from and not resuming:  # a resumed fine-tune has its start in the checkpoint
        posterior, lineage = warm_start(posterior, config)
        state.update(best_val=float(trainer.validation_loss(posterior, val)), parent=lineage)
        state["history"].append([0, None, state["best_val"]])
    best = posterior
    if resuming:
        saved = json.loads((out / "checkpoint.json").read_text())
        if _run_definition_as_written(saved["config"], config) != definition:
            raise ValueError(f"{out}/checkpoint.json was written by another configuration; refusing to resume")
        weights = out / saved.get("weights", "checkpoint.eqx")  # checkpoints before 2026-12-01: one file
        posterior, opt_state, best = eqx.tree_deserialise_leaves(weights, (posterior, opt_state, best))
        state = saved["state"]
    key = jax.random.key(config.seed)
    t_start = time.perf_counter() - state["seconds"]
    stale = state["epoch"] - state["best_epoch"]
    bar = tqdm(total=config.max_epochs, initial=state["epoch"], desc="NPE training", unit="epoch", disable=not progress)
    while state["epoch"] < config.max_epochs and stale < config.patience:
        posterior, opt_state, train_loss = trainer.epoch(posterior, opt_state, jax.random.fold_in(key, state["epoch"]))
        val_loss = float(trainer.validation_loss(posterior, val))
        state["epoch"] += 1
        state["seconds"] = time.perf_counter() - t_start
        state["history"].append([state["epoch"], float(train_loss), val_loss])
        if val_loss < state["best_val"]:
            state.update(best_val=val_loss, best_epoch=state["epoch"])
            best = posterior
        stale = state["epoch"] - state["best_epoch"]
        _checkpoint(out, (posterior, opt_state, best), {"config": definition, "state": state})
        bar.set_postfix(train=f"{float(train_loss):.3f}", val=f"{val_loss:.3f}", best=f"{state['best_val']:.3f}")
        bar.update(1)
        if state["seconds"] > 60 * config.max_minutes:
            break
    bar.close()

    sims = state["epoch"] * config.steps_per_epoch * config.batch_size
    card = ModelCard(
        library=config.library, forward=config.forward, bands=tuple(config.bands),
        correction=correction_name(trainer.model.correction),
        prior_toml=config.load_prior().to_toml(),
        noise=config.noise.to_dict(), architecture=config.architecture.to_dict(),
        training={
            "date": date.today().isoformat(), "device": f"{jax.default_backend()} ({jax.devices()[0].device_kind})",
            "epochs": state["epoch"], "best_epoch": state["best_epoch"], "simulations_seen": sims,
            "minutes": round(state["seconds"] / 60, 1), "simulations_per_second": round(sims / max(state["seconds"], 1e-9)),
            "best_validation_nll": round(state["best_val"], 4), "validation_stars": config.val_size,
            "stopped": "patience" if stale >= config.patience else ("time" if state["epoch"] < config.max_epochs else "max_epochs"),
            "config": _portable(config.to_dict(), out), "history": state["history"],
        } | ({"init_from": state["parent"], "starting_validation_nll": round(state["history"][0][2], 4)}
             if "parent" in state else {}),
        data_hash=data_hash(config.library, config.load_prior().sys_floor == LIBRARY_FLOOR, config.forward),
        code_hash=code_hash(),
        zero_points=current_zero_points(config.bands),
    )
    save_npe(out, best, card)
    return best, card
