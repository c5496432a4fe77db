"""How the stream's Batcher cuts a record flow into micro-batches."""

from __future__ import annotations

import threading
import time

from inferloop.scoring.sources import Batcher, Record


class _Bursts:
    """A source that hands out prepared bursts of records, one burst per poll."""

    def __init__(self, bursts: list[int]) -> None:
        self.bursts = list(bursts)
        self.eof = False
        self.polls: list[float] = []
        self.sent = 0

    def poll(self, timeout: float) -> list[Record]:
        self.polls.append(timeout)
        if not self.bursts:
            time.sleep(min(timeout, 0.01))
            return []
        n = self.bursts.pop(0)
        records = [Record(str(self.sent + i), time.monotonic()) for i in range(n)]
        self.sent += n
        return records


def test_a_batch_goes_as_soon_as_the_input_pauses() -> None:
    source = _Bursts([3, 2, 0, 4])
    batcher = Batcher(source, max_rows=100, max_wait_s=60.0, stop=threading.Event())
    first = batcher.next_batch()
    second = batcher.next_batch()
    assert [r.line for r in first] == ["0", "1", "2", "3", "4"]  # two bursts, then a pause
    assert [r.line for r in second] == ["5", "6", "7", "8"]
    assert all(t == 0.0 for t in source.polls[1:3])  # only what is ready: no waiting


def test_a_full_batch_goes_without_waiting_for_a_pause() -> None:
    source = _Bursts([4, 4, 4])
    batcher = Batcher(source, max_rows=6, max_wait_s=60.0, stop=threading.Event())
    assert len(batcher.next_batch()) == 6
    assert len(batcher.next_batch()) == 6  # the rest of burst 2 and burst 3


def test_without_send_when_idle_the_batch_waits_out_its_window() -> None:
    source = _Bursts([2, 0, 0, 1])
    batcher = Batcher(
        source, max_rows=100, max_wait_s=0.3, stop=threading.Event(), send_when_idle=False
    )
    start = time.monotonic()
    batch = batcher.next_batch()
    assert [r.line for r in batch] == ["0", "1", "2"]  # the late record joined the batch
    assert time.monotonic() - start >= 0.3 * 0.9


def test_a_stop_request_hands_out_what_is_buffered() -> None:
    """A SIGTERM while a batch waits for its window: the batch goes at once, nothing dropped."""
    stop = threading.Event()
    source = _Bursts([2, 0])
    real_poll = source.poll

    def poll_then_stop(timeout: float) -> list[Record]:
        records = real_poll(timeout)
        if len(source.polls) == 2:
            stop.set()
        return records

    source.poll = poll_then_stop  # type: ignore[method-assign]
    batcher = Batcher(source, max_rows=100, max_wait_s=60.0, stop=stop, send_when_idle=False)
    assert [r.line for r in batcher.next_batch()] == ["0", "1"]
    assert batcher.finished
