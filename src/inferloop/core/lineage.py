"""Lineage of a model: DVC hashes of its data, the git commit, a hash of its params."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "dvc_out_hash",
    "git_commit",
    "params_hash",
]


def dvc_out_hash(root: Path, path: str) -> str:
    """The md5 DVC recorded in ``dvc.lock`` for output ``path``, or a file md5 outside DVC."""
    for lock in [root / "dvc.lock", *sorted((root / "pipelines").glob("**/dvc.lock"))]:
        if not lock.is_file():
            continue
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for stage in stages.values():
            for out in stage.get("outs", []):
                if out.get("path") == path and out.get("md5"):
                    return str(out["md5"])
    return "md5:" + _md5_path(root / path)


def _md5_path(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if file.exists():
            digest.update(file.read_bytes())
    return digest.hexdigest()


def git_commit(root: Path) -> str:
    """HEAD's commit (``+dirty`` when tracked files changed), or ``unknown`` outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "-uno"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def params_hash(sections: dict[str, Any]) -> str:
    """Short sha256 of the params sections a model depends on."""
    blob = json.dumps(sections, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
