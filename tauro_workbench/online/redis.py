"""RedisOnlineStore: latest feature values per entity in Redis, written atomically in order.

Layout: one string per entity, ``{<prefix>:<group>:v<version>}:<entity key>`` ->
``<order prefix>[<feature values as JSON>]`` (see :mod:`tauro_workbench.online.codec`; no
pickle, ~4 bytes of overhead per feature). One string per entity (not a hash per entity)
because it was measured faster both ways: a read is one GET (MGET for many entities) and the
order check in Lua reads only the 36-byte prefix with GETRANGE.

Redis Cluster: the ``{...}`` hash tag puts every key of a group version in one slot. That is
what lets a read of many entities be one MGET and a write batch be one atomic Lua call (both are
multi-key commands, which Cluster only allows within a slot). The price is that one group lives
on one shard; groups are spread over shards by their names.

Writes are batched (``batch_size`` entities per Lua call) and pipelined over one connection with
a few batches in flight, so client-side encoding overlaps server-side work. The Lua script
compares each stored prefix with the new one and writes only when the new row is not older, so
concurrent writers never regress a value; ties go to the later write. Rows of a group with a ttl
get ``PXAT event time + ttl`` and expire; reads check the ttl as well.

Failures: connection errors and timeouts are retried with exponential backoff
(:class:`~tauro_workbench.retry.RetryPolicy`); a batched write resumes after the last batch the
server acknowledged, which is safe because re-applying a batch is a no-op. redis-py's own
retries are turned off so that one policy governs. hiredis is used automatically when installed.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import polars as pl

from tauro_workbench.exceptions import ConfigurationError, MissingExtraError, OnlineStoreError
from tauro_workbench.online.base import OnlineRow, WriteResult
from tauro_workbench.online.codec import (
    ORDER_WIDTH,
    ValueCodec,
    encode_entity,
    entity_key_expr,
    event_micros,
    latest_per_entity,
)
from tauro_workbench.retry import RetryPolicy
from tauro_workbench.schema import FeatureGroupSchema

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("redis", extra="redis") from err

__all__ = ["RedisOnlineStore"]

T = TypeVar("T")


def _upsert_script(*, expiring: bool) -> str:
    """Lua applying one batch: KEYS are entity keys, ARGV the values (then their PXAT times).

    ``GETRANGE`` reads only the stored 36-digit order prefix ('' when absent, which sorts
    first). Both sides of the comparison are equal-length digit strings, so Lua's string order
    (``strcoll``) is the numeric order in any locale; on a tie - equal event and created time -
    the later write wins.
    """
    write = "call('SET', key, value, 'PXAT', argv[n + i])" if expiring else "call('SET', key, value)"
    return f"""
local call, sub, keys, argv = redis.call, string.sub, KEYS, ARGV
local n = #keys
local applied = 0
for i = 1, n do
  local key, value = keys[i], argv[i]
  if call('GETRANGE', key, 0, {ORDER_WIDTH - 1}) <= sub(value, 1, {ORDER_WIDTH}) then
    {write}
    applied = applied + 1
  end
end
return applied
"""


_UPSERT = _upsert_script(expiring=False)
_UPSERT_EXPIRING = _upsert_script(expiring=True)
_IN_FLIGHT = 3
_PREFIX_OK = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_TOKEN_KEY = "_sync"  # entity keys start with a type letter (i, s, d), so this never collides


def _is_transient(err: BaseException) -> bool:
    return isinstance(err, redis.ConnectionError | redis.TimeoutError)


def _oldest(schema: FeatureGroupSchema) -> int | None:
    """Return the oldest live event time (epoch microseconds) under the group's ttl."""
    ttl = schema.ttl
    return None if ttl is None else time.time_ns() // 1000 - int(ttl.total_seconds() * 1_000_000)


