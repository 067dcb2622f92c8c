"""hulld's configuration: flags over a daemon.json-style file over defaults, with dockerd's errors."""

import json
from pathlib import Path

import pytest

from hull.daemon import config as cfg
from hull.errors import InvalidArgument

pytestmark = pytest.mark.unit

NO_FLAGS = {
    "data_root": None, "exec_root": None, "hosts": None, "storage_driver": None, "default_runtime": None,
    "pidfile": None, "log_level": None, "cgroup_parent": None, "insecure_registries": None,
}  # fmt: skip


def _file(tmp_path: Path, data: object) -> str:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_defaults_when_the_default_file_is_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cfg, "DEFAULT_CONFIG_FILE", str(tmp_path / "absent.json"))
    c = cfg.build(NO_FLAGS, None)
    assert (c.data_root, c.exec_root, c.hosts) == ("/var/lib/hull", "/run/hull", ["unix:///run/hull/hull.sock"])
    assert c.pidfile_path == "/run/hull/hulld.pid"
    assert c.runtime_path(c.default_runtime) == ""  # the built-in runtime


def test_file_then_flags(tmp_path: Path) -> None:
    path = _file(tmp_path, {"data-root": "/srv/hull", "runtimes": {"crun": {"path": "/usr/bin/crun"}}})
    c = cfg.build({**NO_FLAGS, "log_level": "debug"}, path)
    assert (c.data_root, c.log_level) == ("/srv/hull", "debug")
    assert c.runtime_path("crun") == "/usr/bin/crun"
    assert c.runtime_path("runc") == "runc"
    with pytest.raises(InvalidArgument, match="unknown or invalid runtime name: nosuch"):
        c.runtime_path("nosuch")


@pytest.mark.parametrize(
    ("data", "flags", "message"),
    [
        ({"data-root": "/a"}, {"data_root": "/b"}, "specified both as a flag and in the configuration file: data-root"),
        ({"nosuch": 1}, {}, "don't match any configuration option: nosuch"),
        ([1, 2], {}, "not a JSON object"),
        ({"runtimes": {"x": "/bin/x"}}, {}, "runtimes must map names"),
        ({"log-level": "loud"}, {}, "unable to parse logging level: loud"),
        ({"hosts": ["tcp://0.0.0.0:2375"]}, {}, "unix:// sockets only"),
    ],
)
def test_bad_configuration(tmp_path: Path, data: object, flags: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        cfg.build({**NO_FLAGS, **flags}, _file(tmp_path, data))


def test_a_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="no such file or directory"):
        cfg.build(NO_FLAGS, str(tmp_path / "missing.json"))


def test_malformed_json(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text("{not json")
    with pytest.raises(InvalidArgument, match="unable to configure the daemon with file"):
        cfg.build(NO_FLAGS, str(path))


def test_insecure_registries(tmp_path: Path) -> None:
    c = cfg.build({**NO_FLAGS, "insecure_registries": ["reg.example:5000", "10.1.0.0/16"]}, _file(tmp_path, {}))
    assert c.is_insecure("reg.example:5000")
    assert c.is_insecure("10.1.2.3:5000")
    assert not c.is_insecure("reg.example:6000") and not c.is_insecure("10.2.0.1:5000")


def test_plain_http_only_for_insecure_or_loopback_registries() -> None:
    import asyncio

    import aiohttp

    from hull.distribution.registry import Registry

    async def schemes() -> list[list[str]]:
        async with aiohttp.ClientSession() as s:
            return [
                Registry("reg.example:5000", s)._schemes(),
                Registry("reg.example:5000", s, insecure=True)._schemes(),
                Registry("127.0.0.1:5000", s)._schemes(),
                Registry("localhost:5000", s)._schemes(),
            ]

    assert asyncio.run(schemes()) == [["https"], ["https", "http"], ["https", "http"], ["https", "http"]]
