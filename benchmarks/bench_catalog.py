"""Peak memory and wall time of `sedppl fit` on large simulated catalogues; one process against Dask workers.

    python benchmarks/bench_catalog.py [--runs npe:10000 npe:100000 npe-is:10000:0 npe-is:10000:2]
                                       [--draws 20] [--proposals 200]

Each run is the command a user types, in a subprocess: ``sedppl fit CATALOG --method M --out DIR
--draws D --keep-draws 0 --quiet`` (npe-is also ``--proposals P --no-fallback``, so that what is
timed is importance sampling). ``M:N:0`` fits the single file of N stars in one process; ``M:N:W``
with W > 0 fits the same stars split into 8 Parquet partitions on a local Dask cluster of W workers
(W = 1 is one worker process). Peak memory is the largest total resident memory of the command's
process tree (psutil, sampled every 0.1 s: the CLI, and the Dask scheduler, nanny and worker
processes). The catalogues (simulate's default noise, the default NPE's prior and bands) are cached
in ``benchmarks/results/catalog/``. Results go to ``benchmarks/results/catalog.json`` and a Markdown
table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PARTITIONS = 8


def catalogue(n: int) -> Path:
    """N simulated stars of the default NPE's model as one Parquet file, and the same split into PARTITIONS
    files (cached per model: a new default model, e.g. one with another correction, gets its own stars)."""
    import jax

    from sedppl.inference.npe.card import read_card
    from sedppl.io.catalog import write_table
    from sedppl.io.partitions import partition_catalog
    from sedppl.io.run import code_fingerprint
    from sedppl.model.simulate import simulate_catalog

    card = read_card(ROOT / "models" / "default")
    folder = RESULTS / "catalog" / f"stars{n}_{card.checksums['card'][:8]}_{code_fingerprint()[:8]}"
    single = folder / "stars.parquet"
    if not single.exists():
        write_table(simulate_catalog(jax.random.key(n), n, card.model()), single)
        partition_catalog(single, -(-n // PARTITIONS), folder / "parts")
    return folder


def peak_run(command: list[str], timeout: float) -> tuple[float, float, int]:
    """Wall seconds, peak total RSS (GiB) of the process tree, and the exit code (-9: stopped at ``timeout``)."""
    import tempfile

    log = tempfile.TemporaryFile("w+")  # not a pipe: Dask's logging could fill one and stall the command
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        if time.perf_counter() - t0 > timeout:
            for p in [*root.children(recursive=True), root]:
                p.kill()
            proc.wait()
            break
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        log.seek(0)
        print(log.read()[-3000:], file=sys.stderr)
    return seconds, peak / 2**30, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["npe:10000:0", "npe:100000:0", "npe-is:10000:0",
                                                      "npe-is:10000:1", "npe-is:10000:2"])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--proposals", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds per run before it is stopped")
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        method, n, workers = run.split(":")
        n, workers = int(n), int(workers)
        folder = catalogue(n)
        out = folder / f"fit-{method}-{workers}"
        shutil.rmtree(out, ignore_errors=True)
        source = folder / ("parts" if workers else "stars.parquet")
        command = [sys.executable, "-m", "sedppl", "fit", str(source), "--method", method, "--out", str(out),
                   "--draws", str(args.draws), "--keep-draws", "0", "--quiet"]
        if method == "npe-is":
            command += ["--proposals", str(args.proposals), "--no-fallback"]
        if workers:
            command += ["--workers", str(workers)]
        seconds, peak, code = peak_run(command, args.timeout)
        row = {"method": method, "stars": n, "workers": workers, "seconds": round(seconds, 1),
               "stars_per_s": round(n / seconds, 1), "peak_gib": round(peak, 2), "exit": code}
        print(row, flush=True)
        rows.append(row)
    record = {"date": date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores", "command": " ".join(["python benchmarks/bench_catalog.py", *sys.argv[1:]]),
              "draws": args.draws, "proposals": args.proposals, "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / "catalog.json").open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    print("\n| method | stars | layout | wall (s) | stars/s | peak memory (GiB) |\n|---|---|---|---|---|---|")
    for r in rows:
        layout = "one file, one process" if not r["workers"] else f"{PARTITIONS} partitions, {r['workers']} Dask workers"
        print(f"| {r['method']} | {r['stars']:,} | {layout} | {r['seconds']:.0f} | {r['stars_per_s']:.0f} | "
              f"{r['peak_gib']:.2f} |")


if __name__ == "__main__":
    main()
