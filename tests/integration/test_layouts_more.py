"""Bring your own data, the layouts without entity keys or without time (see test_layouts.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_layouts import ELSEWHERE, check_layout

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("preset", ELSEWHERE)
def test_a_preset_without_keys_or_time_runs_the_pipeline(preset: str, tmp_path: Path) -> None:
    check_layout(preset, tmp_path)
