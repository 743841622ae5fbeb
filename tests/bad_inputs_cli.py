"""`videoglamm predict` / `demo` cases and the entry points' error lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bad_input_corpus import ROOT, Env, Outcome, case, expect_cli, expect_ok, snapshot
from bad_input_fixtures import SHIPPED, frame_folder, user_file, video_file


# --------------------------------------------------------------------------- CLI: predict / demo

def _predict_argv(video: Path | str, out: Path, *extra: str) -> list[str]:
    return ["predict", str(video), "What is moving?", "--model", SHIPPED, "--out", str(out), "--no-progress",
            *extra]


@case("cli")
def cli_predict_missing_video(env: Env) -> Outcome:
    return expect_cli(env, _predict_argv(env.tmp / "nope.mp4", env.tmp / "out"), "nope.mp4", "not found")


@case("cli")
def cli_predict_frame_folder(env: Env) -> Outcome:
    from videoglamm.cli import main
    folder = frame_folder(env)
    out = env.tmp / "out"

    def check(rc: Any) -> str | None:
        if rc != 0:
            return f"exit {rc}"
        result = json.loads((out / "result.json").read_text())
        return None if result["num_frames"] == 8 else f"num_frames {result['num_frames']}"
    return expect_ok(env, lambda: main(_predict_argv(folder, out)), check)


@case("cli")
def cli_predict_fps_zero(env: Env) -> Outcome:
    return expect_cli(env, _predict_argv(video_file(env), env.tmp / "out", "--fps", "0"), "--fps")


@case("cli")
def cli_predict_fps_negative(env: Env) -> Outcome:
    return expect_cli(env, _predict_argv(video_file(env), env.tmp / "out", "--fps", "-3"), "--fps")


@case("cli")
def cli_predict_num_frames_zero(env: Env) -> Outcome:
    return expect_cli(env, _predict_argv(video_file(env), env.tmp / "out", "--num-frames", "0"), "num_frames")


@case("cli")
def cli_predict_max_new_tokens_negative(env: Env) -> Outcome:
    return expect_cli(env, _predict_argv(video_file(env), env.tmp / "out", "--max-new-tokens", "-5"),
                      "max_new_tokens")


@case("cli")
def cli_predict_out_is_a_file(env: Env) -> Outcome:
    target = user_file(env, "result.txt")
    return expect_cli(env, _predict_argv(video_file(env), target), "result.txt", "is a file")


@case("cli")
def cli_predict_out_under_a_file(env: Env) -> Outcome:
    target = user_file(env, "result.txt")
    return expect_cli(env, _predict_argv(video_file(env), target / "sub"), "result.txt", "not a folder")


@case("cli")
def cli_predict_device_cuda_without_gpu(env: Env) -> Outcome:
    import torch
    if torch.cuda.is_available():
        return Outcome("handled", "a GPU is present")
    return expect_cli(env, _predict_argv(video_file(env), env.tmp / "out", "--device", "cuda"), "cuda",
                      "--device cpu")


@case("cli")
def cli_predict_corrupt_video(env: Env) -> Outcome:
    bad = env.tmp / "bad.avi"
    bad.write_bytes(b"RIFF" + os.urandom(500))
    return expect_cli(env, _predict_argv(bad, env.tmp / "out"), "bad.avi")


@case("cli")
def cli_predict_unknown_model(env: Env) -> Outcome:
    argv = _predict_argv(video_file(env), env.tmp / "out")
    argv[argv.index(SHIPPED)] = str(env.tmp / "no_model")
    return expect_cli(env, argv, "no_model")


@case("cli")
def cli_predict_empty_prompt(env: Env) -> Outcome:
    argv = _predict_argv(video_file(env), env.tmp / "out")
    argv[2] = ""
    return expect_cli(env, argv, "prompt", "empty")


@case("cli")
def cli_predict_rerun_cleans_a_killed_runs_temp_folder(env: Env) -> Outcome:
    from videoglamm.cli import main
    video = video_file(env)
    out = env.tmp / "out"
    # What a run killed with SIGKILL leaves: its temporary sibling folder, from a process now gone.
    code = ("import sys; from videoglamm.modeling.persistence import atomic_dir; from pathlib import Path; "
            "tmp, _ = atomic_dir(Path(sys.argv[1])); (tmp / 'answer.txt').write_text('half')")
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, cwd=ROOT)
    leftovers = [p.name for p in env.tmp.iterdir() if p.name.startswith(".")]
    if not leftovers:
        return Outcome("unclear", "the simulated killed run left no temp folder to clean")
    return expect_ok(env, lambda: main(_predict_argv(video, out)),
                     lambda rc: None if rc == 0 and (out / "result.json").is_file() else f"exit {rc}")


@case("cli")
def cli_predict_interrupted_leaves_nothing(env: Env) -> Outcome:
    from videoglamm import visualize
    from videoglamm.cli import main
    video = video_file(env)
    before = snapshot(env.tmp)
    original = visualize.VideoWriter.write

    def interrupt(self: Any, frame: Any) -> None:
        raise KeyboardInterrupt

    visualize.VideoWriter.write = interrupt
    try:
        import contextlib
        import io
        with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = main(_predict_argv(video, env.tmp / "out"))
            except KeyboardInterrupt:
                rc = "KeyboardInterrupt escaped"
    finally:
        visualize.VideoWriter.write = original
    after = snapshot(env.tmp)
    if after != before:
        return Outcome("partial-output", f"left {sorted(set(after) - set(before))[:5]}")
    if rc != 130 or "interrupted" not in err.getvalue():
        return Outcome("unclear", f"exit {rc}, stderr {err.getvalue()[-200:]!r}")
    return Outcome("handled")


@case("cli")
def cli_unexpected_exception_is_one_line_with_a_debug_hint(env: Env) -> Outcome:
    from videoglamm.modeling import videoglamm as vg
    original = vg.VideoGLaMM.from_pretrained

    def broken(*a: Any, **k: Any) -> Any:
        raise ZeroDivisionError("simulated bug")

    vg.VideoGLaMM.from_pretrained = broken
    try:
        return expect_cli(env, _predict_argv(video_file(env), env.tmp / "out"), "simulated bug", "--debug",
                          "bug", code=1)
    finally:
        vg.VideoGLaMM.from_pretrained = original


@case("cli")
def cli_debug_prints_the_traceback(env: Env) -> Outcome:
    import contextlib
    import io

    from videoglamm.cli import main
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            rc = main(["--debug", *_predict_argv(env.tmp / "nope.mp4", env.tmp / "out")])
        except BaseException as exc:  # noqa: BLE001
            return Outcome("traceback", f"{type(exc).__name__} escaped main() instead of being printed")
    text = err.getvalue()
    if rc == 2 and "Traceback (most recent call last)" in text and "nope.mp4" in text:
        return Outcome("handled")
    return Outcome("unclear", f"exit {rc}; stderr {text[-300:]!r}")


@case("cli")
def cli_demo_frames_zero(env: Env) -> Outcome:
    return expect_cli(env, ["demo", "--out", str(env.tmp / "demo"), "--frames", "0", "--no-progress"], "--frames")


@case("cli")
def cli_demo_out_is_a_file(env: Env) -> Outcome:
    target = user_file(env)
    return expect_cli(env, ["demo", "--out", str(target), "--frames", "2", "--no-progress"], "notes.txt",
                      "is a file")


@case("cli")
def cli_demo_bad_model(env: Env) -> Outcome:
    return expect_cli(env, ["demo", "--out", str(env.tmp / "demo"), "--model", str(env.tmp / "none"),
                            "--no-progress"], "none")


@case("cli")
def cli_argparse_error_is_one_line(env: Env) -> Outcome:
    return expect_cli(env, ["predict", "--num-frames", "many"], "--num-frames")
