"""The event bus: Docker's event JSON, filters, replay of history with since/until."""

import asyncio
import time

import pytest

from hull.daemon.events import EventBus, EventFilter

pytestmark = pytest.mark.unit


def test_event_json_has_the_legacy_and_new_fields() -> None:
    bus = EventBus()
    ev = bus.publish("container", "start", "c" * 64, {"image": "busybox", "name": "web"})
    j = ev.to_json()
    assert (j["status"], j["id"], j["from"]) == ("start", "c" * 64, "busybox")
    assert j["Type"] == "container" and j["Action"] == "start" and j["scope"] == "local"
    assert j["Actor"] == {"ID": "c" * 64, "Attributes": {"image": "busybox", "name": "web"}}
    assert j["time"] == j["timeNano"] // 10**9
    assert "status" not in bus.publish("network", "create", "n1").to_json()


@pytest.mark.parametrize(
    ("filters", "matches"),
    [
        ({"type": ["container"]}, True),
        ({"type": ["image"]}, False),
        ({"event": ["die"]}, True),
        ({"event": ["start"]}, False),
        ({"container": ["web"]}, True),
        ({"container": ["cccc"]}, True),
        ({"container": ["other"]}, False),
        ({"image": ["busybox"]}, True),
        ({"label": ["tier"]}, True),
        ({"label": ["tier=back"]}, False),
        ({"label": ["tier=front"], "event": ["die"]}, True),
    ],
)
def test_filters(filters: dict[str, list[str]], matches: bool) -> None:
    ev = EventBus().publish("container", "die", "c" * 64, {"image": "busybox", "name": "web", "tier": "front"})
    assert EventFilter(filters).matches(ev) is matches


def test_since_replays_history_then_streams_until() -> None:
    async def scenario() -> list[str]:
        bus = EventBus()
        bus.publish("container", "create", "a")
        since = time.time()
        bus.publish("container", "start", "a")
        got: list[str] = []

        async def consume() -> None:
            async for ev in bus.stream(since, time.time() + 0.3, EventFilter({})):
                got.append(ev.action)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        bus.publish("container", "die", "a")
        await task  # ends by itself at `until`
        return got

    assert asyncio.run(scenario()) == ["start", "die"]
