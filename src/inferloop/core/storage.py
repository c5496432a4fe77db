"""File I/O at the edges: atomic Parquet/JSON writes and pickled artifacts."""

from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "jsonable",
    "parquet_safe",
    "read_json",
    "read_pickle",
    "write_json",
    "write_parquet",
    "write_pickle",
]


def _atomic_target(path: str | Path) -> tuple[Path, Path]:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    # mkstemp creates 0600 files; give the final file the usual permissions (umask applies)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return target, Path(tmp)


def parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with mixed-type object columns cast to string so Parquet can store them.

    Raw inputs that break the contract may hold e.g. the string ``"abc"`` in a numeric column;
    keeping it as text is how nothing is lost.
    """
    out = df
    for col in df.columns:
        if df[col].dtype == object:
            kinds = {type(v) for v in df[col].dropna().head(100_000)}
            if len(kinds) > 1:
                out = out if out is not df else df.copy()
                out[col] = df[col].map(
                    lambda v: v if v is None or (isinstance(v, float) and v != v) else str(v)
                )
    return out


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` to ``path`` atomically (temporary file, then rename)."""
    target, tmp = _atomic_target(path)
    try:
        parquet_safe(df).to_parquet(tmp, index=False)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def write_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON atomically; numpy scalars become plain numbers."""
    target, tmp = _atomic_target(path)
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: NaN and inf become None (JSON has neither), numpy scalars
    become numbers, timestamps ISO text, mapping keys text; lists, tuples and mappings are
    converted all the way down. Anything else is returned as it is."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def write_pickle(obj: Any, path: str | Path) -> Path:
    """Pickle ``obj`` to ``path`` atomically."""
    target, tmp = _atomic_target(path)
    try:
        with tmp.open("wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read_pickle(path: str | Path) -> Any:
    """Load a pickle written by :func:`write_pickle` (trusted project artifacts only)."""
    with Path(path).open("rb") as fh:
        return pickle.load(fh)
