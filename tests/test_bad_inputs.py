"""Every case of the bad-input corpus (`bad_input_cases.py`) must be handled: the exact error class and
message, one `prog: error:` line and exit 2 for commands, nothing left behind, nothing silently wrong.

    python tests/bad_input_corpus.py        # the same cases, with counts per outcome
"""

from __future__ import annotations

import pytest

import bad_input_cases  # noqa: F401  (registers the cases)
from bad_input_corpus import CASES, run_case


@pytest.fixture(scope="module")
def cache() -> dict:
    """The shipped model, videos and saved folders, shared by the cases of this module."""
    return {}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else [])
                                  for c in CASES])
def test_bad_input_is_handled(case, tmp_path, cache):
    outcome = run_case(case, tmp_path / "case", cache)
    assert outcome.kind == "handled", f"{case.category}/{case.name}: {outcome.kind}: {outcome.detail}"


def test_corpus_covers_every_category():
    categories = {c.category for c in CASES}
    assert categories >= {"api", "load", "cli", "score", "convert", "export", "synth", "train", "runner", "writer",
                          "deps", "entry"}
    assert len(CASES) >= 150
