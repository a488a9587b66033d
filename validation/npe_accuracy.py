"""Accuracy and calibration of a trained NPE model on held-out simulations from its own model.

    python validation/npe_accuracy.py [--model models/default] [--n 10000] [--draws 500] [--update-card]
                                      [--simulations-from models/OTHER]

Simulates ``n`` stars with the model card's training noise (a random stream
never used in training), samples the NPE posterior of each, and reports per
parameter: RMSE of the posterior mean, 68% and 95% coverage (with 3-sigma
binomial bands) and the KS p-value of the PIT values; also the held-out NLL
(mean -log q of the true parameters), the share of draws rejected in grid
holes and the sampling speed. With ``--update-card`` the numbers go into the
model card (card.json and README.md). ``--simulations-from`` draws the stars
from another model card's model and noise instead, so that two models are
scored on the same held-out simulations.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import jax
import numpy as np

from sedppl.diagnostics.sbc import binomial_band, interval_coverage, pit_values, uniformity_pvalue
from sedppl.inference.npe.card import load_npe, read_card, save_npe
from sedppl.inference.npe.estimator import NPEEstimator
from sedppl.inference.npe.posterior import negative_log_likelihood
from sedppl.inference.npe.simulations import card_noise, simulate_batch
from sedppl.model.forward import PARAMS

HELD_OUT_SEED = 20261122  # not a training or validation stream (those derive from the config's seed)


def held_out(card, n: int, seed: int = HELD_OUT_SEED) -> dict[str, np.ndarray]:
    model = card.model()
    draw = jax.jit(lambda k: simulate_batch(k, model, card_noise(card.noise), 1000))
    chunks = [draw(k) for k in jax.random.split(jax.random.key(seed), -(-n // 1000))]
    return {k: np.concatenate([np.asarray(c[k]) for c in chunks])[:n] for k in chunks[0]}


def validation_nll(training: dict) -> str:
    """The card's validation NLL, with the validation set it was measured on (and the parent's score
    on that set for a fine-tuned model): NLLs on different sets do not compare."""
    line = (f"Best validation NLL (from training, on its {training.get('validation_stars')} validation stars "
            f"of seed {training.get('config', {}).get('seed')}): {training.get('best_validation_nll')}")
    if "init_from" in training:
        line += (f"; fine-tuned from `{training['init_from']['path']}`, whose weights scored "
                 f"{training['starting_validation_nll']} on the same stars")
    return line + "."


def shown_path(path: Path) -> str:
    """A path as the command line in the repository root would write it."""
    root = Path(__file__).resolve().parents[1]
    path = Path(path).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def held_out_nll(posterior, sims: dict[str, np.ndarray], size: int = 1000) -> float:
    """Mean -log q(true parameters | photometry) over the simulations: the training loss, held out."""
    loss = jax.jit(lambda b: negative_log_likelihood(posterior, b))
    n = len(sims["params"])
    parts = [float(loss({k: sims[k][i:i + size] for k in ("params", "err", "mask", "mag")})) * len(sims["params"][i:i + size])
             for i in range(0, n, size)]
    return sum(parts) / n


def evaluate(model_dir: Path, n: int, draws: int, simulations_from: Path | None = None) -> tuple[dict, list[str]]:
    posterior, card = load_npe(model_dir)
    source = read_card(simulations_from) if simulations_from else card
    if (tuple(source.bands), source.library) != (tuple(card.bands), card.library):
        raise SystemExit(f"--simulations-from {simulations_from}: its bands or library differ from {model_dir}'s; "
                         "the two models must read the same photometry")
    sims = held_out(source, n)
    nll = held_out_nll(posterior, sims)
    estimator = NPEEstimator(posterior, card.model(marginalize_scale=True), draws=draws, stars_per_call=250)
    estimator.sample(jax.random.key(1), sims["err"][:250], sims["mask"][:250], sims["mag"][:250], progress=False)  # compile
    t0 = time.perf_counter()
    out = estimator.sample(jax.random.key(2), sims["err"], sims["mask"], sims["mag"])
    seconds = time.perf_counter() - t0
    band68, band95 = binomial_band(0.68, n), binomial_band(0.95, n)
    metrics = {"held_out_stars": n, "draws_per_star": draws,
               "rejected_fraction": round(float(out.n_rejected.sum() / (out.n_rejected.sum() + n * draws)), 4),
               "stars_per_second_cpu": round(n / seconds, 1), "held_out_nll": round(nll, 4)}
    rows = []
    for i, p in enumerate(PARAMS):
        x = out.params[p][:, 0]
        truth = sims["params"][:, i]
        rmse = float(np.sqrt(np.mean((x.mean(1) - truth) ** 2)))
        pit = pit_values(x, truth)
        c68, c95, ks = interval_coverage(pit, 0.68), interval_coverage(pit, 0.95), uniformity_pvalue(pit)
        metrics[f"rmse_{p}"] = round(rmse, 4)
        metrics[f"coverage68_{p}"] = round(c68, 4)
        metrics[f"coverage95_{p}"] = round(c95, 4)
        ok = band68[0] <= c68 <= band68[1] and band95[0] <= c95 <= band95[1]
        rows.append(f"| {p} | {rmse:.4g} | {np.std(truth):.4g} | {c68:.3f} | {c95:.3f} | {ks:.3f} | {'yes' if ok else 'no'} |")
    bright = np.nanmedian(np.where(sims["mask"], sims["err"], np.nan), axis=1) < 0.02
    teff_mean = out.params["teff"][:, 0].mean(1)
    metrics["rmse_teff_median_err_below_0.02"] = round(float(np.sqrt(np.mean((teff_mean - sims["params"][:, 0])[bright] ** 2))), 1)
    lines = [
        f"# NPE accuracy on held-out simulations ({date.today().isoformat()})", "",
        f"`python validation/npe_accuracy.py --model {shown_path(model_dir)} --n {n} --draws {draws}"
        f"{' --simulations-from ' + shown_path(simulations_from) if simulations_from else ''}` on "
        f"{jax.default_backend()} ({jax.devices()[0].device_kind}).", "",
        f"{n} stars drawn from {'the model of ' + shown_path(simulations_from) if simulations_from else 'the model'} "
        f"with {'its' if simulations_from else 'the card' + chr(39) + 's'} training noise ({card_noise(source.noise)}), "
        f"from a random stream not used in training; {draws} NPE draws per star.", "",
        f"Held-out NLL (mean -log q of the true parameters over these {n} stars): **{nll:.4f}**.", "",
        validation_nll(card.training), "",
        "| parameter | RMSE of posterior mean | prior sd of truths | 68% coverage | 95% coverage | KS p (PIT) | within 3σ band |",
        "|---|---|---|---|---|---|---|", *rows, "",
        f"3-sigma binomial bands for {n} stars: 68% in [{band68[0]:.3f}, {band68[1]:.3f}], 95% in [{band95[0]:.3f}, {band95[1]:.3f}].",
        "", f"Teff RMSE for the {int(bright.sum())} stars whose median band error is below 0.02 mag: "
        f"{metrics['rmse_teff_median_err_below_0.02']} K.", "",
        f"Draws rejected in grid holes: {metrics['rejected_fraction']:.2%}. Sampling: {seconds:.0f} s for {n} stars "
        f"({metrics['stars_per_second_cpu']} stars/s, {n * draws / seconds:.3g} draws/s including the scale draws).",
    ]
    return metrics, lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=Path(__file__).parents[1] / "models" / "default")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "reports" / "npe_accuracy.md")
    parser.add_argument("--update-card", action="store_true", help="write the metrics into the model card")
    parser.add_argument("--simulations-from", type=Path, help="draw the held-out stars from this model card's model "
                        "and noise (compare two models on the same simulations)")
    args = parser.parse_args()
    if args.update_card and args.simulations_from:
        parser.error("--update-card records a model's metrics on its own simulations; drop --simulations-from")
    metrics, lines = evaluate(args.model, args.n, args.draws, args.simulations_from)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.update_card:
        posterior, card = load_npe(args.model)
        report = args.out.resolve()
        root = Path(__file__).resolve().parents[1]
        card.metrics = metrics | {"date": date.today().isoformat(),
                                  "report": str(report.relative_to(root) if report.is_relative_to(root) else report)}
        save_npe(args.model, posterior, card)


if __name__ == "__main__":
    main()
