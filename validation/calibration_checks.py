"""Absolute calibration checks of the forward model, printed as Markdown.

    python validation/calibration_checks.py

- the solar model (5772 K, 4.44, 0) at 10 pc against Willmer (2018) absolute magnitudes;
- Vega-system colours of a Phoenix model at Vega's parameters (9600 K, 4.0, -0.5);
- the largest |A_lambda/A_V| difference from the `extinction` package's F99, R_V 2-6.
"""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np

from sedppl.model.extinction import fitzpatrick99
from sedppl.model.forward import MAS_IN_RAD, forward_model
from sedppl.model.passbands import REGISTRY

# Willmer (2018, ApJS 236, 47): V and Ks confirmed from the abstract; the others as recalled from Table 3.
WILLMER_SUN = {"bessell_v": 4.81, "gaia_g": 4.67, "gaia_bp": 5.03, "gaia_rp": 4.18,
               "2mass_j": 3.67, "2mass_h": 3.32, "2mass_ks": 3.27, "wise_w1": 3.26, "wise_w2": 3.28}
R_SUN_CM, PC_CM = 6.957e10, 3.0856775814913673e18


def main() -> None:
    t0 = time.time()
    bands = tuple(WILLMER_SUN)
    fm = forward_model("phoenix", bands)
    theta = 2 * R_SUN_CM / (10 * PC_CM) / MAS_IN_RAD
    sun = np.asarray(fm.magnitudes(jnp.array([5772.0, 4.44, 0.0, 0.0, 3.1]), np.log10(theta)))
    print("| band | Phoenix Sun at 10 pc | Willmer 2018 | difference |\n|---|---|---|---|")
    for b, m in zip(bands, sun):
        print(f"| {b} | {m:.3f} | {WILLMER_SUN[b]:.2f} | {m - WILLMER_SUN[b]:+.3f} |")
    vega = np.asarray(fm.surface_magnitudes(jnp.array([9600.0, 4.0, -0.5, 0.0, 3.1])))
    colours = np.diff(vega - np.array([REGISTRY[b].vega_mag for b in bands]))
    print(f"\nPhoenix model of Vega: max |adjacent Vega-system colour| = {np.max(np.abs(colours)):.3f} mag")
    import extinction

    wave = np.geomspace(910.0, 60000.0, 3000)
    worst = max(np.abs(np.asarray(fitzpatrick99(wave, rv)) - extinction.fitzpatrick99(wave, 1.0, rv)).max()
                for rv in (2.0, 2.3, 2.5, 3.1, 3.7, 4.0, 5.0, 5.5, 6.0))
    print(f"F99 vs extinction.fitzpatrick99, 910 A - 6 um, R_V 2-6: max |dA/A_V| = {worst:.1e}")
    print(f"\nRan in {time.time() - t0:.0f} s.")


if __name__ == "__main__":
    main()
