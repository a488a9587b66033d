"""Test a seeded random sample of a session's pending mutants, for a module whose tests take too long for all.

    python tests/mutation/sample.py .mutation/forward.sqlite 150 [--seed 0]

The pending mutants outside the sample are marked skipped ("not in the sample"), so ``make mutation`` runs
only the sample; report.py then gives the sample's kill rate with its 95% interval. The sample is drawn from
the mutants sorted by where and how they mutate, not by cosmic-ray's random job ids, so the same seed picks
the same mutants in every fresh session of the same source.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult

from report import NOT_SAMPLED  # the mark report.py reads


def mutation_key(item) -> tuple:
    """Where and how a work item mutates the source: stable across sessions, unlike its job id."""
    return tuple((str(m.module_path), tuple(m.start_pos), m.operator_name, m.occurrence) for m in item.mutations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("session", type=Path)
    parser.add_argument("size", type=int, help="how many pending mutants to test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.session.is_file():
        raise SystemExit(f"no mutation session at {args.session}")
    if args.size < 1:
        raise SystemExit(f"sample size must be at least 1, not {args.size}")
    with use_db(str(args.session), WorkDB.Mode.open) as db:
        pending = sorted(db.pending_work_items, key=mutation_key)
        chosen = {item.job_id for item in random.Random(args.seed).sample(pending, min(args.size, len(pending)))}
        for item in pending:
            if item.job_id not in chosen:
                db.set_result(item.job_id, WorkResult(output=NOT_SAMPLED, worker_outcome=WorkerOutcome.SKIPPED))
    print(f"{args.session.stem}: {len(chosen)} of {len(pending)} pending mutants sampled (seed {args.seed})")


if __name__ == "__main__":
    main()
