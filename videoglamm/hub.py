"""The Hugging Face Hub side of loading and saving: hub ids to local snapshot folders, and uploads.

`resolve(name_or_path, ...)` turns what a user passes to `from_pretrained` into a local path: a local file
or folder is returned as is; anything shaped like a hub id (`org/name`) goes through
`huggingface_hub.snapshot_download`, which reads the standard hub cache (`cache_dir`, default
`HF_HUB_CACHE`) and downloads only when allowed. `HF_HUB_OFFLINE` is read at call time here, because
huggingface_hub reads it once at import. Every hub failure becomes a `CheckpointError` that says what to do.

`push_to_hub` uploads a `save_pretrained` folder (weights, config, tokenizer, README.md model card) with
`HfApi.upload_folder`; `prepare_upload` builds that folder, so what would be uploaded can be inspected.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videoglamm.errors import CheckpointError

# What `huggingface_hub` accepts as true for HF_HUB_OFFLINE (constants.ENV_VARS_TRUE_VALUES).
_TRUE = {"1", "ON", "YES", "TRUE"}
# A hub repo id: "org/name" (letters, digits, "-", "_", "."), one "/" and no other path separators.
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE asks for no network (read now, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE


def looks_like_repo_id(name: str) -> bool:
    """Whether `name` could be a hub repo id (`org/name`); a local path never reaches this test."""
    return "/" in name and bool(_REPO_ID.match(name)) and not name.startswith((".", "/")) and ".." not in name


@dataclass(frozen=True)
class HubOptions:
    """Where and how to look a hub id up (the keywords of `from_pretrained`).

    Args:
        cache_dir: the hub cache (default: huggingface_hub's, `HF_HUB_CACHE` / `HF_HOME`).
        revision: branch, tag or commit hash (default "main").
        local_files_only: never touch the network (also forced by HF_HUB_OFFLINE=1).
        token: hub token for private or gated repos (default: the logged-in one).
    """

    cache_dir: str | os.PathLike | None = None
    revision: str | None = None
    local_files_only: bool = False
    token: str | bool | None = None


def resolve(name_or_path: str | os.PathLike, options: HubOptions | None = None,
            allow_patterns: list[str] | None = None, presets: list[str] | None = None) -> Path:
    """A local path for `name_or_path`: itself when it exists, else the hub snapshot folder of that repo id.

    Args:
        name_or_path: a local file or folder, or a hub repo id.
        options: hub lookup options.
        allow_patterns: download only files matching these globs (e.g. weights of a CLIP repo).
        presets: the names the caller would also have accepted (named in the error).

    Raises:
        CheckpointError: not a local path and not a repo id; or the repo, revision or files cannot be had
            (offline and not cached, unknown repo, gated, network failure), saying what to do.
    """
    path = Path(name_or_path)
    if path.exists():
        return path
    name = str(name_or_path)
    if not looks_like_repo_id(name):
        known = f"a preset ({sorted(presets)}), " if presets else ""
        raise CheckpointError(f"{name} is neither {known}an existing file or folder, nor a hub repo id ('org/name')")
    return Path(snapshot(name, options or HubOptions(), allow_patterns))


def snapshot(repo_id: str, options: HubOptions, allow_patterns: list[str] | None = None) -> str:
    """`snapshot_download(repo_id)` with huggingface_hub's errors turned into `CheckpointError`s."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = options.local_files_only or hub_offline()
    revision = options.revision or "main"
    where = f"{repo_id}@{revision}"
    cache = f" in the hub cache {options.cache_dir}" if options.cache_dir else " in the hub cache"
    try:
        return snapshot_download(repo_id, revision=options.revision, cache_dir=options.cache_dir,
                                 local_files_only=offline, token=options.token, allow_patterns=allow_patterns,
                                 library_name="videoglamm")
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
        why = ("HF_HUB_OFFLINE is set" if hub_offline() else "local_files_only=True") if offline \
            else "the hub could not be reached"
        raise CheckpointError(
            f"{repo_id} is no local path, and {where} is not{cache} and {why}: download it once with network access "
            f"(`hf download {repo_id}" + (f" --revision {options.revision}" if options.revision else "")
            + "`, or from_pretrained without local_files_only / HF_HUB_OFFLINE), or pass a local folder"
        ) from err
    except GatedRepoError as err:
        raise CheckpointError(f"{repo_id} is gated: accept its terms on huggingface.co and log in "
                              "(`hf auth login`) or pass token=") from err
    except RepositoryNotFoundError as err:
        raise CheckpointError(f"{repo_id}: no such hub repo (or it is private: log in or pass token=); "
                              "check the id, or pass a local folder") from err
    except RevisionNotFoundError as err:
        raise CheckpointError(f"{repo_id} has no revision {revision!r}: pass an existing branch, tag or "
                              "commit as revision=") from err
    except HFValidationError as err:
        raise CheckpointError(f"{repo_id!r} is not a valid hub repo id: {err}") from err
    except HfHubHTTPError as err:
        raise CheckpointError(f"{where}: the hub answered {err}; retry, or pass a local folder") from err


# ------------------------------------------------------------------------------------------- upload


@dataclass
class Upload:
    """A folder ready for `HfApi.upload_folder` and the files in it (relative paths, sorted)."""

    repo_id: str
    folder: Path
    files: list[str]


def prepare_upload(model: Any, repo_id: str, workdir: str | os.PathLike, **save_options: Any) -> Upload:
    """Write exactly what `push_to_hub` uploads: `model.save_pretrained(workdir / name, **save_options)`.

    Raises:
        CheckpointError: `repo_id` is not a repo id, or what `save_pretrained` raises.
    """
    if not looks_like_repo_id(repo_id):
        raise CheckpointError(f"{repo_id!r} is not a hub repo id ('org/name')")
    folder = Path(workdir) / repo_id.split("/")[-1]
    model.save_pretrained(folder, **save_options)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return Upload(repo_id, folder, files)


def push_to_hub(model: Any, repo_id: str, *, private: bool | None = None, token: str | bool | None = None,
                revision: str | None = None, commit_message: str | None = None, create_pr: bool = False,
                **save_options: Any) -> Any:
    """Save `model` (model card included) to a temporary folder and upload it to `repo_id`.

    Args:
        repo_id: "org/name"; created (private when `private`) if it does not exist.
        save_options: passed to `model.save_pretrained` (e.g. `eval_results`, `license`).

    Returns:
        huggingface_hub's `CommitInfo`.

    Raises:
        CheckpointError: HF_HUB_OFFLINE is set (nothing is written or sent), or the hub refuses.
    """
    if hub_offline():
        raise CheckpointError(f"push_to_hub({repo_id!r}) needs the network but HF_HUB_OFFLINE is set: unset it, "
                              "or save_pretrained(folder) now and upload later with `hf upload`")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    workdir = Path(tempfile.mkdtemp(prefix="videoglamm-push-"))
    try:
        upload = prepare_upload(model, repo_id, workdir, **save_options)
        api = HfApi(token=token, library_name="videoglamm")
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            return api.upload_folder(repo_id=repo_id, folder_path=upload.folder, revision=revision,
                                     commit_message=commit_message or "Upload with videoglamm",
                                     create_pr=create_pr)
        except HfHubHTTPError as err:
            raise CheckpointError(f"uploading to {repo_id} failed: {err}; check the token's write access "
                                  "(`hf auth login`)") from err
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
