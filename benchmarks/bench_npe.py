"""NPE throughput: posterior draws per second and stars per second, and training simulations per second.

    python benchmarks/bench_npe.py [--model models/default] [--stars 500] [--draws 1000] [--train-epochs 3]

Sampling: ``stars`` simulated stars, ``draws`` valid draws each (grid-hole
rejection and the exact scale draw included), second (compiled) run timed.
Training: the model card's architecture and batch size, epochs of fresh
simulations, the first (compiling) epoch excluded.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import jax

from sedppl.inference.npe.card import load_npe
from sedppl.inference.npe.estimator import NPEEstimator
from sedppl.inference.npe.posterior import Architecture
from sedppl.inference.npe.simulations import card_noise
from sedppl.inference.npe.train import TrainConfig, Trainer
from sedppl.io.catalog import read_catalog
from sedppl.model.simulate import simulate_catalog


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=Path(__file__).parents[1] / "models" / "default")
    parser.add_argument("--stars", type=int, default=500)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--stars-per-call", type=int, default=100)
    parser.add_argument("--train-epochs", type=int, default=3)
    args = parser.parse_args()
    posterior, card = load_npe(args.model)
    model = card.model(marginalize_scale=True)
    catalog = read_catalog(simulate_catalog(jax.random.key(0), args.stars, card.model()))
    estimator = NPEEstimator(posterior, model, draws=args.draws, stars_per_call=args.stars_per_call)
    estimator.sample(jax.random.key(1), catalog.err, catalog.mask, catalog.mag, progress=False)
    t0 = time.perf_counter()
    out = estimator.sample(jax.random.key(2), catalog.err, catalog.mask, catalog.mag, progress=False)
    seconds = time.perf_counter() - t0
    result = {"date": date.today().isoformat(), "device": f"{jax.default_backend()} ({jax.devices()[0].device_kind})",
              "stars": args.stars, "draws_per_star": args.draws, "sampling_seconds": round(seconds, 2),
              "stars_per_second": round(args.stars / seconds, 1), "draws_per_second": round(args.stars * args.draws / seconds),
              "rejected_fraction": round(float(out.n_rejected.sum() / (out.n_rejected.sum() + args.stars * args.draws)), 4)}

    training = card.training.get("config", {})
    config = replace(TrainConfig(), architecture=Architecture.from_card(card.architecture), noise=card_noise(card.noise),
                     forward=card.forward, prior=str(Path(args.model) / "prior.toml"),
                     batch_size=training.get("batch_size", 256), steps_per_epoch=training.get("steps_per_epoch", 100))
    trainer = Trainer(config)
    state, opt_state = trainer.initial_state()
    state, opt_state, _ = jax.block_until_ready(trainer.epoch(state, opt_state, jax.random.key(0)))
    t0 = time.perf_counter()
    for e in range(args.train_epochs):
        state, opt_state, loss = trainer.epoch(state, opt_state, jax.random.key(e + 1))
    jax.block_until_ready(loss)
    seconds = time.perf_counter() - t0
    result["training_simulations_per_second"] = round(args.train_epochs * config.steps_per_epoch * config.batch_size / seconds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
