"""RedisOnlineStore: latest feature values per entity in Redis, written atomically in order.

Layout: one string per entity, ``{<prefix>:<group>:v<version>}:<generation><entity key>`` ->
``<order prefix>[<feature values as JSON>]`` (see :mod:`tauro_workbench.online.codec`; no
pickle, ~4 bytes of overhead per feature).

Generations: ``{...}:_gen`` names the generation readers see (absent: the initial one, whose
rows carry no generation part, ``{...}:i42``). A full resync (:meth:`RedisOnlineStore.replace`)
loads a fresh generation (``{...}:g<hex>:i42``) while readers keep reading the current one,
then switches the pointer atomically and deletes the old generation, so readers never see an
empty or half-loaded group and values that no longer exist offline disappear. A read is one
MGET of the pointer and the entity keys of the generation the client last saw (re-read once
if the pointer moved); a write batch checks the pointer inside its Lua script and is re-sent
to the new generation if it moved, so no write lands in a generation being dropped. One string per entity (not a hash per entity)
because it was measured faster both ways: a read is one GET (MGET for many entities) and the
order check in Lua reads only the 36-byte prefix with GETRANGE.

Redis Cluster: the ``{...}`` hash tag puts every key of a group version in one slot. That is
what lets a read of many entities be one MGET and a write batch be one atomic Lua call (both are
multi-key commands, which Cluster only allows within a slot). The price is that one group lives
on one shard; groups are spread over shards by their names.

Incremental writes are batched (``batch_size`` entities per Lua call) and pipelined over one connection with
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
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import polars as pl
from loguru import logger

from tauro_workbench.exceptions import (
    ConfigurationError,
    CorruptOnlineValueWarning,
    MissingExtraError,
    OnlineStoreError,
)
from tauro_workbench.online.base import OnlineRow, WriteResult
from tauro_workbench.online.codec import (
    ORDER_WIDTH,
    ValueCodec,
    encode_entity,
    entity_key_expr,
    event_micros,
    latest_per_entity,
)
from tauro_workbench.online.redis_url import URL_FORM, check_url, redact
from tauro_workbench.progress import progress_enabled
from tauro_workbench.retry import RetryPolicy
from tauro_workbench.schema import FeatureGroupSchema

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("redis", extra="redis") from err

__all__ = ["RedisOnlineStore", "check_url", "redact"]

T = TypeVar("T")


def _upsert_script(*, expiring: bool, checked: bool) -> str:
    """Lua applying one batch: KEYS are entity keys, ARGV the values (then their PXAT times).

    ``GETRANGE`` reads only the stored 36-digit order prefix ('' when absent, which sorts
    first). Both sides of the comparison are equal-length digit strings, so Lua's string order
    (``strcoll``) is the numeric order in any locale; on a tie - equal event and created time -
    the later write wins. A ``checked`` script takes the generation pointer as its first key
    and the generation the keys belong to as its first argument, and returns -1 (writing
    nothing) when the pointer has moved.
    """
    first = 2 if checked else 1
    check = "if (call('GET', KEYS[1]) or '') ~= ARGV[1] then return -1 end" if checked else ""
    write = "call('SET', key, value, 'PXAT', ARGV[i + n])" if expiring else "call('SET', key, value)"
    return f"""
local call, sub, KEYS, ARGV = redis.call, string.sub, KEYS, ARGV
{check}
local n = #KEYS - {first - 1}
local applied = 0
for i = {first}, #KEYS do
  local key, value = KEYS[i], ARGV[i]
  if call('GETRANGE', key, 0, {ORDER_WIDTH - 1}) <= sub(value, 1, {ORDER_WIDTH}) then
    {write}
    applied = applied + 1
  end
