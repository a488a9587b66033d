"""Kill rates of cosmic-ray sessions, skipped operators left out (``make mutation`` prints this).

    python tests/mutation/report.py .mutation/likelihood.sqlite [...] [--survivors]

cosmic-ray's own ``cr-report`` counts the filtered operators (tests/mutation/operators.toml) as done,
which would flatter the rate; here a mutant counts only if its tests ran: killed (a test failed) or
survived (they all passed). Timeouts and worker failures are counted apart, and survivors triaged as
equivalent (tests/mutation/equivalent.toml, each with its reason) are reported apart; neither enters the
rate. ``--survivors`` prints each survivor's diff, the list to triage into equivalent mutants and missing
tests; after a test is added, ``--forget-survivors`` drops their results so that the next
``make mutation`` runs exactly those mutants again. Where only a random sample was tested (sample.py), the
rate is the sample's, with its 95% Clopper-Pearson interval.
"""

from __future__ import annotations

import argparse
import sqlite3
import tomllib
from pathlib import Path

from scipy.stats import beta

NOT_SAMPLED = "not in the sample"  # sample.py's mark
EQUIVALENT = Path(__file__).with_name("equivalent.toml")


def equivalent_pairs(module: str) -> set[tuple[str, str]]:
    """(source line, mutant line) of the mutants triaged as equivalent (tests/mutation/equivalent.toml)."""
    entries = tomllib.loads(EQUIVALENT.read_text()).get(module, [])
    return {(e["line"], m) for e in entries for m in e["mutants"]}


def changed_lines(diff: str) -> tuple[str, str]:
    """The removed and the added source line of a one-line mutation diff, stripped ('' where none)."""
    lines = diff.splitlines()

    def first(sign: str) -> str:
        changed = (line[1:].strip() for line in lines if line.startswith(sign) and not line.startswith(sign * 3))
        return next((line for line in changed if line), "")

    return first("-"), first("+")


def outcomes(session: Path) -> dict[str, list[str]]:
    """'killed', 'survived', 'equivalent', 'abnormal' (timed out, worker failed), 'pending', 'not sampled' -> diffs."""
    if not session.is_file():  # sqlite3.connect would create an empty database there
        raise SystemExit(f"no mutation session at {session}: run `make mutation MUTATE={session.stem}` first")
    db = sqlite3.connect(session)
    done = db.execute("SELECT worker_outcome, test_outcome, diff, output FROM work_results").fetchall()
    pending = db.execute("SELECT COUNT(*) FROM work_items").fetchone()[0] - len(done)
    out = {"killed": [], "survived": [], "equivalent": [], "abnormal": [], "pending": [""] * pending,
           "not sampled": []}
    equivalent = equivalent_pairs(session.stem)
    for worker, test, diff, output in done:
        if worker == "SKIPPED":
            if output == NOT_SAMPLED:
                out["not sampled"].append(diff)
            continue
        if worker != "NORMAL":  # a timeout or a crash of the worker: neither killed nor survived
            out["abnormal"].append(diff)
        elif test != "SURVIVED":
            out["killed"].append(diff)
        else:
            old, new = changed_lines(diff)
            out["equivalent" if {(old, new), (old, "*")} & equivalent else "survived"].append(diff)
    return out


def clopper_pearson(killed: int, tested: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of a kill rate estimated from a random sample."""
    tail = (1 - level) / 2
    low = beta.ppf(tail, killed, tested - killed + 1) if killed else 0.0
    high = beta.ppf(1 - tail, killed + 1, tested - killed) if killed < tested else 1.0
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sessions", nargs="+", type=Path)
    parser.add_argument("--survivors", action="store_true", help="print the diff of every surviving mutant")
    parser.add_argument("--forget-survivors", action="store_true", help="make the next run test the survivors again")
    args = parser.parse_args()
    for session in args.sessions:
        if args.forget_survivors:
            outcomes(session)  # refuses a missing session
            with sqlite3.connect(session) as db:
                n = db.execute("DELETE FROM work_results WHERE worker_outcome = 'NORMAL' AND test_outcome = 'SURVIVED'")
                print(f"{session.stem}: {n.rowcount} survivors will run again")
        o = outcomes(session)
        ran = len(o["killed"]) + len(o["survived"])  # the equivalent ones are not counted
        rate = f"{100 * len(o['killed']) / ran:.1f}%" if ran else "-"
        sampled = ""
        if o["not sampled"] and ran:
            low, high = clopper_pearson(len(o["killed"]), ran)
            sampled = (f" in a random sample ({len(o['not sampled'])} mutants not sampled; 95% interval of the "
                       f"kill rate {100 * low:.1f}-{100 * high:.1f}%)")
        print(f"{session.stem}: {len(o['killed'])}/{ran} non-equivalent mutants killed ({rate}){sampled}, "
              f"{len(o['survived'])} survived, {len(o['equivalent'])} equivalent, {len(o['abnormal'])} timed out or "
              f"failed to run, {len(o['pending'])} pending")
        if args.survivors:
            for diff in o["survived"]:
                print(diff)


if __name__ == "__main__":
    main()