def redact(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class RedisOnlineStore:
    """Online store on Redis (redis-py with a blocking connection pool).

    Args:
        url: ``redis://[[user]:password@]host:port/db``, or ``rediss://`` for TLS.
        key_prefix: Prefix of every key (letters, digits, ``_.:-``).
        socket_timeout_seconds: Connect and read timeout of each command.
        max_connections: Size of the connection pool (callers wait for a free connection).
        batch_size: Entities per Lua call when writing.
        max_retries: Retries of a command after a connection error or a timeout.
        retry_backoff_ms: Wait before the first retry.
        retry_backoff_multiplier: Factor applied to the wait after each retry.

    Example:
        >>> store = RedisOnlineStore("redis://127.0.0.1:6379/0")  # doctest: +SKIP
        >>> store.read(user_features, [(1,)], ["age"])  # doctest: +SKIP
        [(42,)]
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "tauro",
        socket_timeout_seconds: float = 5.0,
        max_connections: int = 16,
        batch_size: int = 5000,
        max_retries: int = 3,
        retry_backoff_ms: float = 100.0,
        retry_backoff_multiplier: float = 2.0,
    ) -> None:
        if not _PREFIX_OK.fullmatch(key_prefix):
            raise ConfigurationError(
                f"online_store.key_prefix {key_prefix!r} is not allowed",
                hint="Use 1-64 letters, digits or '_.:-' (braces would break the Redis Cluster hash tag).",
            )
        self.url = url
        self.key_prefix = key_prefix
        self.batch_size = batch_size
        self._retry = RetryPolicy(
            max_retries=max_retries,
            backoff_ms=retry_backoff_ms,
            multiplier=retry_backoff_multiplier,
            is_transient=_is_transient,
        )
        try:
            self._pool = redis.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=socket_timeout_seconds,
                socket_timeout=socket_timeout_seconds,
                socket_connect_timeout=socket_timeout_seconds,
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError as err:
            raise ConfigurationError(
                f"online_store.url {redact(url)!r} is not a Redis URL: {err}",
                hint="Use redis://[:password@]host:port/db or rediss://... for TLS.",
            ) from err
        self.client: redis.Redis = redis.Redis(connection_pool=self._pool)
        self._codecs: dict[int, tuple[FeatureGroupSchema, ValueCodec]] = {}

    # -- keys -------------------------------------------------------------------------------
    def group_tag(self, schema: FeatureGroupSchema) -> str:
        """Return the key prefix of every row of the group: ``{prefix:group:vN}:``."""
        return f"{{{self.key_prefix}:{schema.name}:v{schema.version}}}:"

    def _codec(self, schema: FeatureGroupSchema) -> ValueCodec:
        # Keyed by identity (the entry keeps the schema alive, so its id is not reused): a
        # request-path read must not compare whole schemas.
        entry = self._codecs.get(id(schema))
        if entry is None or entry[0] is not schema:
            if len(self._codecs) >= 64:
                self._codecs.clear()
            entry = (schema, ValueCodec(schema))
            self._codecs[id(schema)] = entry
        return entry[1]

    def _call(self, fn: Callable[[], T], what: str) -> T:
        try:
            return self._retry.call(fn, what=f"redis: {what}")
        except redis.RedisError as err:
            raise OnlineStoreError(
                f"Redis at {redact(self.url)} failed to {what} after {self._retry.max_retries} "
                f"retries: {err}",
                hint="Check that the server is up and reachable; a failed sync can be re-run "
                "with materialize_online(group).",
            ) from err

    # -- writes ------------------------------------------------------------------------------
    def write(
        self, schema: FeatureGroupSchema, frame: pl.DataFrame, *, progress: bool = False
    ) -> WriteResult:
        """Upsert the latest row per entity of ``frame`` in pipelined, atomic batches.

        Raises:
            OnlineStoreError: If Redis stays unreachable after the retries (batches already
                acknowledged stay written; re-running the write completes it).
        """
        codec = self._codec(schema)
        latest = latest_per_entity(schema, frame)
        columns = [
            pl.concat_str(pl.lit(self.group_tag(schema)), entity_key_expr(latest.schema, schema.entity_keys)),
            codec.value_expr(latest),
            *([codec.expire_at_expr()] if codec.expires else []),
        ]
        script = _UPSERT_EXPIRING if codec.expires else _UPSERT
        total = latest.height

        def encode(start: int) -> list[Any]:
            # Encoded per batch, so Redis runs batch i while Polars encodes batch i+1.
            part = latest.slice(start, self.batch_size).select(
                expr.alias(f"c{i}") for i, expr in enumerate(columns)
            )
            return ["EVAL", script, part.height, *(v for c in part.iter_columns() for v in c.to_list())]

        starts = list(range(0, total, self.batch_size))
        applied = self._run_batches(starts, encode, schema.name, progress=progress)
        return WriteResult(entities=total, applied=applied, batches=len(starts))

    def _run_batches(
        self, starts: list[int], encode: Callable[[int], list[Any]], group: str, *, progress: bool
    ) -> int:
        state = {"next": 0, "applied": 0}
        bar = None
        if progress and len(starts) > 1:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(starts), desc=f"online sync {group}", unit="batch")

        def attempt() -> None:
            # One connection with a few batches in flight. On failure, resume after the last
            # batch the server acknowledged (re-applying one is a no-op, so this is safe).
            conn = self._pool.get_connection()
            in_flight: deque[int] = deque()
            try:
                position = state["next"]
                while position < len(starts) or in_flight:
                    while position < len(starts) and len(in_flight) < _IN_FLIGHT:
                        conn.send_command(*encode(starts[position]))
                        in_flight.append(position)
                        position += 1
                    done = in_flight.popleft()
                    state["applied"] += int(conn.read_response())
                    state["next"] = done + 1
                    if bar is not None:
                        bar.update(1)
            except BaseException:
                conn.disconnect()  # replies may still be pending on it
                raise
            finally:
                self._pool.release(conn)

        try:
            self._call(attempt, f"write {len(starts)} batches of {group}")
        finally:
            if bar is not None:
                bar.close()
        return state["applied"]

    # -- reads -------------------------------------------------------------------------------
    def read(
        self, schema: FeatureGroupSchema, entities: Sequence[Sequence[Any]], features: Sequence[str]
    ) -> list[OnlineRow]:
        """Return each entity's live values of ``features`` in one round trip (GET or MGET).

        Raises:
            OnlineStoreError: If Redis stays unreachable after the retries.
        """
        codec = self._codec(schema)
        oldest = _oldest(schema)
        out: list[OnlineRow] = []
        for value in self._fetch(schema, entities):
            if value is None or (oldest is not None and event_micros(value) < oldest):
                out.append(None)
            else:
                out.append(codec.decode(value, features))
        return out

    def read_columns(
        self, schema: FeatureGroupSchema, entities: Sequence[Sequence[Any]], features: Sequence[str]
    ) -> list[pl.Series]:
        """Return one typed Series per feature, a value per entity, in one round trip (MGET).

        Raises:
            OnlineStoreError: If Redis stays unreachable after the retries.
        """
        oldest = _oldest(schema)
        raws = [
            None if value is None or (oldest is not None and event_micros(value) < oldest) else value
            for value in self._fetch(schema, entities)
        ]
        return self._codec(schema).decode_columns(raws, features)

    def _fetch(self, schema: FeatureGroupSchema, entities: Sequence[Sequence[Any]]) -> list[bytes | None]:
        tag = self.group_tag(schema)
        columns = schema.entity_keys
        keys = [tag + encode_entity(e, columns) for e in entities]
        # The client runs without decode_responses: values are bytes (or None).
        if len(keys) == 1:
            return [cast("bytes | None", self._call(lambda: self.client.get(keys[0]), f"read {schema.name}"))]
        if not keys:
            return []
        return cast("list[bytes | None]", self._call(lambda: self.client.mget(keys), f"read {schema.name}"))

    # -- bookkeeping -------------------------------------------------------------------------
    def get_sync_token(self, schema: FeatureGroupSchema) -> str | None:
        """Return the group's token; None after a flush or a restart without persistence."""
        raw = self._call(lambda: self.client.get(self.group_tag(schema) + _TOKEN_KEY), "read the sync token")
        return None if raw is None else cast(bytes, raw).decode()

    def set_sync_token(self, schema: FeatureGroupSchema, token: str) -> None:
        """Mark the group's online copy with ``token``."""
        self._call(
            lambda: self.client.set(self.group_tag(schema) + _TOKEN_KEY, token), "write the sync token"
        )

    def delete_group(self, schema: FeatureGroupSchema) -> int:
        """Delete every key of the group (SCAN + UNLINK); return how many rows were deleted."""
        pattern = self.group_tag(schema) + "*"

        def delete() -> int:
            deleted = 0
            batch: list[bytes] = []
            for key in self.client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                deleted += not key.endswith(token)
                if len(batch) >= 1000:
                    self.client.unlink(*batch)
                    batch = []
            if batch:
                self.client.unlink(*batch)
            return deleted

        token = (":" + _TOKEN_KEY).encode()
        return self._call(delete, f"delete {schema.name}")

    def health_check(self) -> bool:
        """Return True when the server answers PING."""
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.disconnect()

    def __repr__(self) -> str:
        return f"RedisOnlineStore({redact(self.url)!r}, key_prefix={self.key_prefix!r})"
