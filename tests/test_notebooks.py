"""The tutorials are committed without outputs (they run, top to bottom, under nbmake in this suite)."""

import json
from pathlib import Path

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_three_tutorials_and_they_are_stripped():
    assert [p.stem for p in NOTEBOOKS] == ["01_fit_one_star", "02_swap_a_prior", "03_small_sbc"]
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert code and all(not c["outputs"] and c["execution_count"] is None for c in code), path.name
