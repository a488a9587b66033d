"""What a first fit waits for: wall time of the first NPE-IS (or NUTS) fits of a small catalogue, compilation included.

    python benchmarks/bench_compile.py [--stars 2 20] [--method npe-is|nuts]

Each catalogue size is fitted in a fresh process with an empty JAX compilation cache (as a user's
first run), with the default NPE model and its prior; prints one JSON line per size and writes
benchmarks/results/compile_<method>.json. Compare code versions by running this file from each checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ONE_RUN = """
import time, json
t0 = time.perf_counter()
import jax
from sedppl.inference.importance import ISConfig
from sedppl.inference.npe.card import read_card
from sedppl.io.catalog import read_catalog
from sedppl.io.fit import DEFAULT_NPE_MODEL, fit_catalog
from sedppl.model.simulate import NoiseModel, simulate_catalog
card = read_card(DEFAULT_NPE_MODEL)
catalog = read_catalog(simulate_catalog(jax.random.key(5), {n}, card.model(), NoiseModel(err_min=0.01, err_max=0.03)))
t1 = time.perf_counter()
fit = fit_catalog(catalog, "npe-is", prior=card.prior(), draws=400, fallback=False, progress=False)
t2 = time.perf_counter()
rescued = int((fit.summary["adapt_rounds"] > ISConfig().adapt_rounds).sum()) if "adapt_rounds" in fit.summary.colnames else -1
print(json.dumps({{"stars": {n}, "setup_s": t1 - t0, "first_fit_s": t2 - t1, "rescued": rescued}}))
"""

# NUTS: the sampler alone on n stars (2 chains x (100 + 100), one star per call: one program), twice
NUTS_RUN = """
import time, json
t0 = time.perf_counter()
import jax, numpy as np
from sedppl.inference.nuts import NUTSConfig, NUTSSampler
from sedppl.model.generative import sed_model
from sedppl.model.simulate import NoiseModel, simulate_catalog
from sedppl.io.catalog import read_catalog
model = sed_model()
c = read_catalog(simulate_catalog(jax.random.key(5), {n}, model, NoiseModel(err_min=0.01, err_max=0.03)))
sampler = NUTSSampler(model, NUTSConfig(chains=2, draws=100, warmup=100, stars_per_call=1, retry=False))
t1 = time.perf_counter()
sampler.sample(jax.random.key(0), c.err, c.mask, c.mag, progress=False)
t2 = time.perf_counter()
sampler.sample(jax.random.key(1), c.err, c.mask, c.mag, progress=False)
t3 = time.perf_counter()
print(json.dumps({{"stars": {n}, "setup_s": t1 - t0, "first_fit_s": t2 - t1, "second_fit_s": t3 - t2}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stars", type=int, nargs="+", default=[2, 20])
    parser.add_argument("--method", choices=["npe-is", "nuts"], default="npe-is")
    args = parser.parse_args()
    script = ONE_RUN if args.method == "npe-is" else NUTS_RUN
    results = []
    for n in args.stars:
        with tempfile.TemporaryDirectory() as cache:
            env = {"JAX_COMPILATION_CACHE_DIR": cache, "JAX_PLATFORMS": "cpu"}
            done = subprocess.run([sys.executable, "-c", script.format(n=n)], capture_output=True, text=True,
                                  env=os.environ | env, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row |= {"method": args.method, "date": date.today().isoformat(), "machine": platform.processor() or platform.machine()}
        results.append(row)
        print(json.dumps(row))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"compile_{args.method}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
