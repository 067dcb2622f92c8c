"""Health checks: a monitor per running container with a HEALTHCHECK, and State.Health.

The check is Config.Healthcheck (the image's, merged with the container's at create):
Test is ["CMD", prog, args...], ["CMD-SHELL", "command"] (run by the container's shell, or
/bin/sh -c) or ["NONE"] (no check); Interval, Timeout and StartPeriod are nanoseconds, 0
meaning Docker's defaults (30s, 30s, 0), and Retries 0 meaning 3. As dockerd does: the first
check runs one interval after the start, as an exec (events exec_create/exec_start/exec_die
included) with the container's user and working directory; exit 0 is healthy, anything else
a failure, and a check that outlives the timeout is killed and counts as one (exit code -1).
Failures during the start period do not count while the status is still `starting`; once
`Retries` failures in a row count, the status is `unhealthy`. State.Health keeps the status,
the failing streak and the last five results; each change of status is published as
`health_status: <status>`.
"""

import asyncio
import logging
import signal
import time
from typing import TYPE_CHECKING, Any

from hull.containers.record import Container
from hull.errors import HullError, InvalidArgument

if TYPE_CHECKING:
    from hull.containers.manager import ContainerManager

log = logging.getLogger("hulld.health")

DEFAULT_INTERVAL = 30_000_000_000
DEFAULT_TIMEOUT = 30_000_000_000
DEFAULT_RETRIES = 3
MIN_DURATION = 1_000_000  # 1ms: dockerd's lower bound for the durations
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096  # bytes of a check's output that are kept, as Docker's limitedBuffer
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
DEFAULT_SHELL = ["/bin/sh", "-c"]


def probe_command(config: dict[str, Any]) -> list[str] | None:
    """The argv a container's health check runs; None when it has none."""
    test = (config.get("Healthcheck") or {}).get("Test") or []
    if not test or test[0] == "NONE" or len(test) < 2:
        return None
    if test[0] == "CMD-SHELL":
        return [*(config.get("Shell") or DEFAULT_SHELL), *test[1:]]
    return list(test[1:])


def check_config(config: dict[str, Any]) -> None:
    """Refuse at create what dockerd refuses in a container's Healthcheck."""
    hc = config.get("Healthcheck")
    if not hc:
        return
    if not isinstance(hc, dict):
        raise InvalidArgument("Healthcheck must be a JSON object")
    test = hc.get("Test")
    if test is not None and (not isinstance(test, list) or not all(isinstance(t, str) for t in test)):
        raise InvalidArgument("Healthcheck.Test must be a list of strings")
    for key in ("Interval", "Timeout", "StartPeriod", "Retries"):
        value = hc.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidArgument(f"Healthcheck.{key} must be an integer")
    for key in ("Interval", "Timeout", "StartPeriod"):
        if hc.get(key) and hc[key] < MIN_DURATION:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
    if hc.get("Retries", 0) < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")


def status_suffix(health: dict[str, Any] | None) -> str:
    """What `docker ps` adds to "Up 3 seconds": " (healthy)", " (health: starting)"."""
    if not health:
        return ""
    status = health.get("Status")
    return f" (health: {status})" if status == STARTING else f" ({status})"


def go_duration(ns: int) -> str:
    """Go's time.Duration String for whole units as health checks use them: 30s, 1m30s, 500ms."""
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size or unit == "ns":
                return f"{ns / size:.9f}".rstrip("0").rstrip(".") + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = f"{rest / 1e9:.9f}".rstrip("0").rstrip(".") + "s"
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + seconds


class HealthMonitors:
    def __init__(self, manager: "ContainerManager") -> None:
        self.manager = manager
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, c: Container) -> None:
        """At the start of `c` (or when a restarted daemon finds it running)."""
        argv = probe_command(c.config)
        if argv is None or c.id in self._tasks:
            return
        log_entries = (c.state.health or {}).get("Log") or []  # kept from the last run, as dockerd keeps it
        c.state.health = {"Status": STARTING, "FailingStreak": 0, "Log": log_entries}
        task = asyncio.create_task(self._run(c, argv))
        self._tasks[c.id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(c.id, None))

    def stop(self, cid: str) -> None:
        task = self._tasks.pop(cid, None)
        if task is not None:
            task.cancel()

    async def shutdown(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, c: Container, argv: list[str]) -> None:
        hc = c.config.get("Healthcheck") or {}
        interval = (hc.get("Interval") or DEFAULT_INTERVAL) / 1e9
        timeout_ns = hc.get("Timeout") or DEFAULT_TIMEOUT
        start_period = (hc.get("StartPeriod") or 0) / 1e9
        retries = hc.get("Retries") or DEFAULT_RETRIES
        from hull.containers.manager import rfc3339_now  # here: manager imports this module

        started = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            if not c.state.running:
                return
            begin = rfc3339_now()
            in_start_period = time.monotonic() - started < start_period
            code, output = await self._probe(c, argv, timeout_ns)
            self._record(c, {"Start": begin, "End": rfc3339_now(), "ExitCode": code, "Output": output},
                         retries, in_start_period)  # fmt: skip

    async def _probe(self, c: Container, argv: list[str], timeout_ns: int) -> tuple[int, str]:
        execs = self.manager.execs
        body = {"Cmd": argv, "AttachStdout": True, "AttachStderr": True, "User": c.config.get("User") or ""}
        try:
            rec = execs.create(c, body)
        except HullError as e:
            return -1, e.message
        try:
            stream = await execs.start(rec, None, attach=True)
        except HullError as e:
            execs.remove(rec)
            return -1, e.message
        assert stream is not None
        reader, writer = stream
        output = bytearray()

        async def collect() -> None:
            while True:
                try:
                    header = await reader.readexactly(8)
                    payload = await reader.readexactly(int.from_bytes(header[4:], "big"))
                except asyncio.IncompleteReadError:
                    break
                output.extend(payload[: MAX_OUTPUT - len(output)])
            await rec.exited.wait()

        try:
            await asyncio.wait_for(collect(), timeout_ns / 1e9)
        except TimeoutError:
            if rec.shim is not None:
                try:
                    await rec.shim.kill(signal.SIGKILL)
                except HullError:
                    pass  # it ended just now
            await rec.exited.wait()
            return -1, f"Health check exceeded timeout ({go_duration(timeout_ns)})"
        finally:
            writer.close()
            execs.remove(rec)
        return rec.exit_code if rec.exit_code is not None else -1, output.decode(errors="replace")

    def _record(self, c: Container, result: dict[str, Any], retries: int, in_start_period: bool) -> None:
        health = c.state.health
        if health is None or not c.state.running:  # the container ended during the check
            return
        old = health["Status"]
        if result["ExitCode"] == 0:
            health["FailingStreak"] = 0
            health["Status"] = HEALTHY
        elif not (old == STARTING and in_start_period):
            health["FailingStreak"] += 1
            if health["FailingStreak"] >= retries:
                health["Status"] = UNHEALTHY
        health["Log"] = [*health["Log"], result][-MAX_LOG_ENTRIES:]
        if health["Status"] != old:
            self.manager.publish_event(c, f"health_status: {health['Status']}")
