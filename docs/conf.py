"""Sphinx configuration for sedppl's documentation site: ``make docs`` (warnings are errors).

Pages written for the repository stay where they are (README.md, notebooks/, validation/,
BENCHMARKS.md, models/README.md) and are pulled in from here:

- Markdown files are included by small pages (MyST ``{include}``); the validation reports get one
  generated page each in ``docs/validation/`` (git-ignored), so a new report appears without editing docs/.
- The notebooks, which are committed without outputs, are copied into ``docs/tutorials/``
  (git-ignored) and executed at build time by myst-nb, offline, so the site shows their figures.
  The executed notebooks are cached in ``docs/_build/.jupyter_cache``, keyed on their code: a notebook
  re-runs when its code changes; ``make docs-clean`` forces a fresh run (e.g. after changing the package).
  Build without executing them: ``sphinx-build -D nb_execution_mode=off ...``.
- The API reference is generated from the docstrings by autosummary into ``docs/api/`` (git-ignored).
"""

import shutil
from pathlib import Path

import sedppl

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

project = "sedppl"
author = "sedppl contributors"
copyright = "sedppl contributors"
release = version = sedppl.__version__

extensions = [
    "myst_nb",  # Markdown (MyST) pages and executed notebooks; provides myst_parser
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # inherited docstrings (flowjax, Equinox) are Google style
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "jupyter_execute"]

# -- sources kept outside docs/ ------------------------------------------------------------------


def _write_if_changed(path: Path, text: str) -> None:
    """Write only on change, so that Sphinx's incremental build and myst-nb's cache see stable files."""
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _mirror_notebooks() -> None:
    target = DOCS / "tutorials"
    target.mkdir(exist_ok=True)
    sources = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for src in sources:
        dst = target / src.name
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            shutil.copy2(src, dst)
    for stale in set(target.glob("*.ipynb")) - {target / s.name for s in sources}:
        stale.unlink()


def _report_pages() -> None:
    target = DOCS / "validation"
    reports = sorted((ROOT / "validation" / "reports").glob("*.md"))
    for report in reports:
        _write_if_changed(target / report.name,
                          f"```{{include}} ../../validation/reports/{report.name}\n:relative-images:\n```\n")
    for stale in set(target.glob("*.md")) - {target / r.name for r in reports}:
        stale.unlink()


_mirror_notebooks()
_report_pages()

# -- MyST and myst-nb ----------------------------------------------------------------------------

myst_heading_anchors = 3  # docs/cli/README.md links to fit.md#partitioned-catalogues-and-dask

nb_execution_mode = "cache"
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_timeout = 1800  # seconds per cell; the tutorials take a few minutes on a 2-core CPU
nb_execution_raise_on_error = True  # a failing tutorial fails the build
nb_execution_show_tb = True
nb_execution_in_temp = True  # the tutorials write their figures to the working directory
nb_merge_streams = True

# -- API reference -------------------------------------------------------------------------------

autosummary_generate = True
autosummary_imported_members = False  # re-exported names are documented where they are defined
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True  # `bands=SURVEY_BANDS`, not the 26-band tuple
autodoc_default_options = {"show-inheritance": True, "no-value": True}  # no reprs of big constants
add_module_names = False
python_maximum_signature_line_length = 100  # longer signatures: one parameter a line
napoleon_numpy_docstring = False

# -- HTML ----------------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"sedppl {release}"
