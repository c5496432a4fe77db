"""Feature state in Redis: one ``redis-server`` shared by serving hosts, streams and batch jobs.

Layout, under a key prefix ``{p}`` (default ``inferloop``):

* ``{p}:ev:{entity}:{key}``: a sorted set per entity key, members ``"<id>|<amount>"`` scored by
  event time (what the windows read);
* ``{p}:lz:{entity}:{key}``: the same key's labelled events, members
  ``"<id>|<label>|<label_time>"`` (what the delayed-label windows read);
* ``{p}:ver:{entity}``: a hash key -> version, bumped on every write to that key;
* ``{p}:last:{entity}``: a hash key -> newest event time ever written (not pruned);
* ``{p}:tx``: a hash id -> ``"<time>|<score>|<decision>|<model>|<entity keys>"`` (exactly-once);
* ``{p}:lb``: a hash id -> ``"<label>|<label_time>"`` (the label feed);
* ``{p}:ids``: a sorted set of ids by time (pruning).

A scoring batch is two round trips: a Lua script reads the stored scores, the events and the
versions of the batch's keys; after scoring, a second script writes the events only if none of
those versions moved (compare-and-set), else the batch is read and scored again. Both scripts
run atomically in the server, so each batch sees a consistent state and every event is written
once. Scripts name their keys through ARGV, so this layout suits a single Redis (or a replica
set), not Redis Cluster.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inferloop.data.events import EntityEvents, EntityQuery
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
#     "key\31version\31last\31n" records, and a comma-separated string of
#     time,amount,label,label_time per event (label nan where none)}
_READ = (
    _LUA_HELPERS
    + r"""
