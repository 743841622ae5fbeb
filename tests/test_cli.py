import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from videoglamm.cli import main
from videoglamm.visualize import write_video


def _mp4(path, t=6):
    frames = np.zeros((t, 40, 52, 3), dtype=np.uint8)
    for i in range(t):
        frames[i, 8:20, 4 * i : 4 * i + 12] = 200
    write_video(path, frames)


def test_predict_writes_every_output(tmp_path, capsys):
    video = tmp_path / "in.mp4"
    _mp4(video)
    out = tmp_path / "out"
    code = main(["predict", str(video), "What is moving?", "--model", "videoglamm-tiny", "--out", str(out),
                 "--max-new-tokens", "8", "--no-progress"])
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["num_frames"] == 6 and result["size"] == [40, 52]
    assert (out / "answer.txt").read_text().strip() == result["text"]
    assert (out / "overlay.mp4").stat().st_size > 0
    for obj in result["objects"]:
        assert len(obj["masks"]) == 6
        png = Image.open(out / "masks" / str(obj["id"]) / "00000.png")
        assert png.size == (52, 40)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temporary folder left


def test_cli_bad_video_is_one_clear_line(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    proc = subprocess.run(
        [sys.executable, "-m", "videoglamm.cli", "predict", str(fake), "hi", "--model", "videoglamm-tiny",
         "--out", str(tmp_path / "o")], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("videoglamm predict: error:")]
    assert len(errors) == 1 and "fake.mp4" in errors[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
