"""Atomic writers, dependency warnings, clean stderr, subprocess entry points."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import warnings
from typing import Any

from bad_input_corpus import ROOT, Env, Outcome, case, expect_error, snapshot
from bad_input_fixtures import frames, model, user_file


# --------------------------------------------------------------------------- atomic writers

@case("writer")
def writer_atomic_dir_concurrent_commits(env: Env) -> Outcome:
    """Three threads committing to one folder 300 times each: every commit works, the result is one whole
    folder, and no temporary sibling is left."""
    from videoglamm.modeling.persistence import atomic_dir
    final = env.tmp / "shared"
    failures: list[str] = []

    def worker(n: int) -> None:
        for i in range(300):
            try:
                tmp, commit = atomic_dir(final)
                (tmp / "a.txt").write_text(f"{n}-{i}")
                (tmp / "b.txt").write_text(f"{n}-{i}")
                commit()
            except Exception as err:  # noqa: BLE001 - counted and reported
                failures.append(f"{type(err).__name__}: {err}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        return Outcome("traceback", f"{len(failures)} of 900 commits failed, e.g. {failures[0][:200]}")
    if (final / "a.txt").read_text() != (final / "b.txt").read_text():
        return Outcome("silent-wrong", "the final folder mixes two commits")
    left = sorted(p.name for p in env.tmp.iterdir() if p.name != "shared")
    return Outcome("partial-output", f"left {left[:5]}") if left else Outcome("handled")


@case("writer")
def writer_atomic_dir_onto_a_file(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    from videoglamm.modeling.persistence import atomic_dir
    target = user_file(env)
    return expect_error(env, lambda: atomic_dir(target), InputError, "notes.txt", "is a file")


@case("writer")
def writer_save_pretrained_onto_a_file(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    target = user_file(env)
    return expect_error(env, lambda: model(env).save_pretrained(target), InputError, "notes.txt", "is a file")


@case("writer")
def writer_failed_save_keeps_the_old_folder(env: Env) -> Outcome:
    """A save that fails half-way leaves the previous folder as it was and no temporary folder."""
    from safetensors import torch as st

    m = model(env)
    out = env.tmp / "saved"
    m.save_pretrained(out)
    before = snapshot(env.tmp)
    original = st.save_file

    def fail(*a: Any, **k: Any) -> None:
        raise OSError(28, "No space left on device")

    st.save_file = fail
    try:
        m.save_pretrained(out)
    except OSError:
        pass
    else:
        return Outcome("silent-wrong", "save did not fail")
    finally:
        st.save_file = original
    after = snapshot(env.tmp)
    return Outcome("partial-output", f"changed: {sorted(set(after) ^ set(before))[:5]}") if after != before \
        else Outcome("handled")


@case("writer")
def writer_json_under_a_file(env: Env) -> Outcome:
    from videoglamm.cli.score import write_json_atomic
    from videoglamm.errors import InputError
    blocker = user_file(env)
    return expect_error(env, lambda: write_json_atomic({}, blocker / "x.json"), InputError, "notes.txt",
                        "not a folder")


@case("writer")
def writer_json_onto_a_folder(env: Env) -> Outcome:
    from videoglamm.cli.score import write_json_atomic
    from videoglamm.errors import InputError
    (env.tmp / "result.json").mkdir()
    return expect_error(env, lambda: write_json_atomic({}, env.tmp / "result.json"), InputError, "result.json",
                        "is a folder")


@case("writer")
def writer_prediction_stale_temp_is_removed(env: Env) -> Outcome:
    """A temporary folder of a dead process is removed by the next successful write of the same folder."""
    from videoglamm.modeling.persistence import atomic_dir
    final = env.tmp / "out"
    code = ("import sys; from videoglamm.modeling.persistence import atomic_dir; from pathlib import Path; "
            "atomic_dir(Path(sys.argv[1]))")
    subprocess.run([sys.executable, "-c", code, str(final)], check=True, cwd=ROOT)
    tmp, commit = atomic_dir(final)
    (tmp / "x").write_text("1")
    commit()
    left = sorted(p.name for p in env.tmp.iterdir() if p.name != "out")
    return Outcome("partial-output", f"left {left}") if left else Outcome("handled")


@case("writer")
def writer_live_temp_of_another_process_is_kept(env: Env) -> Outcome:
    """Cleaning stale folders must not touch the temporary folder of a writer that is still running."""
    from videoglamm.modeling.persistence import atomic_dir
    final = env.tmp / "out"
    other, _ = atomic_dir(final)  # this process is alive: its folder is not stale
    tmp, commit = atomic_dir(final)
    commit()
    if not other.is_dir():
        return Outcome("silent-wrong", "a live writer's temporary folder was removed")
    shutil.rmtree(other)
    return Outcome("handled")


# --------------------------------------------------------------------------- dependencies, stderr

@case("deps")
def deps_predict_raises_no_deprecation_warning(env: Env) -> Outcome:
    m = model(env)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.predict(frames(env), "What is moving?", max_new_tokens=4)
    bad = [f"{w.category.__name__}: {w.message}" for w in caught
           if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    return Outcome("silent-wrong", f"{bad[:2]}") if bad else Outcome("handled")


@case("deps")
def deps_lora_raises_no_deprecation_warning(env: Env) -> Outcome:
    """Wrapping the LLM with LoRA (peft) warns about nothing deprecated."""
    from videoglamm.config import LoRAConfig, VideoGLaMMConfig
    from videoglamm.modeling.llm import build_llm, wrap_with_lora
    llm = build_llm(VideoGLaMMConfig.from_preset("videoglamm-tiny").llm)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrap_with_lora(llm, LoRAConfig(r=2, alpha=4))
    bad = [f"{w.category.__name__}: {w.message}" for w in caught
           if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    return Outcome("silent-wrong", f"{bad[:2]}") if bad else Outcome("handled")


@case("deps")
def deps_pyproject_declares_tested_ranges(env: Env) -> Outcome:
    import re
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for group in project["optional-dependencies"].values() for r in group
             if not r.startswith("videoglamm")]
    problems = []
    for req in reqs:
        ops = {s.operator for s in req.specifier}
        if not ({">=", ">"} & ops and {"<", "<="} & ops):
            problems.append(f"{req} lacks a lower or an upper bound")
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            continue
        if not req.specifier.contains(re.sub(r"\+.*", "", installed), prereleases=True):
            problems.append(f"installed {req.name} {installed} is outside {req.specifier}")
    return Outcome("silent-wrong", "; ".join(problems[:4])) if problems else Outcome("handled")


_PLAIN_PREDICT = """
import numpy as np
from videoglamm.data.synthetic import generate_video
from videoglamm.modeling.videoglamm import VideoGLaMM
model = VideoGLaMM.from_pretrained("videoglamm-tiny-synthetic").eval()
print(model.predict(generate_video(1, 0, num_frames=4, size=(48, 64)).frames, "What is moving?").text)
"""


def _stderr_of(cmd: list[str], progress_allowed: bool) -> Outcome:
    """Run `cmd`; its stderr must be empty, or hold only progress-bar lines when `progress_allowed`."""
    import re
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode != 0:
        return Outcome("traceback", proc.stderr[-400:])
    lines = [line for line in re.split(r"[\r\n]", proc.stderr) if line.strip()]
    if progress_allowed:
        lines = [line for line in lines if not re.search(r"\d+%\|.*\|", line)]
    return Outcome("silent-wrong", f"stderr: {lines[:3]!r}") if lines else Outcome("handled")


@case("deps")
def deps_plain_predict_stderr_is_empty(env: Env) -> Outcome:
    return _stderr_of([sys.executable, "-c", _PLAIN_PREDICT], progress_allowed=True)


@case("deps")
def deps_cli_predict_no_progress_stderr_is_empty(env: Env) -> Outcome:
    from videoglamm.data.synthetic import generate_video
    from videoglamm.visualize import write_video
    video = env.tmp / "v.mp4"
    write_video(video, generate_video(1, 0, num_frames=4, size=(48, 64)).frames)
    return _stderr_of([sys.executable, "-m", "videoglamm", "predict", str(video), "What is moving?",
                       "--out", str(env.tmp / "out"), "--no-progress"], progress_allowed=False)


@case("entry")
def entry_subprocess_cli_error_is_one_line(env: Env) -> Outcome:
    proc = subprocess.run([sys.executable, "-m", "videoglamm", "predict", str(env.tmp / "x.mp4"), "q", "--out",
                           str(env.tmp / "o")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("videoglamm predict: error:"):
        return Outcome("handled")
    return Outcome("traceback" if "Traceback" in proc.stderr else "unclear", f"exit {proc.returncode}: {lines[-3:]}")


@case("entry", slow=True)
def entry_subprocess_train_error_is_one_line(env: Env) -> Outcome:
    proc = subprocess.run([sys.executable, "train/train.py", "--config", str(env.tmp / "none.yaml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("train.py: error:"):
        return Outcome("handled")
    return Outcome("traceback" if "Traceback" in proc.stderr else "unclear", f"exit {proc.returncode}: {lines[-3:]}")


@case("entry", slow=True)
def entry_subprocess_runner_error_is_one_line(env: Env) -> Outcome:
    proc = subprocess.run([sys.executable, "eval/rvos.py", "--benchmark", "ref-ytvos", "--root",
                           str(env.tmp / "none"), "--model", "videoglamm-tiny", "--out", str(env.tmp / "o")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("rvos.py: error:"):
        return Outcome("handled")
    return Outcome("traceback" if "Traceback" in proc.stderr else "unclear", f"exit {proc.returncode}: {lines[-3:]}")
