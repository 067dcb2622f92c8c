"""The event bus: what `/events` streams (container, image, … actions as Docker reports them).

Every service publishes through `EventBus.publish`; subscribers get their own queue. A bounded
history lets `/events?since=` replay what happened before the client connected, as Docker's
events service does (it keeps the last 256).
"""

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

HISTORY = 256
# Types whose events also carry the pre-1.22 fields (status, id, from), as Docker still sends.
LEGACY_TYPES = ("container", "image")


@dataclass(frozen=True)
class Event:
    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    time_nano: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.type in LEGACY_TYPES:
            out["status"] = self.action
            out["id"] = self.actor_id
            if "image" in self.attributes and self.type == "container":
                out["from"] = self.attributes["image"]
        out.update(
            {
                "Type": self.type,
                "Action": self.action,
                "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
                "scope": "local",
                "time": self.time_nano // 1_000_000_000,
                "timeNano": self.time_nano,
            }
        )
        return out


class EventFilter:
    """Docker's event filters: type, event (action), container, image, label (key or key=value)."""

    def __init__(self, filters: Mapping[str, list[str]]) -> None:
        self.filters = {k: list(v) for k, v in filters.items() if v}

    def matches(self, ev: Event) -> bool:
        f = self.filters
        if "type" in f and ev.type not in f["type"]:
            return False
        if "event" in f and not any(ev.action == a or ev.action.split(":")[0] == a for a in f["event"]):
            return False
        if "container" in f and (ev.type != "container" or not any(_actor_matches(ev, c) for c in f["container"])):
            return False
        if "image" in f:
            image = ev.attributes.get("image", ev.actor_id if ev.type == "image" else "")
            names = {image, ev.attributes.get("name", "") if ev.type == "image" else ""}
            if not any(x in names or (x and ev.actor_id.startswith(x)) for x in f["image"]):
                return False
        if "label" in f:
            for want in f["label"]:
                key, eq, value = want.partition("=")
                if key not in ev.attributes or (eq and ev.attributes[key] != value):
                    return False
        return True


def _actor_matches(ev: Event, wanted: str) -> bool:
    return ev.actor_id.startswith(wanted) or ev.attributes.get("name") == wanted


class EventBus:
    def __init__(self) -> None:
        self._history: deque[Event] = deque(maxlen=HISTORY)
        self._subscribers: set[asyncio.Queue[Event]] = set()

    def publish(self, type: str, action: str, actor_id: str, attributes: Mapping[str, str] | None = None) -> Event:
        ev = Event(type, action, actor_id, dict(attributes or {}), time.time_ns())
        self._history.append(ev)
        for q in self._subscribers:
            q.put_nowait(ev)
        return ev

    async def stream(self, since: float | None, until: float | None, filt: EventFilter) -> AsyncIterator[Event]:
        """Past events from `since`, then live ones until `until` (unix seconds); without
        `until` it runs until the consumer stops iterating."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            until_ns = int(until * 1e9) if until is not None else None
            # No await between subscribing and this snapshot: each event is either replayed or queued.
            if since is not None:
                since_ns = int(since * 1e9)
                for ev in list(self._history):
                    if ev.time_nano >= since_ns and (until_ns is None or ev.time_nano <= until_ns) and filt.matches(ev):
                        yield ev
            while True:
                timeout = None if until_ns is None else max(0.0, (until_ns - time.time_ns()) / 1e9)
                if timeout == 0.0:
                    return
                try:
                    ev = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    return
                if until_ns is not None and ev.time_nano > until_ns:
                    return
                if filt.matches(ev):
                    yield ev
        finally:
            self._subscribers.discard(queue)
