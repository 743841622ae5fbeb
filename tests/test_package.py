import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_import_is_light():
    code = ("import sys, videoglamm, videoglamm.cli, videoglamm.metrics; "
            "print(sorted(m for m in ('torch', 'transformers', 'sam2', 'deepspeed', 'bitsandbytes', "
            "'pycocoevalcap', 'accelerate') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "videoglamm", "--help"], capture_output=True, text=True, env=ENV,
                         check=True).stdout
    for command in ("demo", "predict", "score", "synth", "convert"):
        assert command in out


def test_lazy_exports_resolve():
    import videoglamm
    from videoglamm import samwise

    for name in videoglamm.__all__:
        assert getattr(videoglamm, name) is not None
    for name in samwise.__all__:
        assert getattr(samwise, name) is not None