local p = ARGV[1]
local cutoff = tonumber(ARGV[2])
local i = 3
local n_ids = tonumber(ARGV[i]); i = i + 1
local ids = {}
for j = 1, n_ids do ids[j] = ARGV[i]; i = i + 1 end
local result = {}
if n_ids > 0 then result[1] = hmget_all(p .. ':tx', ids) else result[1] = {} end
local n_queries = tonumber(ARGV[i]); i = i + 1
for q = 1, n_queries do
  local entity = ARGV[i]; local labelled = ARGV[i + 1] == '1'
  local since = '(' .. ARGV[i + 2]; local n_keys = tonumber(ARGV[i + 3]); i = i + 4
  local header = {}; local data = {}
  local set = labelled and ':lz:' or ':ev:'
  for k = 1, n_keys do
    local key = ARGV[i]; i = i + 1
    local version = redis.call('HGET', p .. ':ver:' .. entity, key) or '0'
    local last = redis.call('HGET', p .. ':last:' .. entity, key) or '-1'
    local found = redis.call('ZRANGEBYSCORE', p .. set .. entity .. ':' .. key, since, '+inf', 'WITHSCORES')
    local n = 0
    for m = 1, #found, 2 do
      if labelled then
        local label, at = string.match(found[m], '|([^|]*)|([^|]*)$')
        if tonumber(at) <= cutoff then
          data[#data + 1] = found[m + 1] .. ',0,' .. label .. ',' .. at
          n = n + 1
        end
      else
        data[#data + 1] = found[m + 1] .. ',' .. string.match(found[m], '|([^|]*)$') .. ',nan,0'
        n = n + 1
      end
    end
    header[#header + 1] = key .. '\31' .. version .. '\31' .. last .. '\31' .. n
  end
  result[#result + 1] = table.concat(header, '\30')
  result[#result + 1] = table.concat(data, ',')
end
return result
"""
)

_WRITE = r"""
local p = ARGV[1]
local horizon = tonumber(ARGV[2])  -- negative: no trimming
local i = 3
local n_checks = tonumber(ARGV[i]); i = i + 1
for c = 1, n_checks do
  local now = redis.call('HGET', p .. ':ver:' .. ARGV[i], ARGV[i + 1]) or '0'
  if now ~= ARGV[i + 2] then return -1 end
  i = i + 3
end
local n_events = tonumber(ARGV[i]); i = i + 1
local written = 0
for e = 1, n_events do
  local id, time, amount = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local record = ARGV[i + 3]; local label = ARGV[i + 4]
  local n_keys = tonumber(ARGV[i + 5]); i = i + 6
  local new = redis.call('HSETNX', p .. ':tx', id, record) == 1
  if new then
    written = written + 1
    redis.call('ZADD', p .. ':ids', time, id)
    if label ~= '' then redis.call('HSET', p .. ':lb', id, label) end
  end
  for k = 1, n_keys do
    local entity, key = ARGV[i], ARGV[i + 1]; i = i + 2
    if new then
      local set = p .. ':ev:' .. entity .. ':' .. key
      redis.call('ZADD', set, time, id .. '|' .. amount)
      if horizon >= 0 then
        redis.call('ZREMRANGEBYSCORE', set, '-inf', '(' .. (tonumber(time) - horizon))
      end
      if label ~= '' then
        redis.call('ZADD', p .. ':lz:' .. entity .. ':' .. key, time, id .. '|' .. label)
      end
      redis.call('HINCRBY', p .. ':ver:' .. entity, key, 1)
      local last = tonumber(redis.call('HGET', p .. ':last:' .. entity, key) or '-1')
      if tonumber(time) > last then redis.call('HSET', p .. ':last:' .. entity, key, time) end
    end
  end
end
return written
"""

# ARGV: prefix, then (id, "label|label_time") pairs -> labels whose event is stored
_LABEL = r"""
local p = ARGV[1]
local matched = 0
for i = 2, #ARGV, 2 do
  local id, value = ARGV[i], ARGV[i + 1]
  local old = redis.call('HGET', p .. ':lb', id)
  redis.call('HSET', p .. ':lb', id, value)
  local record = redis.call('HGET', p .. ':tx', id)
  if record then
    matched = matched + 1
    local time, keys = string.match(record, '^([^|]*)|[^|]*|[^|]*|[^|]*|(.*)$')
    for entity, key in string.gmatch(keys, '([^\31]+)\31([^\31]+)') do
      local set = p .. ':lz:' .. entity .. ':' .. key
      if old then redis.call('ZREM', set, id .. '|' .. old) end
      redis.call('ZADD', set, time, id .. '|' .. value)
    end
  end
end
return matched
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
        self._read = self.client.register_script(_READ)
        self._write = self.client.register_script(_WRITE)
        self._label = self.client.register_script(_LABEL)

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
        args: list[Any] = [self.prefix, request.label_cutoff, len(request.ids), *request.ids]
        args.append(len(request.queries))
        for q in request.queries:
            args += [q.entity, int(q.labelled), q.since, len(q.keys), *q.keys]
        reply = self._read(args=args)
        scored = _parse_scored(request.ids, reply[0])
        versions: dict[tuple[str, str], str] = {}
        events = {
            q.entity: _parse_events(q, reply[1 + 2 * j], reply[2 + 2 * j], versions)
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
        pipe = self.client.pipeline(transaction=False)
        for pattern in (f"{p}:ev:*", f"{p}:lz:*"):
            for key in self.client.scan_iter(match=pattern, count=1000):
                pipe.zremrangebyscore(key, "-inf", f"({before}")
        pipe.execute()
        return len(old)

    def stats(self) -> StateStats:
        """Counts, active keys per entity kind, and the server's dataset bytes."""
        p = self.prefix
        entities: dict[str, int] = {}
        for key in self.client.scan_iter(match=f"{p}:ev:*", count=1000):
            entity = key.decode().split(":")[2]
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
    query: EntityQuery, header: bytes, data: bytes, versions: dict[tuple[str, str], str]
) -> EntityEvents:
    """Events of one query from the read script's two strings (see ``_READ``)."""
    keys: list[str] = []
    counts: list[int] = []
    last: dict[str, int] = {}
    for record in header.decode().split("\x1e") if header else []:
        key, version, newest, n = record.split("\x1f")
        versions[(query.entity, key)] = version
        if int(newest) >= 0:
            last[key] = int(newest)
        keys.append(key)
        counts.append(int(n))
    if not data:
        return EntityEvents.empty(last)
    fields = np.fromstring(data.decode(), dtype=np.float64, sep=",").reshape(-1, 4)
    return EntityEvents(
        key=np.repeat(np.asarray(keys, dtype=object), counts),
        time=fields[:, 0].astype(np.int64),
        amount=fields[:, 1],
        label=fields[:, 2],
        label_time=fields[:, 3].astype(np.int64),
        last=last,
    )
