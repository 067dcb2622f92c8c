"""The restart manager's decisions and back-off, against Docker's restartmanager rules."""

import pytest

from hull.containers.restart import BACKOFF_MAX, RestartManager, RestartPolicy, run_seconds
from hull.errors import InvalidArgument


def test_backoff_doubles_from_100ms_to_a_minute_and_resets_after_a_long_run() -> None:
    rm = RestartManager(RestartPolicy("always"))
    delays = [rm.should_restart(0, False, 0.5) for _ in range(12)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == BACKOFF_MAX and max(d or 0 for d in delays) == BACKOFF_MAX
    assert rm.restart_count == 12
    assert rm.should_restart(0, False, 10.0) == 0.1  # ran ≥ 10 s: start over


def test_on_failure_counts_and_ignores_success() -> None:
    rm = RestartManager(RestartPolicy("on-failure", 2))
    assert rm.should_restart(0, False, 0) is None
    assert rm.should_restart(1, False, 0) is not None
    assert rm.should_restart(1, False, 0) is not None
    assert rm.should_restart(1, False, 0) is None
    assert rm.restart_count == 2
    assert RestartManager(RestartPolicy("on-failure"), restart_count=50).should_restart(3, False, 0) is not None


def test_manual_stop_and_cancel() -> None:
    assert RestartManager(RestartPolicy("unless-stopped")).should_restart(0, True, 0) is None
    assert RestartManager(RestartPolicy("always")).should_restart(0, True, 0) is not None
    assert RestartManager(RestartPolicy("no")).should_restart(1, False, 0) is None
    rm = RestartManager(RestartPolicy("always"))
    rm.cancel()
    assert rm.should_restart(1, False, 0) is None


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"Name": "sometimes"}, "invalid restart policy 'sometimes'"),
        ({"Name": "always", "MaximumRetryCount": 3}, "maximum retry count cannot be used with restart policy 'always'"),
        ({"Name": "on-failure", "MaximumRetryCount": -1}, "maximum retry count cannot be negative"),
        ("always", "invalid RestartPolicy"),
    ],
)
def test_bad_policies_are_refused(policy: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        RestartPolicy.from_host_config({"RestartPolicy": policy})


def test_run_seconds() -> None:
    assert run_seconds("2024-01-01T00:00:00.5Z", "2024-01-01T00:00:10.750000001Z") == pytest.approx(10.25)
    assert run_seconds("0001-01-01T00:00:00Z", "garbage") == 0.0
