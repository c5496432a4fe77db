"""JSON helpers of the storage module."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from inferloop.core.storage import jsonable, read_json, write_json


def test_jsonable_turns_numpy_nan_and_timestamps_into_plain_json(tmp_path: Path) -> None:
    value = {
        1: np.float64(0.5),
        "nan": float("nan"),
        "inf": np.float32("inf"),
        "rows": (np.int64(3), [pd.Timestamp("2026-01-02 03:04:05"), None]),
        "text": "ok",
    }
    plain = jsonable(value)
    assert plain == {
        "1": 0.5,
        "nan": None,
        "inf": None,
        "rows": [3, ["2026-01-02T03:04:05", None]],
        "text": "ok",
    }
    json.dumps(plain, allow_nan=False)  # strict JSON: no NaN tokens
    assert read_json(write_json(plain, tmp_path / "x.json")) == plain
