"""Bad input to hull-runtime: a clear error naming the problem, exit 1, nothing changed."""

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from rt import Runtime, configure

pytestmark = pytest.mark.container


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    r = Runtime(tmp_path / "hull-state")
    yield r
    r.cleanup()


def _fails(rt: Runtime, *args: str, message: str) -> None:
    done = rt(*args, check=False)
    assert done.returncode == 1, done
    assert message in done.stderr, done.stderr
    # Nothing recorded for a container that failed to be created.
    assert not rt.root.exists() or not any(rt.root.iterdir())


def _cgroups_named(fragment: str) -> list[str]:
    found = []
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(top, d) for d in dirs if fragment in d]
        if top.count("/") > 5:
            dirs[:] = []
    return found


def test_missing_config(rt: Runtime, bundle: Path) -> None:
    (bundle / "config.json").unlink()
    _fails(rt, "create", "--bundle", str(bundle), rt.new_id(), message="config.json not found")


def test_malformed_config(rt: Runtime, bundle: Path) -> None:
    (bundle / "config.json").write_text('{"ociVersion": "1.2.0", "root": ')
    _fails(rt, "create", "--bundle", str(bundle), rt.new_id(), message="config.json: invalid JSON")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["process"].__setitem__("args", "sh"), "process.args: expected a list"),
        (lambda c: c["process"].__setitem__("args", []), "process.args: must name the program"),
        (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "unknown namespace type 'bogus'"),
        (lambda c: c["process"]["user"].__setitem__("uid", "root"), "process.user.uid: expected an integer"),
        (lambda c: c["process"].__setitem__("rlimits", [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]),
         "unknown rlimit 'RLIMIT_FOO'"),
        (lambda c: c["root"].__setitem__("path", "no-such-rootfs"), "no-such-rootfs\\\") does not exist"),
        (lambda c: c["mounts"].append({"destination": "relative", "type": "tmpfs"}), "is not an absolute path"),
    ],
)  # fmt: skip
def test_invalid_fields(rt: Runtime, bundle: Path, edit: object, message: str) -> None:
    cfg = configure(bundle, ["true"])
    edit(cfg)  # type: ignore[operator]
    (bundle / "config.json").write_text(json.dumps(cfg))
    _fails(rt, "create", "--bundle", str(bundle), rt.new_id(), message=message)
    assert not _cgroups_named(cfg["linux"]["cgroupsPath"].strip("/"))


def test_missing_program_fails_create_and_cleans_up(rt: Runtime, bundle: Path) -> None:
    cfg = configure(bundle, ["no-such-program"])
    _fails(rt, "run", "--bundle", str(bundle), rt.new_id(),
           message='exec: \\"no-such-program\\": executable file not found in $PATH')  # fmt: skip
    assert not _cgroups_named(cfg["linux"]["cgroupsPath"].strip("/"))


def test_id_in_use(rt: Runtime, bundle: Path) -> None:
    configure(bundle, ["sleep", "30"])
    cid = rt.create_detached(bundle)
    before = rt.state(cid)
    done = rt("create", "--bundle", str(bundle), cid, check=False)
    assert done.returncode == 1
    assert "container with given ID already exists" in done.stderr
    assert rt.state(cid) == before


def test_bad_ids(rt: Runtime, bundle: Path) -> None:
    configure(bundle, ["true"])
    _fails(rt, "create", "--bundle", str(bundle), "../escape", message="invalid container id format")


@pytest.mark.parametrize("command", ["state", "start", "kill", "delete", "pause", "resume", "ps", "events"])
def test_unknown_id(rt: Runtime, command: str) -> None:
    done = rt(command, "no-such-container", check=False)
    assert done.returncode == 1
    assert "container does not exist" in done.stderr


def test_delete_force_of_unknown_id_is_quiet(rt: Runtime) -> None:
    assert rt("delete", "--force", "no-such-container").returncode == 0


def test_log_file_in_json(rt: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    done = rt("--log", str(log), "--log-format", "json", "state", "nope", check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == "container does not exist"
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and entry["msg"] == "container does not exist"
