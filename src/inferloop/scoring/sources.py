"""Where stream records come from, and how they are cut into micro-batches.

A source (:class:`StdinSource`, :class:`WatchSource`) hands out :class:`Record` lines with the
time they were read and is told when records have been written out (``acknowledge``), so a
watched file moves to ``processed/`` only after its last record. :class:`Batcher` cuts the
flow into micro-batches.

Why a batch goes as soon as the input pauses: the stream scores one batch at a time, so
records that arrive while a batch is being scored wait in the pipe anyway. Sending what is
waiting the moment the scorer is free keeps latency near one batch's scoring time, and the
batches still grow with the input rate, which is what keeps throughput up. Waiting out the
full ``max_wait_ms`` window would add up to that window to every record for no gain in
throughput. ``send_when_idle=False`` restores the fixed window.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Batcher", "Record", "StdinSource", "WatchSource"]


#: Longest single wait for input, so a stop request is seen within this many seconds.
_POLL_S = 0.1


@dataclass
class Record:
    """One input line and when it was read (``time.monotonic``)."""

    line: str
    arrived: float
    source: Path | None = None
    last_of_source: bool = False


class StdinSource:
    """Complete lines from a file descriptor (stdin), read without blocking the loop."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.eof = False
        self._partial = b""

    def poll(self, timeout: float) -> list[Record]:
        """Lines that arrived within ``timeout`` seconds (possibly none)."""
        if self.eof:
            return []
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0.0))
        if not ready:
            return []
        data = os.read(self.fd, 1 << 16)
        now = time.monotonic()
        if not data:
            self.eof = True
            rest, self._partial = self._partial, b""
            return [Record(rest.decode("utf-8", "replace"), now)] if rest.strip() else []
        *lines, self._partial = (self._partial + data).split(b"\n")
        return [Record(x.decode("utf-8", "replace"), now) for x in lines if x.strip()]

    def acknowledge(self, records: Iterable[Record]) -> None:
        """Nothing to do: stdin records need no acknowledgement."""


class WatchSource:
    """Records of ``*.jsonl`` files landing in a folder, oldest name first.

    Parameters
    ----------
    folder:
        The watched folder; finished files move to ``folder/processed``.
    poll_s:
        Seconds between listings of the folder.
    once:
        End (``eof``) when a listing finds nothing new and no file is in flight.
    """

    def __init__(self, folder: Path, poll_s: float, *, once: bool = False) -> None:
        self.folder = folder
        self.done_dir = folder / "processed"
        self.poll_s = poll_s
        self.once = once
        self.eof = False
        self._in_flight: set[Path] = set()
        self._next_listing = 0.0

    def poll(self, timeout: float) -> list[Record]:
        """Records of files that landed since the last listing (waits up to ``timeout``)."""
        wait = self._next_listing - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, max(timeout, 0.0)))
            if self._next_listing > time.monotonic():
                return []
        self._next_listing = time.monotonic() + self.poll_s
        new = [p for p in self._landed() if p not in self._in_flight]
        records = [r for path in new for r in self._read(path)]
        if self.once and not new and not self._in_flight:
            self.eof = True
        return records

    def _landed(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(
            p
            for p in self.folder.iterdir()
            if p.is_file() and p.suffix == ".jsonl" and not p.name.startswith(".")
        )

    def _read(self, path: Path) -> list[Record]:
        now = time.monotonic()
        lines = [
            x for x in path.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()
        ]
        if not lines:
            self._finish(path)
            return []
        self._in_flight.add(path)
        records = [Record(x, now, path) for x in lines]
        records[-1].last_of_source = True
        return records

    def acknowledge(self, records: Iterable[Record]) -> None:
        """Move files whose last record has been written out to ``processed/``."""
        for record in records:
            if record.last_of_source and record.source is not None:
                self._in_flight.discard(record.source)
                self._finish(record.source)

    def _finish(self, path: Path) -> None:
        self.done_dir.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.done_dir / path.name)


class Batcher:
    """Cuts the record flow into micro-batches of at most ``max_rows`` records.

    A batch goes when it is full, when its oldest record has waited ``max_wait_s``, or, with
    ``send_when_idle`` (the default), as soon as the source has nothing more ready: under load
    the records that queued while the previous batch was scored make the next batch.
    """

    def __init__(
        self,
        source: Any,
        max_rows: int,
        max_wait_s: float,
        stop: threading.Event,
        *,
        send_when_idle: bool = True,
    ) -> None:
        self.source = source
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self.stop = stop
        self.send_when_idle = send_when_idle
        self._buffer: deque[Record] = deque()

    @property
    def finished(self) -> bool:
        """True when no record is buffered and no more will be read."""
        return not self._buffer and (self.source.eof or self.stop.is_set())

    def next_batch(self) -> list[Record]:
        """The next micro-batch (may be empty when input ended or a stop was requested)."""
        while not self.stop.is_set() and not self.source.eof and len(self._buffer) < self.max_rows:
            if not self._buffer:
                self._buffer.extend(self.source.poll(_POLL_S))
                continue
            wait = self._buffer[0].arrived + self.max_wait_s - time.monotonic()
            if wait <= 0:
                break
            arrived = self.source.poll(0.0 if self.send_when_idle else min(wait, _POLL_S))
            if not arrived and self.send_when_idle:
                break
            self._buffer.extend(arrived)
        take = min(self.max_rows, len(self._buffer))
        return [self._buffer.popleft() for _ in range(take)]
