#!/usr/bin/env bash
# Forward-model throughput of this checkout against an earlier commit's, in one run on one machine:
# the earlier commit's own bench_forward.py, then this one's, twice over (A B A B), so that the ratio
# is read from neighbouring measurements.
#
#   bash benchmarks/forward_against.sh [COMMIT=cdc70dc] [BATCH=100000] [REPEATS=5]
#
# Each figure is the median of REPEATS timed calls; at small batches, where a call takes milliseconds on
# this shared machine, take more (e.g. 10000 50).
#
# cdc70dc is the landed code when issue 22 (throughput) was filed: its only forward path interpolates
# spectra multilinearly. Needs the repository's .venv (make .venv/.installed).
set -euo pipefail
commit=${1:-cdc70dc}
batch=${2:-100000}
repeats=${3:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
then_dir=$(mktemp -d)
child=
cleanup() {
  if [ -n "$child" ]; then kill "$child" 2>/dev/null || true; fi  # a bench still running when we are stopped
  git -C "$here" worktree remove --force "$then_dir/tree" 2>/dev/null || true
  git -C "$here" worktree prune || true
  rm -rf "$then_dir"
}
trap cleanup EXIT
trap 'exit 143' TERM INT  # leave through cleanup (wait returns at once on a trapped signal)
git -C "$here" worktree add --detach -q "$then_dir/tree" "$commit"
echo "# $(date -u +%FT%TZ) $(uname -n), $(nproc) cores; batch $batch, repeats $repeats; then: $commit; now: $(git -C "$here" describe --always --dirty)"
(cd "$then_dir/tree" && PYTHONPATH=. "$python" -c 'import sedppl; print("# then imports", sedppl.__file__)')
(cd "$here" && "$python" -c 'import sedppl; print("# now imports", sedppl.__file__)')
then_paths=()  # a commit whose bench knows paths measures the fast and multilinear ones, as now
if grep -q -- '--paths' "$then_dir/tree/benchmarks/bench_forward.py"; then then_paths=(--paths fast multilinear); fi
# One bench run: in the background and waited for, so that a signal reaches this script at once and
# cleanup stops the run (exec makes the waited-for pid the bench itself); then its table rows.
bench() {
  local dir=$1 label=$2
  shift 2
  (cd "$dir" && PYTHONPATH=. exec "$python" benchmarks/bench_forward.py --batch "$batch" --repeats "$repeats" "$@") \
    > "$then_dir/out" &
  child=$!
  wait "$child"
  child=
  grep '^|' "$then_dir/out" || { echo "no result rows from $label" >&2; exit 1; }
}
for round in 1 2; do
  echo "## round $round: $commit"
  bench "$then_dir/tree" "$commit" ${then_paths[@]+"${then_paths[@]}"}
  echo "## round $round: now"
  bench "$here" now --paths fast multilinear
done
