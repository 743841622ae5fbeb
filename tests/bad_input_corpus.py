"""A corpus of bad inputs and faults, tried as a new user would, each with the outcome it must have.

Every case runs one action (a Python call, `videoglamm ...` in-process, a `train/` or `eval/` script run
as `__main__`, a few real subprocesses) and is classified:

* handled: the exact error class (or exit code 2 and one `prog: error:` line) with a message naming
  what is wrong, and the case's folder is exactly as before (no new, moved or changed file);
* traceback: an exception other than the expected one escaped, or a traceback was printed;
* silent-wrong: it ran and gave a wrong or misleading result (or no error where one was due);
* partial-output: the error was right but files were left behind, moved or changed;
* unclear: a typed error, but of another class or without the expected words.

    python tests/bad_input_corpus.py [--only SUBSTRING] [-v]     # prints the counts per outcome

`tests/test_bad_inputs.py` runs every case and requires "handled".
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import runpy
import sys
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUTCOMES = ("handled", "traceback", "silent-wrong", "partial-output", "unclear")


@dataclass
class Outcome:
    kind: str
    detail: str = ""


@dataclass
class Case:
    name: str
    category: str
    fn: Callable[["Env"], Outcome]
    slow: bool = False


CASES: list[Case] = []


def case(category: str, slow: bool = False) -> Callable:
    def register(fn: Callable[["Env"], Outcome]) -> Callable:
        CASES.append(Case(fn.__name__, category, fn, slow))
        return fn
    return register


@dataclass
class Env:
    """A case's own empty folder plus a session cache of expensive things (the shipped model, videos)."""

    tmp: Path
    cache: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- outcome helpers

def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with (size, mtime_ns): any new, missing or changed entry shows up."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(root))] = (st.st_size if path.is_file() else -1, st.st_mtime_ns)
    return out


def _diff(before: dict, after: dict) -> str:
    added = sorted(set(after) - set(before))
    gone = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k] and before[k][0] != -1)
    parts = [f"{label}: {names[:5]}" for label, names in (("added", added), ("removed", gone), ("changed", changed))
             if names]
    return "; ".join(parts)


def _match(text: str, fragments: tuple[str, ...]) -> list[str]:
    low = text.lower()
    return [f for f in fragments if f.lower() not in low]


def expect_error(env: Env, fn: Callable[[], Any], cls: type, *fragments: str) -> Outcome:
    """`fn()` must raise exactly `cls` with every fragment in its message and leave env.tmp unchanged."""
    from videoglamm.errors import VideoGLaMMError

    before = snapshot(env.tmp)
    try:
        value = fn()
    except BaseException as err:  # noqa: BLE001 - classifying whatever escapes is the point
        if isinstance(err, KeyboardInterrupt):
            raise
        message = str(err)
        if type(err) is not cls:
            kind = "unclear" if isinstance(err, VideoGLaMMError) else "traceback"
            return Outcome(kind, f"{type(err).__name__}: {message[:300]}")
        missing = _match(message, fragments)
        if missing:
            return Outcome("unclear", f"{type(err).__name__} without {missing}: {message[:300]}")
        diff = _diff(before, snapshot(env.tmp))
        return Outcome("partial-output", diff) if diff else Outcome("handled")
    return Outcome("silent-wrong", f"no error; returned {str(value)[:200]!r}")


def expect_ok(env: Env, fn: Callable[[], Any], check: Callable[[Any], str | None]) -> Outcome:
    """`fn()` must work and `check(result)` return None (else the problem); no hidden leftovers."""
    try:
        value = fn()
    except BaseException as err:  # noqa: BLE001
        if isinstance(err, KeyboardInterrupt):
            raise
        return Outcome("traceback", f"{type(err).__name__}: {str(err)[:300]}")
    problem = check(value)
    if problem:
        return Outcome("silent-wrong", problem)
    hidden = [str(p.relative_to(env.tmp)) for p in env.tmp.rglob(".*")]
    return Outcome("partial-output", f"hidden leftovers {hidden[:5]}") if hidden else Outcome("handled")


@contextlib.contextmanager
def _captured() -> Any:
    err, out = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handler = logging.StreamHandler(err)
    root.addHandler(handler)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            yield err, out
    finally:
        root.removeHandler(handler)


