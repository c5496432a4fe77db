"""The stream's memory of scored transaction ids (repeats across micro-batches)."""

from __future__ import annotations

import pytest

from inferloop.scoring.stream import SeenIds


def test_seen_ids_flags_repeats_and_forgets_the_oldest_beyond_capacity() -> None:
    seen = SeenIds(capacity=3)
    assert seen.seen([1, 2]).tolist() == [False, False]
    seen.add([1, 2, 3])
    assert seen.seen([3, 4, 1]).tolist() == [True, False, True]
    seen.add([4])  # 1 is the oldest: forgotten
    assert len(seen) == 3
    assert seen.seen([1, 2, 4]).tolist() == [False, True, True]


def test_seen_ids_keeps_text_and_integer_ids_apart_and_can_be_off() -> None:
    seen = SeenIds(capacity=10)
    seen.add(["7", 8])
    assert seen.seen([7, "8", "7"]).tolist() == [False, False, True]
    off = SeenIds(capacity=0)
    off.add([1])
    assert off.seen([1]).tolist() == [False]
    with pytest.raises(ValueError, match="dedupe_ids"):
        SeenIds(capacity=-1)
