"""Time split: windows, gaps equal to the label delay, coverage errors."""

from __future__ import annotations

import pandas as pd
import pytest

from inferloop.core import schema as s
from inferloop.data.split import SplitParams, plan_windows, split_by_time, split_rows


def _days(n: int) -> pd.DataFrame:
    ts = pd.date_range("2026-01-01", periods=n * 24, freq="h")
    return pd.DataFrame({s.TIMESTAMP: ts, s.TARGET: (ts.hour == 3).astype(int)})


def test_windows_are_laid_back_from_the_end_with_gaps() -> None:
    w = plan_windows(pd.Timestamp("2026-02-01"), SplitParams(10, 5, 4, 3))
    assert w.test.end == pd.Timestamp("2026-02-01") and w.test.start == pd.Timestamp("2026-01-28")
    assert w.validation.end == pd.Timestamp("2026-01-25") and w.validation.start == pd.Timestamp(
        "2026-01-20"
    )
    assert w.train.end == pd.Timestamp("2026-01-17") and w.train.start == pd.Timestamp("2026-01-07")


def test_split_rows_do_not_overlap_and_respect_gaps() -> None:
    df = _days(40)
    r = split_by_time(df, SplitParams(10, 5, 4, 3))
    assert r.train[s.TIMESTAMP].max() + pd.Timedelta(days=3) < r.validation[s.TIMESTAMP].min()
    assert r.validation[s.TIMESTAMP].max() + pd.Timedelta(days=3) < r.test[s.TIMESTAMP].min()
    assert len(r.train) == 10 * 24 and len(r.validation) == 5 * 24 and len(r.test) == 4 * 24
    assert r.summary["history_rows"] == (40 - 10 - 5 - 4 - 6) * 24
    assert r.summary["train"]["frauds"] == 10


def test_too_little_data_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="needs 25"):
        split_by_time(_days(20), SplitParams(10, 5, 4, 3))


def test_empty_frame_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        split_by_time(_days(1).iloc[:0], SplitParams())


def test_a_two_day_log_splits_in_fractions_of_a_day() -> None:
    """The public European-cardholder log spans two days: the windows are hours long."""
    r = split_by_time(_days(2), SplitParams(1.0, 0.375, 0.375, 0.125))
    assert (len(r.train), len(r.validation), len(r.test)) == (24, 9, 9)
    assert r.summary["validation"]["start"] == "2026-01-02T03:00:00"
    assert r.summary["test"]["end"] == "2026-01-03"
    with pytest.raises(ValueError, match=r"covers 2 days but the split needs 2\.5"):
        split_by_time(_days(2), SplitParams(1.5, 0.375, 0.375, 0.125))


def test_a_table_without_time_splits_at_random_stratified_by_the_label() -> None:
    df = _days(50)  # 1,200 rows, 50 frauds
    params = SplitParams(train_share=0.6, validation_share=0.2, test_share=0.2, seed=3)
    r = split_rows(df, params, timed=False)
    assert (len(r.train), len(r.validation), len(r.test)) == (720, 240, 240)
    assert [int(p[s.TARGET].sum()) for p in (r.train, r.validation, r.test)] == [30, 10, 10]
    ids = [set(p[s.TIMESTAMP]) for p in (r.train, r.validation, r.test)]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2]) and sum(map(len, ids)) == len(df)
    assert r.summary["train"]["start"] == "stratified random"
    again = split_rows(df, params, timed=False)
    pd.testing.assert_frame_equal(again.test, r.test)  # the seed decides
    other = split_rows(df, SplitParams(seed=4), timed=False)
    assert not other.test[s.TIMESTAMP].equals(r.test[s.TIMESTAMP])
    with pytest.raises(ValueError, match="sum to 1"):
        split_rows(df, SplitParams(train_share=0.7), timed=False)
