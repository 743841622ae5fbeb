"""Writing outputs so that nothing is ever half-written: a temporary sibling, then a rename.

Temporary siblings are named `.<name>.tmp-<pid>-<random>` (and `.<name>.old-<pid>-<random>` for the
folder being replaced), so a later successful write of the same output removes what a killed process
left, while the temporary folder of a writer that is still running is left alone.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable

from videoglamm.errors import InputError

_RETRIES = 10_000


def check_output_path(path: str | os.PathLike, kind: str = "folder") -> Path:
    """Refuse an output path that cannot be written as a `kind` ("folder" or "file") before any work.

    Raises:
        InputError: `path` is an existing file (for a folder) or folder (for a file), or one of its parents
            is a file.
    """
    path = Path(path)
    # One stat per path: another writer may be renaming `path` right now (absent for an instant is fine).
    mode = _mode(path)
    if kind == "folder" and mode is not None and not stat.S_ISDIR(mode):
        raise InputError(f"output folder {path} exists and is a file; pass a folder path (the file is left as is)")
    if kind == "file" and mode is not None and stat.S_ISDIR(mode):
        raise InputError(f"output file {path} exists and is a folder; pass a file path")
    for parent in path.parents:
        mode = _mode(parent)
        if mode is not None:
            if not stat.S_ISDIR(mode):
                raise InputError(f"cannot write {path}: {parent} is not a folder (it is a file)")
            break
    return path


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode
    except FileNotFoundError:
        return None
    except NotADirectoryError:  # a parent is a file: reported by the caller's walk up the parents
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_siblings(final: Path) -> None:
    """Delete `.<name>.tmp-*` / `.<name>.old-*` siblings of `final` left by processes that are gone."""
    for kind in ("tmp", "old"):
        for path in final.parent.glob(f".{final.name}.{kind}-*"):
            pid = path.name[len(f".{final.name}.{kind}-"):].split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)


def temp_sibling(final: Path, kind: str = "tmp", folder: bool = True) -> Path:
    """A new, uniquely named temporary sibling (folder or empty file) of `final`."""
    prefix = f".{final.name}.{kind}-{os.getpid()}-"
    if folder:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, dir=final.parent)
    os.close(fd)
    return Path(name)


def commit_dir(tmp: Path, final: Path) -> None:
    """Rename the finished `tmp` onto `final`, replacing a folder there; safe when several writers commit
    to the same `final` at once (the last rename wins, each commit is whole)."""
    for _ in range(_RETRIES):
        try:
            os.replace(tmp, final)  # works when `final` is absent (or an empty folder)
            break
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        old = temp_sibling(final, "old")
        try:
            os.replace(final, old / final.name)
        except FileNotFoundError:  # another writer moved it first: try the rename again
            pass
        finally:
            shutil.rmtree(old, ignore_errors=True)
    else:  # pragma: no cover - only under a pathological stream of concurrent writers
        raise OSError(errno.EBUSY, f"could not commit {final}: other writers kept replacing it")
    remove_stale_siblings(final)


def atomic_dir(final: str | os.PathLike) -> tuple[Path, Callable[[], None]]:
    """A temporary sibling folder of `final` and a `commit()` that renames it onto `final` (replacing it).

    The caller removes the temporary folder when it fails before committing.

    Raises:
        InputError: `final` is a file, or a parent of it is.
    """
    final = check_output_path(final, "folder")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(final)
    return tmp, lambda: commit_dir(tmp, final)


def write_dir(final: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """`fill(tmp)` writes the folder's content; it appears at `final` only when `fill` returns."""
    tmp, commit = atomic_dir(final)
    try:
        fill(tmp)
        commit()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Path(final)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file via a temporary sibling and os.replace, so readers never see a partial file.

    Raises:
        InputError: `path` is a folder, or a parent of it is a file.
    """
    path = check_output_path(path, "file")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path, folder=False)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    remove_stale_siblings(path)
