"""Summary columns are declared once: types, missing values, and the documentation that lists them."""

from pathlib import Path

import numpy as np
import pytest

from sedppl.io.columns import COLUMNS, DIAGNOSTICS, Verdict, summary_column, verdict_columns

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli" / "fit.md"


def test_every_declared_column_is_documented():
    text = DOCS.read_text()
    missing = [name for name in (*COLUMNS, *DIAGNOSTICS, "flag", "retried", "trusted") if f"`{name}`" not in text]
    assert not missing, f"docs/cli/fit.md does not mention {missing}"


def test_a_column_keeps_its_declared_type_and_missing_value():
    rows = np.array([0, 2])
    restarted = summary_column("chains_restarted", np.array([1.0, 3.0]), 4, rows)  # floats in, int column out
    assert restarted.dtype.kind == "i" and list(restarted) == [1, -1, 3, -1]
    fallback = summary_column("fallback", [True, False], 4, rows)
    assert fallback.dtype == bool and list(fallback) == [True, False, False, False]
    khat = summary_column("khat", [0.2, 0.9], 4, rows)
    assert khat.dtype.kind == "f" and np.isnan(khat[[1, 3]]).all()
    with pytest.raises(KeyError, match="not declared"):
        summary_column("my_new_column", [1, 2], 4, rows)


def test_verdict_columns_fill_unfitted_rows_with_the_defaults():
    verdicts = [Verdict(rhat_max=1.2, n_divergent=3, flag="rhat 1.200 > 1.01"), Verdict(trusted=True)]
    cols = verdict_columns(verdicts, 3, np.array([2, 0]))
    assert list(cols) == [*DIAGNOSTICS, "flag", "retried", "trusted"]
    assert cols["rhat_max"][2] == 1.2 and np.isnan(cols["rhat_max"][[0, 1]]).all()
    assert cols["n_divergent"].dtype.kind == "i" and list(cols["n_divergent"]) == [-1, -1, 3]
    assert list(cols["flag"]) == ["", "", "rhat 1.200 > 1.01"] and list(cols["trusted"]) == [True, False, False]
    assert Verdict.from_diagnostics({"rhat_max": 1.0, "n_stuck_chains": 2}, retried=True).retried
