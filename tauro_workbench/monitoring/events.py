"""The event bus: typed events, persisted in the registry, delivered to subscribers in order.

Subscribers are plain callables (an MLOps hook point). A subscriber that raises is logged and
isolated: it never breaks the write or read that published the event, nor other subscribers.

Example:
    >>> from tauro_workbench.registry import FeatureStoreMetadata
    >>> bus = EventBus(FeatureStoreMetadata())
    >>> seen = []
    >>> _ = bus.subscribe(seen.append, kinds=["features_written"])
    >>> _ = bus.publish(FeaturesWritten(group="g", version=1, rows=3, mode="append"))
    >>> [e.kind for e in seen]
    ['features_written']
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from loguru import logger

from tauro_workbench.exceptions import MetadataError
from tauro_workbench.registry import EventRecord, FeatureStoreMetadata

__all__ = [
    "DriftDetected",
    "Event",
    "EventBus",
    "FeaturesWritten",
    "GroupRegistered",
    "Promoted",
    "RouteChanged",
    "Subscription",
    "SyncFailed",
]


@dataclass(frozen=True)
class Event:
    """Base of every event. ``kind`` names the event type; ``id`` is set once persisted."""

    kind: ClassVar[str] = "event"
    group: str | None = None
    id: int | None = field(default=None, compare=False)

    def payload(self) -> dict[str, Any]:
        """Return the event's fields (without ``group`` and ``id``) as JSON-ready data."""
        data = asdict(self)
        data.pop("group", None)
        data.pop("id", None)
        return data


@dataclass(frozen=True)
class GroupRegistered(Event):
    """A feature group (version) was registered."""

    kind: ClassVar[str] = "group_registered"
    version: int = 1


@dataclass(frozen=True)
class FeaturesWritten(Event):
    """Features were written to the offline store."""

    kind: ClassVar[str] = "features_written"
    version: int = 1
    rows: int = 0
    mode: str = "append"
    table_version: int | None = None
    write_id: int | None = None


@dataclass(frozen=True)
class DriftDetected(Event):
    """A write drifted from its reference (``severity`` is ``warning`` or ``drift``)."""

    kind: ClassVar[str] = "drift_detected"
    version: int = 1
    severity: str = "drift"
    features: tuple[str, ...] = ()
    blocked: bool = False
    write_id: int | None = None
    max_psi: float | None = None
    reference: str = ""


@dataclass(frozen=True)
class Promoted(Event):
    """A group was promoted to the materialized or the online store."""

    kind: ClassVar[str] = "promoted"
    target: str = "materialized"
    rows: int = 0


@dataclass(frozen=True)
class RouteChanged(Event):
    """The hybrid router changed where a group is read from."""

    kind: ClassVar[str] = "route_changed"
    previous: str | None = None
    route: str = ""
    reason: str = ""


@dataclass(frozen=True)
class SyncFailed(Event):
    """Pushing features to the online store failed."""

    kind: ClassVar[str] = "sync_failed"
    error: str = ""
    rows_synced: int = 0


_EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (GroupRegistered, FeaturesWritten, DriftDetected, Promoted, RouteChanged, SyncFailed)
}

Subscriber = Callable[[Event], Any]


@dataclass
class Subscription:
    """A registered subscriber; call :meth:`cancel` to stop receiving events."""

    callback: Subscriber
    kinds: frozenset[str] | None
    bus: EventBus

    def cancel(self) -> None:
        """Stop delivering events to this subscriber."""
        self.bus._remove(self)


class EventBus:
    """In-process publish/subscribe with events persisted in the registry's events table.

    Delivery is synchronous and ordered: every subscriber sees events in the order of their
    ids, also when a subscriber publishes an event itself (that event is queued and delivered
    after the current one has reached every subscriber) and when several threads publish.

    Args:
        metadata: The registry whose events table persists the events.
        persist: False keeps events in process only (they get no id).
    """

    def __init__(self, metadata: FeatureStoreMetadata, *, persist: bool = True) -> None:
        self.metadata = metadata
        self.persist = persist
        self._subscriptions: list[Subscription] = []
        self._lock = threading.RLock()
        self._pending: deque[Event] = deque()
        self._delivering = False

    def subscribe(self, callback: Subscriber, *, kinds: Iterable[str] | None = None) -> Subscription:
        """Call ``callback(event)`` for every published event (of ``kinds``, when given).

        Example:
            >>> bus = EventBus(FeatureStoreMetadata())
            >>> sub = bus.subscribe(print, kinds=["drift_detected"])
            >>> sub.cancel()
        """
        sub = Subscription(callback, None if kinds is None else frozenset(kinds), self)
        with self._lock:
            self._subscriptions.append(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscriptions:
                self._subscriptions.remove(sub)

    @property
    def subscriptions(self) -> list[Subscription]:
        """The active subscriptions, in subscription order."""
        with self._lock:
            return list(self._subscriptions)

    def publish(self, event: Event) -> Event:
        """Persist ``event`` and deliver it to the subscribers, in order; return it with its id.

        A subscriber that raises is logged (ERROR, with the traceback) and skipped; the others
        still receive the event and the publisher never sees the error. If the registry cannot
        persist the event, a WARNING is logged and the event is still delivered (without id).

        Example:
            >>> bus = EventBus(FeatureStoreMetadata())
            >>> bus.publish(Promoted(group="g", target="online", rows=10)).id
            1
        """
        with self._lock:
            if self.persist:
                try:
                    record = self.metadata.record_event(event.kind, event.payload(), group=event.group)
                except MetadataError as err:
                    logger.warning("could not persist event {} of {}: {}", event.kind, event.group, err)
                else:
                    event = _with_id(event, record.id)
            self._pending.append(event)
            if self._delivering:  # published from a subscriber: the outer loop delivers it next
                return event
            self._delivering = True
            try:
                while self._pending:
                    self._deliver(self._pending.popleft())
            finally:
                self._delivering = False
        return event

    def _deliver(self, event: Event) -> None:
        for sub in list(self._subscriptions):
            if sub.kinds is not None and event.kind not in sub.kinds:
                continue
            try:
                sub.callback(event)
            except Exception as err:  # a subscriber must never break the caller
                logger.opt(exception=err).error(
                    "event subscriber {!r} failed on {} #{} (isolated): {}",
                    sub.callback,
                    event.kind,
                    event.id,
                    err,
                )

    def history(
        self,
        *,
        kind: str | None = None,
        group: str | None = None,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[Event]:
        """Return persisted events as typed objects, oldest first.

        Args:
            kind: Only events of this kind (e.g. ``"drift_detected"``).
            group: Only events of this feature group.
            after_id: Only events with a greater id (to resume where a reader stopped).
            limit: At most this many events.
        """
        records = self.metadata.list_events(kind=kind, group=group, after_id=after_id, limit=limit)
        return [event_from_record(r) for r in records]


def _with_id(event: Event, event_id: int) -> Event:
    object.__setattr__(event, "id", event_id)
    return event


def event_from_record(record: EventRecord) -> Event:
    """Rebuild a typed event from its registry record (unknown kinds become :class:`Event`)."""
    cls = _EVENT_TYPES.get(record.kind, Event)
    fields = {k: (tuple(v) if isinstance(v, list) else v) for k, v in record.payload.items()}
    try:
        return cls(group=record.group, id=record.id, **fields)
    except TypeError:
        return Event(group=record.group, id=record.id)
