"""Mutation check of the photometric science: each mutation below (a 1% change of the extinction, or a
5 mmag change of a zero point) must turn the model tests red.

    python validation/mutation_check.py

Applies one mutation at a time to the source, runs the relevant tests, restores the file, and prints
KILLED or SURVIVED per mutation; exits non-zero if any survived.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/model/", "-k", "extinction or zero_point or vega or willmer"]
MUTATIONS = [  # (file, original, mutated, what it means)
    ("sedppl/model/forward.py", "block - 0.4 * params[3]", "block - 0.4 * 1.01 * params[3]",
     "A_V scaled by 1.01 (spectral path)"),
    ("sedppl/model/forward.py", "extinction = params[3] * (", "extinction = 1.01 * params[3] * (",
     "A_V scaled by 1.01 (fast path)"),
    ("sedppl/model/extinction.py", "-5.13540e-02 + 1.00216 * rv", "-5.13540e-02 + 1.01218 * rv",
     "one optical F99 anchor slope +1%"),
    ("sedppl/model/extinction.py", "_C3, _C4 = 4.596, 0.99, 3.23, 0.41", "_C3, _C4 = 4.596, 0.99, 3.2623, 0.41",
     "2175 A bump strength +1%"),
    ("sedppl/model/passbands.py", 'vega="mod_002", vega_mag=0.023)', 'vega="mod_002", vega_mag=0.018)',
     "Gaia Vega magnitude -5 mmag"),
    ("sedppl/model/passbands.py", 'vega="mod_002"', 'vega="stis_011"', "Gaia Vega spectrum stis_011"),
    ("sedppl/model/passbands.py", "ab_offset=0.04)", "ab_offset=0.045)", "SDSS u offset +5 mmag"),
    ("sedppl/model/passbands.py", "ab_offset=-0.02)", "ab_offset=-0.015)", "SDSS z offset +5 mmag"),
    ("sedppl/model/passbands.py", '(("w1", 2.699)', '(("w1", 2.694)', "WISE W1 AB-Vega -5 mmag"),
    ("sedppl/model/passbands.py", '(("j", -0.025)', '(("j", -0.020)', "2MASS J Vega magnitude +5 mmag"),
]


def main() -> int:
    survived = 0
    for path, old, new, what in MUTATIONS:
        file = ROOT / path
        source = file.read_text()
        if source.count(old) != 1:
            print(f"STALE    {what}: {old!r} not found once in {path}")
            survived += 1
            continue
        file.write_text(source.replace(old, new))
        try:
            run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *TESTS],
                                 cwd=ROOT, capture_output=True, text=True)
        finally:
            file.write_text(source)
        killed = run.returncode != 0
        survived += not killed
        print(f"{'KILLED' if killed else 'SURVIVED':<8} {what}", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
