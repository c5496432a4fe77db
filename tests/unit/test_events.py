"""The plain records that pass between the scoring paths and a feature-state store."""

from __future__ import annotations

import numpy as np

from inferloop.data.events import EntityEvents, first_of_each, repeated_keys, text_keys


def test_repeated_keys_give_each_key_its_count_in_order() -> None:
    column = repeated_keys(["c1", "c2", "c3"], [2, 0, 3])
    assert column.dtype == object
    assert column.tolist() == ["c1", "c1", "c3", "c3", "c3"]


def test_one_key_is_repeated_like_several() -> None:
    assert repeated_keys(["c7"], [3]).tolist() == ["c7", "c7", "c7"]
    assert repeated_keys(["c7"], [0]).tolist() == []
    assert repeated_keys(["c7"], np.asarray([2])).dtype == object


def test_first_of_each_keeps_the_first_row_of_every_id_in_row_order() -> None:
    ids = np.asarray(["b", "a", "b", "c", "a", "b"], dtype=object)
    assert first_of_each(ids).tolist() == [0, 1, 3]
    assert first_of_each(ids[:1]).tolist() == [0]


def test_text_keys_convert_integer_keys_to_their_decimal_text() -> None:
    keys = text_keys(np.asarray([12, 3, 12, -4]))
    assert keys.dtype == object
    assert keys.tolist() == ["12", "3", "12", "-4"]
    assert text_keys(np.asarray([5])).tolist() == ["5"]
    assert text_keys(np.asarray(["x", "y"], dtype=object)).tolist() == ["x", "y"]


def test_events_and_labels_have_the_fields_the_other_kind_lacks_filled() -> None:
    keys = np.asarray(["c1", "c1"], dtype=object)
    times = np.asarray([10, 20], dtype=np.int64)
    events = EntityEvents.of_events(keys, times, np.asarray([5.0, 7.5]), {"c1": 20})
    assert np.isnan(events.label).all()
    assert events.label_time.tolist() == [0, 0]
    assert events.last == {"c1": 20}
    labels = EntityEvents.of_labels(
        keys, times, np.asarray([1.0, 0.0]), np.asarray([30, 40], dtype=np.int64), {}
    )
    assert labels.amount.tolist() == [0.0, 0.0]
    assert labels.label.tolist() == [1.0, 0.0]
    assert labels.label_time.tolist() == [30, 40]
