"""Caption metrics against pycocoevalcap 1.2 numbers (needs Java, like the official tool)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from videoglamm.errors import InputError
from videoglamm.metrics.captions import caption_scores

DATA = Path(__file__).parent / "data" / "captions"

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="PTB tokenizer and METEOR need Java")


@needs_java
def test_caption_scores_match_pycocoevalcap(tmp_path: Path) -> None:
    from videoglamm.cli import main

    # Through the CLI, so the JSON layer is checked with the same (slow, Java) run.
    out = tmp_path / "captions.json"
    assert main(["score", "captions", "--refs", str(DATA / "refs.json"), "--preds", str(DATA / "preds.json"),
                 "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    want = json.loads((DATA / "expected.json").read_text())
    checked = 0
    for key, value in want["corpus"].items():
        assert got[key] == pytest.approx(value, abs=1e-9), key
        checked += 1
    for cid, metrics in want["per_caption"].items():
        for key, value in metrics.items():
            assert got["per_caption"][cid][key] == pytest.approx(value, abs=1e-9), (cid, key)
            checked += 1
    assert checked == len(want["corpus"]) + sum(len(m) for m in want["per_caption"].values())


def test_caption_ids_must_match() -> None:
    with pytest.raises(InputError, match="caption ids differ"):
        caption_scores({"a": ["x"]}, {"b": "x"})
