"""Whole-process time per star, `sedppl fit` from catalogue to written outputs, for every method at its defaults.

    python benchmarks/bench_whole.py [--stars 10000] [--nuts-stars 32] [--methods npe npe-is nuts]

Issue 22's end-to-end comparison: the command a user types, in a subprocess, timed from its start to its
exit (start-up, reading, compiling, fitting, rescue or retry passes, writing): ``sedppl fit CATALOG
--method M --out DIR --quiet`` and nothing else, so each method runs at its defaults (NUTS: 4 chains ×
(1000 warm-up + 1000 draws), with the retry of flagged stars; npe-is: the NPE's draws, the rescue pass
and the SMC fallback for stars still unreliable). npe and npe-is fit all ``--stars`` simulated stars
(``bench_catalog``'s cached catalogue: simulate's default noise, the default NPE's prior and bands); NUTS,
far slower, fits the first ``--nuts-stars`` of the same catalogue, and its seconds per star are what the
others are compared with. Each run's start-up and compilation are spread over its own stars, so NUTS's
few stars carry more of them per star than npe's many: the ratios favour npe and npe-is by that much. Results are appended to ``benchmarks/results/whole.json`` and a Markdown table
is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from datetime import date
from pathlib import Path

import numpy as np
from astropy.table import Table

from bench_catalog import RESULTS, catalogue, peak_run  # a sibling script (benchmarks/ is on sys.path)


def first_rows(single: Path, n: int) -> Path:
    """The first ``n`` stars of a catalogue as their own Parquet file (cached beside it)."""
    path = single.parent / f"first{n}.parquet"
    if not path.exists():
        Table.read(single)[:n].write(path, format="parquet")
    return path


def fitted(out: Path) -> dict:
    """Trusted and flagged counts from a finished run's summary."""
    summary = Table.read(out / "summary.parquet")
    flags = np.asarray(summary["flag"]).astype(str)
    counts = {"trusted": int(np.sum(np.asarray(summary["trusted"], bool))), "flagged": int(np.sum(flags != ""))}
    if "fallback" in summary.colnames:  # npe-is: the stars refitted by the fallback engine, and their seconds
        refitted = np.asarray(summary["fallback"], bool)
        counts.update(fallback=int(refitted.sum()),
                      fallback_seconds=round(float(np.sum(np.asarray(summary["seconds"])[refitted])), 1))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=10000)
    parser.add_argument("--nuts-stars", type=int, default=32)
    parser.add_argument("--methods", nargs="+", default=["npe", "npe-is", "nuts"], choices=("npe", "npe-is", "nuts"))
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds per run before it is stopped")
    args = parser.parse_args()
    single = catalogue(args.stars) / "stars.parquet"
    rows = []
    for method in args.methods:
        n = min(args.nuts_stars, args.stars) if method == "nuts" else args.stars
        if n < 1:
            continue  # --nuts-stars 0: no NUTS run
        source = first_rows(single, n) if n < args.stars else single
        out = single.parent / f"whole-{method}-{n}"
        shutil.rmtree(out, ignore_errors=True)
        seconds, peak, code = peak_run([sys.executable, "-m", "sedppl", "fit", str(source), "--method", method,
                                        "--out", str(out), "--quiet"], args.timeout)
        row = {"method": method, "stars": n, "seconds": round(seconds, 1), "peak_gib": round(peak, 2), "exit": code}
        if code == 0:  # a stopped or failed run has no time per star
            row.update(seconds_per_star=seconds / n, **fitted(out))
        print(row, flush=True)
        rows.append(row)
    record = {"date": date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores", "command": " ".join(["python benchmarks/bench_whole.py", *sys.argv[1:]]),
              "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / "whole.json").open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    nuts = next((r["seconds_per_star"] for r in rows if r["method"] == "nuts" and r["exit"] == 0), None)
    print("\n| method | stars | wall (s) | s/star | NUTS s/star ÷ this | trusted | flagged | exit |\n"
          "|---|---|---|---|---|---|---|---|")
    for r in rows:
        per_star = r.get("seconds_per_star")
        ratio = f"{nuts / per_star:.0f}×" if nuts and per_star else "–"
        print(f"| {r['method']} | {r['stars']:,} | {r['seconds']:.0f} | {f'{per_star:.3g}' if per_star else '–'} | {ratio} | "
              f"{r.get('trusted', '–')} | {r.get('flagged', '–')} | {r['exit']} |")


if __name__ == "__main__":
    main()
