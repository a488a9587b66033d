#!/usr/bin/env bash
# The GPU benchmark: every throughput goal of issue 22, one section at a time, in under 8 minutes
# (TOTAL_SECONDS, default 470: later sections get what earlier ones left, at most their own limit).
#
#   bash benchmarks/gpu.sh [OUT_DIR]        # from the repository root, on a machine with one GPU
#   SECTIONS="npe npe-is" bash benchmarks/gpu.sh   # only some sections
#
# A machine without flowjax, blackjax, arviz or paramax gets them from wheels in .whl/ (built
# beforehand with `make wheels`; no network needed there). Each section runs under its own time limit,
# so one that fails or overruns costs only its own line; each writes OUT_DIR/gpu_<section>.json.
set -u
cd "$(dirname "$0")/.."
out=${1:-${OUT:-benchmarks/results}}
mkdir -p "$out"
py=${PYTHON:-python3}

if ! $py -c "import flowjax, blackjax, arviz, paramax" 2>/dev/null; then
    if ls .whl/*.whl >/dev/null 2>&1; then
        $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/sedppl-site .whl/*.whl \
            || { echo "could not install the wheels in .whl/"; exit 1; }
        export PYTHONPATH=/tmp/sedppl-site:${PYTHONPATH:-}
    else
        echo "flowjax, blackjax, arviz or paramax missing and no wheels in .whl/ (run 'make wheels' first)"; exit 1
    fi
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}
# one compilation cache for every section (each is its own process): what one compiled, the next reuses
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/sedppl-jax-cache} JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0

total=${TOTAL_SECONDS:-470}  # each section's limit is cut to what is left of this (from the script's start)
section() {  # name, time limit [s], extra arguments
    local name=$1 limit=$2; shift 2
    [[ " ${SECTIONS:-env forward npe npe-is nuts smc} " == *" $name "* ]] || return 0
    rm -f "$out/gpu_$name.json"  # a section stopped before its figure must not leave an earlier run's to be read
    local left=$((total - SECONDS))
    [ "$left" -lt "$limit" ] && limit=$left
    [ "$limit" -ge 30 ] || { echo "$name: not run (${left} s left of the script's ${total} s)"; return 0; }
    timeout "$limit" $py benchmarks/bench_gpu.py "$name" --out "$out" --budget $((limit - 20)) "$@" 2>"$out/gpu_$name.err"
    local rc=$?
    [ $rc -eq 0 ] || { echo "$name: FAILED (exit $rc; last lines of $out/gpu_$name.err follow)"; tail -n 5 "$out/gpu_$name.err"; }
}
section env 30
section forward 40
section npe 50
section npe-is 130
section nuts 200
section smc 100
echo "gpu.sh: ${SECONDS} s in all"
