"""Feature state in Redis: one ``redis-server`` shared by serving hosts, streams and batch jobs.

Layout, under a key prefix ``{p}`` (default ``inferloop``):

* ``{p}:pe:{entity}:{key}``: a string per entity key, its events packed as little-endian
  ``(int64 time, float64 amount)`` records in the order they were written (what the windows
  read);
* ``{p}:pl:{entity}:{key}``: the same key's labelled events, packed ``(int64 time, float64
  label, int64 label_time)`` records (what the delayed-label windows read);
* ``{p}:ver:{entity}``: a hash key -> version, bumped on every write to that key;
* ``{p}:last:{entity}``: a hash key -> newest event time ever written (not pruned);
* ``{p}:tx``: a hash id -> ``"<time>|<score>|<decision>|<model>|<entity keys>"`` (exactly-once);
* ``{p}:lb``: a hash id -> ``"<label>|<label_time>"`` (the label feed);
* ``{p}:ids``: a sorted set of ids by time (pruning);
* ``{p}:layout``: the layout's version, written with every write.

A scoring batch is two round trips: a Lua script reads the stored scores, the versions and
the packed series of the batch's keys; after scoring, a second script writes the events only
if none of those versions moved (compare-and-set), else the batch is read and scored again.
Both scripts run atomically in the server, so each batch sees a consistent state and every
event is written once. The windows are cut client-side, with numpy, from the packed records:
a key's series is one ``GET`` in the server and one ``frombuffer`` in Python, where a sorted
set of text members cost a range query, a string match per member and a text parse (the
series are kept like the SQLite backend's). A write appends its event (``APPEND``) and drops
the key's leading events older than the horizon; a prune filters every series. Scripts name
their keys through ARGV, so this layout suits a single Redis (or a replica set), not Redis
Cluster.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inferloop.data.events import EntityEvents, EntityQuery, repeated_keys
from inferloop.state.base import (
    Compute,
    FeatureState,
    Labels,
    ScoredEvents,
    Snapshot,
    StateRequest,
    StateStats,
)

__all__ = ["RedisState"]

#: The layout written by this module (``{p}:layout``); a state without it but with events was
#: written by the sorted-set layout before it, which this module cannot read.
LAYOUT = "2"

#: The packed records of an event series and of a labelled series.
_EVENT = np.dtype([("time", "<i8"), ("amount", "<f8")])
_LABELLED = np.dtype([("time", "<i8"), ("label", "<f8"), ("label_time", "<i8")])

# Field separator \31 and record separator \30 (ASCII unit and record separators).
_LUA_HELPERS = r"""
local function hmget_all(key, names)
  local out = {}
  for s = 1, #names, 2000 do
    local part = {}
    for j = s, math.min(s + 1999, #names) do part[#part + 1] = names[j] end
    local got = redis.call('HMGET', key, unpack(part))
    for j = 1, #got do out[#out + 1] = got[j] end
  end
  return out
end
"""

# -> {scores of the ids (nil if new), then per query: a header string of
#     "key\31version\31last\31bytes" records, and the keys' packed series end to end}
_READ = (
    _LUA_HELPERS
    + r"""
local p = ARGV[1]
local i = 2
local n_ids = tonumber(ARGV[i]); i = i + 1
local ids = {}
for j = 1, n_ids do ids[j] = ARGV[i]; i = i + 1 end
local result = {}
if n_ids > 0 then result[1] = hmget_all(p .. ':tx', ids) else result[1] = {} end
local n_queries = tonumber(ARGV[i]); i = i + 1
for q = 1, n_queries do
  local entity = ARGV[i]; local kind = ARGV[i + 1] == '1' and ':pl:' or ':pe:'
  local n_keys = tonumber(ARGV[i + 2]); i = i + 3
  local keys = {}
  for k = 1, n_keys do keys[k] = ARGV[i]; i = i + 1 end
  local header = {}; local data = {}
  if n_keys > 0 then
    local versions = hmget_all(p .. ':ver:' .. entity, keys)
    local lasts = hmget_all(p .. ':last:' .. entity, keys)
    for k = 1, n_keys do
      local series = redis.call('GET', p .. kind .. entity .. ':' .. keys[k]) or ''
      header[k] = keys[k] .. '\31' .. (versions[k] or '0') .. '\31' .. (lasts[k] or '-1')
        .. '\31' .. #series
      data[k] = series
    end
  end
  result[#result + 1] = table.concat(header, '\30')
  result[#result + 1] = table.concat(data)
end
return result
"""
)

_WRITE = (
    r"""
local p = ARGV[1]
local horizon = tonumber(ARGV[2])  -- negative: no trimming
-- drop the leading events older than cutoff (the event just appended is never older)
local function trim_front(series, cutoff)
  local first = redis.call('GETRANGE', series, 0, 7)
  if #first < 8 or struct.unpack('<i8', first) >= cutoff then return end
  local packed = redis.call('GET', series)
  local pos = 1
  while pos < #packed and struct.unpack('<i8', packed, pos) < cutoff do pos = pos + 16 end
  redis.call('SET', series, string.sub(packed, pos))
end
local i = 3
local n_checks = tonumber(ARGV[i]); i = i + 1
for c = 1, n_checks do
  local now = redis.call('HGET', p .. ':ver:' .. ARGV[i], ARGV[i + 1]) or '0'
  if now ~= ARGV[i + 2] then return -1 end
  i = i + 3
end
local n_events = tonumber(ARGV[i]); i = i + 1
if n_events > 0 then redis.call('SET', p .. ':layout', '"""
    + LAYOUT
    + r"""') end
local written = 0
for e = 1, n_events do
  local id, time, amount = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local record = ARGV[i + 3]; local label = ARGV[i + 4]
  local n_keys = tonumber(ARGV[i + 5]); i = i + 6
  local new = redis.call('HSETNX', p .. ':tx', id, record) == 1
  local event, labelled = nil, nil
  if new then
    written = written + 1
    redis.call('ZADD', p .. ':ids', time, id)
    event = struct.pack('<i8d', tonumber(time), tonumber(amount))
    if label ~= '' then
      redis.call('HSET', p .. ':lb', id, label)
      local value, at = string.match(label, '^([^|]*)|(.*)$')
      labelled = struct.pack('<i8di8', tonumber(time), tonumber(value), tonumber(at))
    end
  end
  for k = 1, n_keys do
    local entity, key = ARGV[i], ARGV[i + 1]; i = i + 2
    if new then
      local series = p .. ':pe:' .. entity .. ':' .. key
      redis.call('APPEND', series, event)
      if horizon >= 0 then trim_front(series, tonumber(time) - horizon) end
      if labelled then redis.call('APPEND', p .. ':pl:' .. entity .. ':' .. key, labelled) end
      redis.call('HINCRBY', p .. ':ver:' .. entity, key, 1)
      local last = tonumber(redis.call('HGET', p .. ':last:' .. entity, key) or '-1')
      if tonumber(time) > last then redis.call('HSET', p .. ':last:' .. entity, key, time) end
    end
  end
end
return written
"""
)

# ARGV: prefix, then (id, "label|label_time") pairs -> labels whose event is stored
_LABEL = r"""
local p = ARGV[1]
local function packed(time, value)
  local label, at = string.match(value, '^([^|]*)|(.*)$')
  return struct.pack('<i8di8', tonumber(time), tonumber(label), tonumber(at))
end
-- overwrite the record equal to old (one of them: equal records count alike) with new
local function replace(series, old, new)
  local current = redis.call('GET', series)
  if not current then return false end
  local from = 1
  while true do
    local at = string.find(current, old, from, true)
    if not at then return false end
    if (at - 1) % 24 == 0 then
      redis.call('SETRANGE', series, at - 1, new)
      return true
    end
    from = at + 1
  end
end
local matched = 0
for i = 2, #ARGV, 2 do
  local id, value = ARGV[i], ARGV[i + 1]
  local old = redis.call('HGET', p .. ':lb', id)
  redis.call('HSET', p .. ':lb', id, value)
  local record = redis.call('HGET', p .. ':tx', id)
  if record then
    matched = matched + 1
    local time, keys = string.match(record, '^([^|]*)|[^|]*|[^|]*|[^|]*|(.*)$')
    local entry = packed(time, value)
    local previous = old and packed(time, old)
    for entity, key in string.gmatch(keys, '([^\31]+)\31([^\31]+)') do
      local series = p .. ':pl:' .. entity .. ':' .. key
      if not (previous and replace(series, previous, entry)) then
        redis.call('APPEND', series, entry)
      end
    end
  end
end
return matched
"""

# ARGV: before, record size, then series names -> keeps each series' records at or after before
_PRUNE = r"""
local before = tonumber(ARGV[1])
local size = tonumber(ARGV[2])
for i = 3, #ARGV do
  local current = redis.call('GET', ARGV[i])
  if current then
    local kept = {}
    for pos = 1, #current, size do
      if struct.unpack('<i8', current, pos) >= before then
        kept[#kept + 1] = string.sub(current, pos, pos + size - 1)
      end
    end
    if #kept == 0 then
      redis.call('DEL', ARGV[i])
    elseif #kept * size < #current then
      redis.call('SET', ARGV[i], table.concat(kept))
    end
  end
end
return 0
"""

#: Events per write script call when writing in bulk.
_BULK_EVENTS = 5000


class RedisState(FeatureState):
    """Feature state in a Redis server.

    Parameters
    ----------
    url
        ``redis://host:port/db`` (``rediss://`` for TLS), as the ``redis`` client takes it.
    prefix
        Key prefix, so several states can share one server.
    max_retries
        Conflicting writes retried before giving up.
    """

    def __init__(self, url: str, prefix: str = "inferloop", max_retries: int = 100) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - the extra is missing
            raise ImportError(
                "Redis feature state needs the redis client: pip install 'inferloop[redis]'"
            ) from exc
        self.location = url
        self.prefix = prefix
        self.max_retries = max_retries
        self.client = redis.Redis.from_url(url)
        self._check_layout()
        self._read = self.client.register_script(_READ)
        self._write = self.client.register_script(_WRITE)
        self._label = self.client.register_script(_LABEL)
        self._prune = self.client.register_script(_PRUNE)

    def _check_layout(self) -> None:
        """Refuse a state written in another layout: its series would read as empty."""
        p = self.prefix
        stored = self.client.get(f"{p}:layout")
        layout = stored.decode() if isinstance(stored, bytes) else stored
        if layout is None and not self.client.exists(f"{p}:tx"):
            return  # empty: the first write records the layout
        if layout != LAYOUT:
            found = "the sorted-set layout" if layout is None else f"layout {layout}"
            raise RuntimeError(
                f"feature state {self.location} (prefix {p!r}) was written in {found}; this "
                f"inferloop reads layout {LAYOUT}. Delete the keys under the prefix "
                f"(redis-cli --scan --pattern '{p}:*' | xargs redis-cli unlink) and seed it "
                "again (inferloop state seed)"
            )

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    def clear(self) -> int:
        """Delete every key under this state's prefix (a fresh state); returns keys deleted."""
        deleted = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=f"{self.prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(self.client.unlink(*batch))
                batch = []
        if batch:
            deleted += int(self.client.unlink(*batch))
        return deleted

    # ------------------------------------------------------------------ scoring
    def transact(self, request: StateRequest, compute: Compute) -> tuple[Snapshot, ScoredEvents]:
        """Read, compute, compare-and-set write; retried while another writer got there first."""
        for _ in range(self.max_retries):
            snapshot, versions = self._snapshot(request)
            events = compute(snapshot)
            checks = [x for (entity, key), v in versions.items() for x in (entity, key, v)]
            horizon = -1 if request.horizon is None else request.horizon
            args = [self.prefix, horizon, len(versions), *checks, *_event_args(events)]
            written = self._write(args=args)
            if int(written) >= 0:
                return snapshot, events
        raise RuntimeError(
            f"feature state {self.location}: {self.max_retries} conflicting writes in a row"
        )

    def _snapshot(self, request: StateRequest) -> tuple[Snapshot, dict[tuple[str, str], str]]:
        args: list[Any] = [self.prefix, len(request.ids), *request.ids]
        args.append(len(request.queries))
        for q in request.queries:
            args += [q.entity, int(q.labelled), len(q.keys), *q.keys]
        reply = self._read(args=args)
        scored = _parse_scored(request.ids, reply[0])
        versions: dict[tuple[str, str], str] = {}
        events = {
            q.entity: _parse_events(
                q, reply[1 + 2 * j], reply[2 + 2 * j], request.label_cutoff, versions
            )
            for j, q in enumerate(request.queries)
        }
        return Snapshot(scored=scored, events=events), versions

    def scored(self, ids: np.ndarray) -> dict[str, tuple[float, int, str]]:
        """Stored ``(score, decision, model)`` per known id."""
        if len(ids) == 0:
            return {}
        return _parse_scored(ids, self.client.hmget(f"{self.prefix}:tx", ids.tolist()))

    def write_events(self, events: ScoredEvents) -> int:
        """Bulk write in script calls of a few thousand events."""
        written = 0
        for start in range(0, len(events), _BULK_EVENTS):
            part = events.take(slice(start, start + _BULK_EVENTS))
            written += int(self._write(args=[self.prefix, -1, 0, *_event_args(part)]))
        return written

    def add_labels(self, labels: Labels) -> tuple[int, int]:
        """Store the feed's labels; count those whose event is in the store."""
        pairs = [
            x
            for i, v, at in zip(
                labels.ids.tolist(), labels.label.tolist(), labels.label_time.tolist(), strict=True
            )
            for x in (i, f"{float(v)!r}|{int(at)}")
        ]
        matched = 0
        step = 2 * _BULK_EVENTS
        for start in range(0, len(pairs), step):
            matched += int(self._label(args=[self.prefix, *pairs[start : start + step]]))
        return len(labels), matched

    # ------------------------------------------------------------------ upkeep
    def prune(self, before: int) -> int:
        """Drop events older than ``before`` with their labels; keys' last-seen times stay."""
        p = self.prefix
        old = self.client.zrangebyscore(f"{p}:ids", "-inf", f"({before}")
        for start in range(0, len(old), _BULK_EVENTS):
            chunk = old[start : start + _BULK_EVENTS]
            self.client.hdel(f"{p}:tx", *chunk)
            self.client.hdel(f"{p}:lb", *chunk)
        self.client.zremrangebyscore(f"{p}:ids", "-inf", f"({before}")
        for kind, record in (("pe", _EVENT), ("pl", _LABELLED)):
            names: list[bytes] = []
            for name in self.client.scan_iter(match=f"{p}:{kind}:*", count=1000):
                names.append(name)
                if len(names) >= 1000:
                    self._prune(args=[before, record.itemsize, *names])
                    names = []
            if names:
                self._prune(args=[before, record.itemsize, *names])
        return len(old)

    def stats(self) -> StateStats:
        """Counts, active keys per entity kind, and the server's dataset bytes."""
        p = self.prefix
        entities: dict[str, int] = {}
        for key in self.client.scan_iter(match=f"{p}:pe:*", count=1000):
            entity = key.decode()[len(p) :].split(":")[2]
            entities[entity] = entities.get(entity, 0) + 1
        newest = self.client.zrange(f"{p}:ids", -1, -1, withscores=True)
        memory = self.client.info("memory")
        return StateStats(
            location=self.location,
            events=int(self.client.zcard(f"{p}:ids")),
            labels=int(self.client.hlen(f"{p}:lb")),
            entities=entities,
            bytes=int(memory.get("used_memory_dataset", memory["used_memory"])),
            newest_time=int(newest[0][1]) if newest else -1,
        )


def _event_args(events: ScoredEvents) -> list[Any]:
    """The write script's ARGV for ``events``."""
    args: list[Any] = [len(events)]
    labels = events.label if events.label is not None else np.full(len(events), np.nan)
    label_times = events.label_time if events.label_time is not None else np.zeros(len(events))
    entities = list(events.keys)
    key_lists = [events.keys[e].tolist() for e in entities]
    for j, (i, t, a, s, d, lb, lt) in enumerate(
        zip(
            events.ids.tolist(),
            events.time.astype(np.int64).tolist(),
            events.amount.astype(np.float64).tolist(),
            events.score.astype(np.float64).tolist(),
            events.decision.astype(np.int64).tolist(),
            labels.tolist(),
            np.asarray(label_times).astype(np.int64).tolist(),
            strict=True,
        )
    ):
        label = "" if lb != lb else f"{lb!r}|{lt}"  # NaN: no label
        keys = "\x1f".join(f"{e}\x1f{k[j]}" for e, k in zip(entities, key_lists, strict=True))
        args += [i, t, repr(a), f"{t}|{s!r}|{d}|{events.model}|{keys}", label, len(entities)]
        for entity, keys in zip(entities, key_lists, strict=True):
            args += [entity, keys[j]]
    return args


def _parse_scored(ids: np.ndarray, values: list[Any]) -> dict[str, tuple[float, int, str]]:
    out: dict[str, tuple[float, int, str]] = {}
    for i, value in zip(ids.tolist(), values, strict=True):
        if value:
            _, score, decision, model, _ = value.decode().split("|", 4)
            out[str(i)] = (float(score), int(decision), model)
    return out


def _parse_events(
    query: EntityQuery,
    header: bytes,
    data: bytes,
    label_cutoff: int,
    versions: dict[tuple[str, str], str],
) -> EntityEvents:
    """Events of one query from the read script's header and packed series (see ``_READ``).

    The window is cut here: ``time > since`` and, for labelled events, labels that arrived
    by ``label_cutoff``.
    """
    record = _LABELLED if query.labelled else _EVENT
    keys: list[str] = []
    counts: list[int] = []
    last: dict[str, int] = {}
    for entry in header.decode().split("\x1e") if header else []:
        key, version, newest, size = entry.split("\x1f")
        versions[(query.entity, key)] = version
        if int(newest) >= 0:
            last[key] = int(newest)
        keys.append(key)
        counts.append(int(size) // record.itemsize)
    if not data:
        return EntityEvents.empty(last)
    packed = np.frombuffer(data, dtype=record)
    keep = packed["time"] > query.since
    if query.labelled:
        keep &= packed["label_time"] <= label_cutoff
    key_of = repeated_keys(keys, counts)[keep]
    kept = packed[keep]
    if query.labelled:
        return EntityEvents.of_labels(
            key_of, kept["time"].copy(), kept["label"].copy(), kept["label_time"].copy(), last
        )
    return EntityEvents.of_events(key_of, kept["time"].copy(), kept["amount"].copy(), last)
