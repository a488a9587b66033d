"""benchmarks/bench_gpu.py: every shape an exact engine's result can take prints its line (the GPU run
is the one place it is read, with minutes that cannot be spent again)."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench_gpu():
    sys.path.insert(0, str(BENCHMARKS))  # it imports a sibling script, as when run from benchmarks/
    try:
        spec = importlib.util.spec_from_file_location("bench_gpu", BENCHMARKS / "bench_gpu.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


BASE = {"stars": 4096, "stars_per_call": 4096, "compile_seconds": 61.2, "goal": 1000.0}
CUT = {"finished": False, "unfinished_after_seconds": 150.0}
CASES = {
    "finished": ({"finished": True, "fit_seconds": 130.0, "call_seconds": 120.0, "stars_per_minute": 2048.0,
                  "trusted": 3000, "trusted_per_minute": 1500.0}, ["1500 trusted stars/min", "3000/4096", "120 s"]),
    "sampled, not checked": ({"finished": False, "sampled_seconds": 140.0, "stars_per_minute": 1755.4},
                             ["1755 stars/min", "sampled in 140 s", "trusted share is unmeasured"]),
    "extrapolated": (CUT | {"steps_done": 250, "steps": 2000, "seconds_at_last_report": 50.0,
                            "extrapolated_call_seconds": 400.0, "extrapolated_stars_per_minute": 614.4},
                     ["~614 stars/min, extrapolated", "250 of its 2000 steps after 50 s", "trusted share unmeasured"]),
    "bound": ({"finished": False, "unfinished_after_seconds": 80.0}, ["< 3072 stars/min", "not ended after 80 s"]),
    "compiling took the time": ({"finished": False, "not_run": True}, ["not timed", "time was spent"]),
}


@pytest.mark.parametrize("case", CASES)
def test_exact_engine_lines(bench_gpu, case):
    result, says = CASES[case]
    line = bench_gpu._line("nuts", BASE | result)
    assert line.startswith("NUTS: ") and "compiled apart in 61 s" in line and "goal >= 1000" in line
    for words in says:
        assert words in line, (words, line)