def _classify_exit(env: Env, before: dict, run: Callable[[], Any], prog: str, fragments: tuple[str, ...],
                   code: int) -> Outcome:
    with _captured() as (err, _):
        try:
            rc = run()
        except SystemExit as stop:
            rc = stop.code
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            return Outcome("traceback", f"{type(exc).__name__} escaped: {str(exc)[:300]}")
    rc = 0 if rc is None else rc
    text = err.getvalue()
    if "Traceback (most recent call last)" in text:
        return Outcome("traceback", text[-400:])
    if rc == 0:
        return Outcome("silent-wrong", f"exit 0; stderr {text[-300:]!r}")
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    if rc != code or len(errors) != 1 or not errors[0].startswith(prog):
        return Outcome("unclear", f"exit {rc}, error lines {errors[:3]}, stderr tail {text[-300:]!r}")
    missing = _match(errors[0], fragments)
    if missing:
        return Outcome("unclear", f"error line without {missing}: {errors[0][:300]}")
    diff = _diff(before, snapshot(env.tmp))
    return Outcome("partial-output", diff) if diff else Outcome("handled")


def expect_cli(env: Env, argv: list[str], *fragments: str, code: int = 2) -> Outcome:
    """`videoglamm ARGV` (in-process) must exit `code` with one `videoglamm ...: error:` line."""
    from videoglamm.cli import main

    before = snapshot(env.tmp)
    return _classify_exit(env, before, lambda: main(argv), "videoglamm", fragments, code)


def run_script(path: str, argv: list[str]) -> Any:
    """Run a repository script as `python PATH ARGV...` would, in this process."""
    script = ROOT / path
    old_argv, old_path = sys.argv, list(sys.path)
    sys.argv = [str(script), *argv]
    sys.path[:0] = [str(script.parent), str(ROOT)]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = old_argv, old_path
    return 0


def expect_script(env: Env, path: str, argv: list[str], *fragments: str, code: int = 2) -> Outcome:
    """`python PATH ARGV` must exit `code` with one `<script name>: error:` line."""
    before = snapshot(env.tmp)
    return _classify_exit(env, before, lambda: run_script(path, argv), Path(path).name, fragments, code)


def expect_warning(fn: Callable[[], Any], *fragments: str) -> Outcome:
    """`fn()` must work and say (a warning or a logged WARNING) what it changed."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                records.append(record.getMessage())

    handler = Keep()
    logging.getLogger().addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    except BaseException as err:  # noqa: BLE001
        if isinstance(err, KeyboardInterrupt):
            raise
        return Outcome("traceback", f"{type(err).__name__}: {str(err)[:300]}")
    finally:
        logging.getLogger().removeHandler(handler)
    said = records + [str(w.message) for w in caught]
    if any(not _match(text, fragments) for text in said):
        return Outcome("handled")
    return Outcome("silent-wrong", f"no warning with {fragments}; said {said[:3]}")


def run_case(c: Case, tmp: Path, cache: dict[str, Any]) -> Outcome:
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        return c.fn(Env(tmp, cache))
    except BaseException as err:  # noqa: BLE001 - a crash in the case set-up is reported, not hidden
        if isinstance(err, KeyboardInterrupt):
            raise
        return Outcome("traceback", f"case crashed: {type(err).__name__}: {err}\n{traceback.format_exc()[-600:]}")


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="run cases whose name or category contains this")
    parser.add_argument("--fast", action="store_true", help="skip the cases marked slow (subprocesses)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case")
    args = parser.parse_args(argv)
    import bad_input_cases  # noqa: F401  (registers the cases, in the module `bad_input_corpus`)
    import bad_input_corpus

    cases = [c for c in bad_input_corpus.CASES if (not args.only or args.only in c.name or args.only in c.category)
             and not (args.fast and c.slow)]
    counts = dict.fromkeys(OUTCOMES, 0)
    cache: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bad_inputs_") as root:
        for i, c in enumerate(cases):
            outcome = bad_input_corpus.run_case(c, Path(root) / f"{i:03d}_{c.name}", cache)
            counts[outcome.kind] += 1
            if args.verbose or outcome.kind != "handled":
                print(f"{outcome.kind:15s} {c.category:12s} {c.name}: {outcome.detail[:400]}", flush=True)
    print(f"{len(cases)} cases: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    # The repository first (its videoglamm, train, eval), then tests/ (the cases and runner fixtures).
    sys.path[:1] = [str(ROOT), str(Path(__file__).resolve().parent)]
    sys.exit(main())
