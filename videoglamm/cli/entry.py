"""How every entry point ends: the `videoglamm` command, `train/*.py` and `eval/*.py` scripts.

A library error (`VideoGLaMMError`) or an operating-system error (a path that cannot be read or
written) is the user's to fix: one line `prog: error: message` on stderr, exit status 2. Any other
exception is a bug: one line that says so and how to see the traceback, exit status 1. `--debug` (or
`VIDEOGLAMM_DEBUG=1`) prints the full traceback before that line. Ctrl-C prints `prog: interrupted`,
exit status 130.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, Callable, Sequence

from videoglamm.errors import VideoGLaMMError

EXIT_USER_ERROR = 2
EXIT_BUG = 1
EXIT_INTERRUPTED = 130


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def guarded(prog: str, fn: Callable[[], Any], debug: bool = False) -> int:
    """Run `fn()` and turn what it raises into one stderr line and an exit status.

    Returns:
        `fn()`'s int result (0 for None or any non-int result, e.g. a runner's result dict), 2 for a
        library or OS error, 1 for any other exception, 130 for Ctrl-C.
    """
    debug = debug or os.environ.get("VIDEOGLAMM_DEBUG", "") not in ("", "0")
    try:
        result = fn()
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (VideoGLaMMError, OSError) as err:
        if debug:
            traceback.print_exc()
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as err:  # noqa: BLE001 - reported as a bug, with the way to get the traceback
        if debug:
            traceback.print_exc()
        hint = "" if debug else "; rerun with --debug for the traceback"
        print(f"{prog}: error: internal error (a bug, please report it): {type(err).__name__}: {_one_line(err)}"
              f"{hint}", file=sys.stderr)
        return EXIT_BUG
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def run_script(prog: str, main: Callable[[list[str]], Any], argv: Sequence[str] | None = None) -> int:
    """The `if __name__ == "__main__"` of a script: `--debug` anywhere in `argv` turns on tracebacks and
    is removed before `main(argv)` sees it."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    return guarded(prog, lambda: main(args), debug)
