"""Restart policies: whether a container whose process exited comes back, and after how long.

This is Docker's restart manager (moby/restartmanager): HostConfig.RestartPolicy is `no`,
`always`, `unless-stopped` or `on-failure` (with MaximumRetryCount, 0 meaning no limit). Each
decision to restart doubles the back-off (100 ms first, at most 1 minute); a run of 10 s or
more resets it. `docker stop` and `docker kill` cancel the policy until the user starts the
container again (Docker's ExitOnNext), which makes a new RestartManager. The manager here
only decides; ContainerManager waits and starts.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hull.errors import InvalidArgument

BACKOFF_FIRST = 0.1  # seconds
BACKOFF_MULTIPLIER = 2
BACKOFF_MAX = 60.0
# A run at least this long (seconds) counts as healthy: the back-off starts again from the first step.
RESET_AFTER = 10.0

POLICY_NAMES = ("no", "always", "unless-stopped", "on-failure")


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"
    maximum_retry_count: int = 0

    @classmethod
    def from_host_config(cls, hc: Mapping[str, Any]) -> "RestartPolicy":
        """HostConfig.RestartPolicy, checked with Docker's messages (InvalidArgument, a 400)."""
        raw = hc.get("RestartPolicy") or {}
        if not isinstance(raw, Mapping):
            raise InvalidArgument("invalid RestartPolicy: must be a JSON object")
        name = raw.get("Name") or "no"
        count = raw.get("MaximumRetryCount") or 0
        if name not in POLICY_NAMES:
            raise InvalidArgument(f"invalid restart policy '{name}'")
        if not isinstance(count, int) or isinstance(count, bool):
            raise InvalidArgument(f"invalid MaximumRetryCount: {count!r}")
        if count < 0:
            raise InvalidArgument("maximum retry count cannot be negative")
        if count and name != "on-failure":
            raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
        return cls(name, count)

    @property
    def is_none(self) -> bool:
        return self.name == "no"


@dataclass
class RestartManager:
    """The restart state of one container between user starts."""

    policy: RestartPolicy
    restart_count: int = 0  # restarts so far (Docker seeds it with the container's RestartCount)
    timeout: float = 0.0  # the current back-off; 0 before the first restart
    canceled: bool = False

    def should_restart(self, exit_code: int, manually_stopped: bool, ran_for: float) -> float | None:
        """After an exit: the delay before the restart, or None for no restart. A yes counts it."""
        if self.policy.is_none or self.canceled:
            return None
        if ran_for >= RESET_AFTER:
            self.timeout = 0.0
        if self.timeout == 0.0:
            self.timeout = BACKOFF_FIRST
        elif self.timeout < BACKOFF_MAX:
            self.timeout = min(self.timeout * BACKOFF_MULTIPLIER, BACKOFF_MAX)
        name, limit = self.policy.name, self.policy.maximum_retry_count
        if name == "always":
            restart = True
        elif name == "unless-stopped":
            restart = not manually_stopped
        else:  # on-failure
            restart = exit_code != 0 and (limit == 0 or self.restart_count < limit)
        if not restart:
            return None
        self.restart_count += 1
        return self.timeout

    def cancel(self) -> None:
        """A user's stop or kill: no more restarts until the user starts the container again."""
        self.canceled = True


def run_seconds(started_at: str, finished_at: str) -> float:
    """How long a run lasted, from Docker's RFC 3339 timestamps (nanoseconds cut to microseconds)."""
    try:
        return (_parse_time(finished_at) - _parse_time(started_at)).total_seconds()
    except ValueError:
        return 0.0


def _parse_time(text: str) -> datetime:
    main, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{main}.{(frac + '000000')[:6]}+00:00")
