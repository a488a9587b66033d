"""NPE against NUTS and against the exact posterior (NPE-IS) on the two stars of the agreement tests.

    python validation/reference_stars.py [--model models/ideal] [--out validation/reports/reference_stars.md]

The stars and the NUTS reference are the test suite's own (``sedppl.diagnostics.reference``):
a Sun-like dwarf in Gaia + 2MASS + WISE at 0.05 mag, and the same star in all
bands at 0.02 mag. Per parameter the report gives the NPE median's shift and its
half-width (half the 16-84% interval) in NUTS half-widths, which is what
``tests/inference/npe/test_pretrained.py`` asserts; the share of NPE draws
where the posterior has no mass (log-joint 10 nats below the lowest 0.1% of
NUTS's); and, from importance sampling with many proposals, how much posterior
mass lies more than 3 NUTS sds above or below NUTS's Teff median -- mass in modes
that the NUTS chains may not visit.
"""

from __future__ import annotations

import argparse
import functools
from datetime import date
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sedppl.diagnostics.comparison import half_width, unsupported_fraction
from sedppl.diagnostics.reference import nuts_reference, reference_star
from sedppl.inference.importance import ImportanceSampler, ISConfig
from sedppl.inference.npe.card import load_npe
from sedppl.inference.npe.estimator import NPEEstimator
from sedppl.model.forward import PARAMS
from sedppl.model.generative import log_joint
from npe_accuracy import shown_path  # a sibling script (run as a script, validation/ is on sys.path)

ROOT = Path(__file__).resolve().parents[1]

SHOWN = (*PARAMS, "theta_mas")


def star_rows(name: str, model, posterior, photometry) -> tuple[list[str], str]:
    nuts = nuts_reference(model, *photometry)
    npe = NPEEstimator(posterior, model, draws=2000, stars_per_call=1).sample(
        jax.random.key(1), *photometry, progress=False)
    exact = ImportanceSampler(posterior, model, model, ISConfig(proposals=8000, draws=8000, stars_per_call=1)).sample(
        jax.random.key(5), *photometry, progress=False)
    shifts, widths = [], []
    for p in SHOWN:
        a, b = nuts.params[p][0].ravel(), npe.params[p][0].ravel()
        if p == "theta_mas":
            a, b = np.log10(a), np.log10(b)
        shifts.append((np.median(b) - np.median(a)) / half_width(a))
        widths.append(half_width(b) / half_width(a))
    of = jax.vmap(lambda v: log_joint(model, dict(zip(PARAMS, v)), *(x[0] for x in photometry)))
    reference, proposed = (np.asarray(of(jnp.stack([d.params[p][0].ravel() for p in PARAMS], -1))) for d in (nuts, npe))
    spurious = unsupported_fraction(reference, proposed)
    teff = nuts.params["teff"][0].ravel()
    far = np.abs(exact.x[0, :, 0] - np.median(teff)) > 3 * np.std(teff)
    far_mass = float(np.exp(exact.log_weights[0])[far].sum())
    return [
        f"| {name} | NPE median shift | " + " | ".join(f"{v:+.2f}" for v in shifts) + " |",
        f"| {name} | NPE half-width ratio | " + " | ".join(f"{v:.2f}" for v in widths) + " |",
        f"| {name} | NUTS median | " + " | ".join(
            f"{np.median(np.log10(nuts.params[p][0]) if p == 'theta_mas' else nuts.params[p][0]):.4g}" for p in SHOWN) + " |",
    ], (f"{name} star: {spurious:.1%} of NPE draws where the posterior has no mass; the exact posterior "
        f"(NPE-IS, 8000 proposals, k̂ {exact.khat[0]:.2f}, ESS {exact.ess[0]:.0f}) puts {far_mass:.1%} of its mass "
        f"more than 3 NUTS sds from NUTS's Teff median (NUTS sd {np.std(teff):.0f} K).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "ideal")  # its stars have idealised noise
    parser.add_argument("--out", type=Path, default=ROOT / "validation" / "reports" / "reference_stars.md")
    args = parser.parse_args()
    posterior, card = load_npe(args.model)
    model = card.model(marginalize_scale=True)
    stars = {"typical": reference_star, "bright": functools.partial(reference_star, bands=card.bands, err_mag=0.02)}
    rows, notes = [], []
    for name, make in stars.items():
        r, note = star_rows(name, model, posterior, make(model))
        rows += r
        notes.append(f"- {note}")
    report = [
        f"# NPE on the agreement tests' reference stars ({date.today().isoformat()})", "",
        f"`python validation/reference_stars.py --model {shown_path(args.model)}` on {jax.default_backend()}. Typical: Gaia + 2MASS + "
        "WISE at 0.05 mag; bright: all bands at 0.02 mag. Shifts and widths in NUTS half-widths (half the "
        "16-84% interval); θ as log10. The tests ask |shift| < 0.5, 0.5 < ratio < 2 and at most 2.5% of "
        "draws where the posterior has no mass.", "",
        "| star | measure | " + " | ".join(SHOWN) + " |", "|---|---|" + "---|" * len(SHOWN), *rows, "", *notes,
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