end
return applied
"""


_SCRIPTS = {
    (expiring, checked): _upsert_script(expiring=expiring, checked=checked)
    for expiring in (False, True)
    for checked in (False, True)
}
#: Switch the generation pointer (KEYS[1]) to ARGV[1] and clear the pending mark (KEYS[2]);
#: return the old generation, or nil when a later resync took over the pending mark.
_SWITCH = """
local pending = redis.call('GET', KEYS[2])
if pending and pending ~= ARGV[1] then return false end
local old = redis.call('GET', KEYS[1]) or ''
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return old
"""
_IN_FLIGHT = 3
_PREFIX_OK = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# Entity keys start with a type letter (i, s, d) and generations with "g", so these never collide.
_TOKEN_KEY = "_sync"
_GENERATION_KEY = "_gen"
_PENDING_KEY = "_next"
_BOOKKEEPING = tuple(f":{k}".encode() for k in (_TOKEN_KEY, _GENERATION_KEY, _PENDING_KEY))


class _GenerationMoved(Exception):
    """A write batch found the generation pointer moved (a full resync switched it)."""


def _is_transient(err: BaseException) -> bool:
    return isinstance(err, redis.ConnectionError | redis.TimeoutError)


def _oldest(schema: FeatureGroupSchema) -> int | None:
    """Return the oldest live event time (epoch microseconds) under the group's ttl."""
    ttl = schema.ttl
    return None if ttl is None else time.time_ns() // 1000 - int(ttl.total_seconds() * 1_000_000)


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
        check_url(url)
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
                hint=f"Use {URL_FORM}.",
            ) from err
        self.client: redis.Redis = redis.Redis(connection_pool=self._pool)
        self._codecs: dict[int, tuple[FeatureGroupSchema, ValueCodec]] = {}
        # group tag -> the generation this client last saw ("" = the initial generation)
        self._generations: dict[str, str] = {}

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

    def _key(self, schema: FeatureGroupSchema, name: str) -> str:
        return self.group_tag(schema) + name

    def generation(self, schema: FeatureGroupSchema) -> str:
        """Return the generation readers see ('' for the initial one), and remember it."""
        tag = self.group_tag(schema)
        raw = self._call(
            lambda: self.client.get(tag + _GENERATION_KEY), f"read the generation of {schema.name}"
        )
        generation = "" if raw is None else cast(bytes, raw).decode()
        self._generations[tag] = generation
        return generation

    # -- writes ------------------------------------------------------------------------------
    def write(
        self, schema: FeatureGroupSchema, frame: pl.DataFrame, *, progress: bool = False
    ) -> WriteResult:
        """Upsert the latest row per entity of ``frame`` in pipelined, atomic batches.

        Raises:
            OnlineStoreError: If Redis stays unreachable after the retries (batches already
                acknowledged stay written; re-running the write completes it).
        """
        tag = self.group_tag(schema)
        if tag not in self._generations:
            self.generation(schema)
        return self._load(schema, frame, checked=True, progress=progress)

    def replace(
        self, schema: FeatureGroupSchema, frame: pl.DataFrame, *, progress: bool = False
    ) -> WriteResult:
        """Make the group hold exactly the latest row per entity of ``frame``.

        The rows are loaded into a fresh generation while readers keep the current one; the
        generation pointer then switches atomically and the old generation is deleted. A
        generation left behind by an interrupted replace is deleted by the next one.

        Raises:
            OnlineStoreError: If Redis stays unreachable after the retries (readers keep the
                old generation when the switch was not reached; re-running completes it).
        """
        tag = self.group_tag(schema)
        fresh = f"g{uuid.uuid4().hex[:12]}:"
        stale = self._call(lambda: self.client.getset(tag + _PENDING_KEY, fresh), "mark a resync")
        if stale is not None and cast(bytes, stale).decode() != self.generation(schema):
            self._unlink_generation(schema, cast(bytes, stale).decode())
        result = self._load(schema, frame, checked=False, progress=progress, generation=fresh)
        script = self.client.register_script(_SWITCH)
        old = self._call(
            lambda: script(keys=[tag + _GENERATION_KEY, tag + _PENDING_KEY], args=[fresh]),
            f"switch {schema.name} to its new generation",
        )
        if old is None:
            self._unlink_generation(schema, fresh)
            raise OnlineStoreError(
                f"Another full resync of {schema.name!r} started while this one was loading; "
                "it replaces the group instead of this one.",
                hint="Run one full resync of a group at a time.",
            )
        self._generations[tag] = fresh
        old_generation = cast(bytes, old).decode()
        if old_generation != fresh:
            self._unlink_generation(schema, old_generation)
        return result

    def _unlink_generation(self, schema: FeatureGroupSchema, generation: str) -> int:
        """Delete the rows of one generation of the group; return how many were deleted."""
        tag = self.group_tag(schema)
        # the initial generation has no generation part: its keys start with a type letter
        pattern = tag + (generation + "*" if generation else "[isd]*")
        return self._unlink_matching(pattern, f"delete an old generation of {schema.name}")

    def _load(
        self,
        schema: FeatureGroupSchema,
        frame: pl.DataFrame,
        *,
        checked: bool,
        progress: bool,
        generation: str | None = None,
    ) -> WriteResult:
        codec = self._codec(schema)
        latest = latest_per_entity(schema, frame)
        tag = self.group_tag(schema)
        key = entity_key_expr(latest.schema, schema.entity_keys)
        rest = [codec.value_expr(latest), *([codec.expire_at_expr()] if codec.expires else [])]
        script = _SCRIPTS[(codec.expires, checked)]
        total = latest.height

        def encode(start: int) -> list[Any]:
            # Encoded per batch, so Redis runs batch i while Polars encodes batch i+1; the key
            # prefix is read per batch, so a batch re-sent after a generation switch moves too.
            prefix = tag + (generation if generation is not None else self._generations.get(tag, ""))
            columns = [pl.concat_str(pl.lit(prefix), key), *rest]
            part = latest.slice(start, self.batch_size).select(
                e.alias(f"c{i}") for i, e in enumerate(columns)
            )
            args = [v for c in part.iter_columns() for v in c.to_list()]
            if not checked:
                return ["EVAL", script, part.height, *args]
            pointer, expected = tag + _GENERATION_KEY, prefix[len(tag) :]
            return [
                "EVAL",
                script,
                part.height + 1,
                pointer,
                *args[: part.height],
                expected,
                *args[part.height :],
            ]

        starts = list(range(0, total, self.batch_size))
        applied = self._run_batches(starts, encode, schema, progress=progress)
        return WriteResult(entities=total, applied=applied, batches=len(starts))

    def _run_batches(
        self,
        starts: list[int],
        encode: Callable[[int], list[Any]],
        schema: FeatureGroupSchema,
        *,
        progress: bool,
    ) -> int:
        state = {"next": 0, "applied": 0}
        group = schema.name
        bar = None
        if progress and progress_enabled() and len(starts) > 1:  # large, and a client asked for bars
            from tqdm.auto import tqdm

            bar = tqdm(total=len(starts), desc=f"online sync {group}", unit="batch")

        def attempt() -> None:
            # One connection with a few batches in flight. On failure, resume after the last
            # batch the server acknowledged (re-applying one is a no-op, so this is safe).
            conn = self._pool.get_connection()
            in_flight: deque[int] = deque()
            moved = False
            try:
                position = state["next"]
                while position < len(starts) or in_flight:
                    while not moved and position < len(starts) and len(in_flight) < _IN_FLIGHT:
                        conn.send_command(*encode(starts[position]))
                        in_flight.append(position)
                        position += 1
                    done = in_flight.popleft()
                    answer = int(conn.read_response())
                    if answer < 0:
                        moved = True  # drain the batches in flight, then resend from here
                    if moved:
                        if not in_flight:
                            raise _GenerationMoved
                        continue
                    state["applied"] += answer
                    state["next"] = done + 1
                    if bar is not None:
                        bar.update(1)
            except _GenerationMoved:
                raise
            except BaseException:
                conn.disconnect()  # replies may still be pending on it
                raise
            finally:
                self._pool.release(conn)

        try:
            for _ in range(8):  # a full resync switching the generation under this write
                try:
                    self._call(attempt, f"write {len(starts)} batches of {group}")
                    break
                except _GenerationMoved:
                    self.generation(schema)
            else:
                raise OnlineStoreError(
                    f"The generation of {group!r} kept moving while writing to it.",
                    hint="Do not run full resyncs of one group in a loop; re-run the write.",
                )
        finally:
            if bar is not None:
                bar.close()
        return state["applied"]

    # -- reads -------------------------------------------------------------------------------
    def read(
        self, schema: FeatureGroupSchema, entities: Sequence[Sequence[Any]], features: Sequence[str]
    ) -> list[OnlineRow]:
        """Return each entity's live values of ``features`` in one round trip (MGET).

        A value that cannot be decoded reads as null for its entity, with a
        :class:`~tauro_workbench.exceptions.CorruptOnlineValueWarning`.

        Raises:
            OnlineStoreError: If Redis stays unreachable after the retries.
        """
        codec = self._codec(schema)
        oldest = _oldest(schema)
        out: list[OnlineRow] = []
        bad: list[tuple[int, Exception]] = []
        for i, value in enumerate(self._fetch(schema, entities)):
            try:
                if value is None or (oldest is not None and event_micros(value) < oldest):
                    out.append(None)
                else:
                    out.append(codec.decode(value, features))
            except (ValueError, TypeError, OverflowError, IndexError, KeyError) as err:
                bad.append((i, err))
                out.append(None)
        if bad:
            _warn_corrupt(schema, entities, bad)
        return out

    def read_columns(
        self, schema: FeatureGroupSchema, entities: Sequence[Sequence[Any]], features: Sequence[str]
    ) -> list[pl.Series]:
        """Return one typed Series per feature, a value per entity, in one round trip (MGET).

        A value that cannot be decoded reads as null for its entity, with a
        :class:`~tauro_workbench.exceptions.CorruptOnlineValueWarning`.

        Raises:
            OnlineStoreError: If Redis stays unreachable after the retries.
        """
        oldest = _oldest(schema)
        bad: list[tuple[int, Exception]] = []
        raws: list[bytes | None] = []
        for i, value in enumerate(self._fetch(schema, entities)):
            try:
                live = value is not None and (oldest is None or event_micros(value) >= oldest)
            except ValueError as err:
                bad.append((i, err))
                live = False
            raws.append(value if live else None)
        columns = self._codec(schema).decode_columns(
            raws, features, on_bad=lambda i, err: bad.append((i, err))
        )
        if bad:
            _warn_corrupt(schema, entities, bad)
        return columns

    def read_event_times(
        self, schema: FeatureGroupSchema, entities: Sequence[Sequence[Any]]
    ) -> list[int | None]:
        """Return each entity's stored event time in epoch microseconds, one round trip (MGET).

        None for a missing (or expired by Redis) row, a group without event time, or a value that
        cannot be decoded. The ttl is not applied here: a historical read applies it relative to
        each entity row's time.
        """
        out: list[int | None] = []
        for value in self._fetch(schema, entities):
            try:
                out.append(None if value is None or schema.timestamp_key is None else event_micros(value))
            except ValueError:
                out.append(None)
        return out

    def _fetch(self, schema: FeatureGroupSchema, entities: Sequence[Sequence[Any]]) -> list[bytes | None]:
        """MGET the generation pointer and the entities' keys in the generation last seen.

        If the pointer moved (a full resync switched generations), fetch again from the new one.
        """
        if not entities:
            return []
        tag = self.group_tag(schema)
        columns = schema.entity_keys
        names = [encode_entity(e, columns) for e in entities]
        pointer = tag + _GENERATION_KEY
        generation = self._generations.get(tag, "")
        for _ in range(3):
            prefix = tag + generation
            keys = [pointer, *(prefix + n for n in names)]

            def fetch(keys: list[str] = keys) -> Any:
                return self.client.mget(keys)

            # The client runs without decode_responses: values are bytes (or None).
            values = cast("list[bytes | None]", self._call(fetch, f"read {schema.name}"))
            current = "" if values[0] is None else values[0].decode()
            if current == generation:
                break
            generation = self._generations[tag] = current
        return values[1:]

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
        self._generations.pop(self.group_tag(schema), None)
        return self._unlink_matching(self.group_tag(schema) + "*", f"delete {schema.name}")

    def _unlink_matching(self, pattern: str, what: str) -> int:
        """UNLINK the keys matching ``pattern``; return how many were rows (not bookkeeping)."""

        def delete() -> int:
            deleted = 0
            batch: list[bytes] = []
            for key in self.client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                deleted += not key.endswith(_BOOKKEEPING)
                if len(batch) >= 1000:
                    self.client.unlink(*batch)
                    batch = []
            if batch:
                self.client.unlink(*batch)
            return deleted

        return self._call(delete, what)

    def ping(self) -> None:
        """Check that the server answers PING (one attempt, no retries).

        Raises:
            OnlineStoreError: Naming the (redacted) URL and the error.
        """
        try:
            self.client.ping()
        except redis.RedisError as err:
            raise OnlineStoreError(
                f"Redis at {redact(self.url)} does not answer PING: {err}",
                hint="Check that the server is up and that online_store.url points at it.",
            ) from err

    def health_check(self) -> bool:
        """Return True when the server answers PING."""
        try:
            self.ping()
        except OnlineStoreError:
            return False
        return True

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.disconnect()

    def __repr__(self) -> str:
        return f"RedisOnlineStore({redact(self.url)!r}, key_prefix={self.key_prefix!r})"


def _warn_corrupt(
    schema: FeatureGroupSchema, entities: Sequence[Sequence[Any]], bad: list[tuple[int, Exception]]
) -> None:
    first, err = bad[0]
    message = (
        f"{len(bad)} online value(s) of {schema.name!r} v{schema.version} could not be decoded and "
        f"read as null, e.g. entity {tuple(entities[first])!r}: {type(err).__name__}: {err}. "
        f"Resync the group: materialize_online({schema.name!r}, full=True)."
    )
    logger.warning(message)
    warnings.warn(message, CorruptOnlineValueWarning, stacklevel=4)
