"""Registries that want a password (htpasswd, basic auth): docker login and hull login against
hulld, credentials in config.json, X-Registry-Auth on pull and push."""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.testing.hulld import HullDaemon
from hull.testing.registry import LocalRegistry

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def locked_registry() -> Iterator[LocalRegistry]:
    entry = subprocess.run(["htpasswd", "-nbB", "alice", "s3cret"], capture_output=True, text=True, check=True).stdout
    r = LocalRegistry(htpasswd=entry)
    try:
        yield r
    finally:
        r.stop()


def _run(
    hulld: HullDaemon, config_dir: Path, *argv: str, input: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    program = argv[0] if argv[0] == "docker" else str(Path(sys.executable).parent / argv[0])
    return subprocess.run([program, *argv[1:]], input=input.decode() if input else None, capture_output=True, text=True,
                          env={**hulld.env, "DOCKER_CONFIG": str(config_dir)}, timeout=60, check=False)  # fmt: skip


@pytest.mark.parametrize("client", ["docker", "hull"])
def test_login_push_pull_logout(hulld: HullDaemon, locked_registry: LocalRegistry, tmp_path: Path, client: str) -> None:
    reg = locked_registry.domain
    name = f"{reg}/private/bb:{client}"
    hulld.cli("docker", "tag", "busybox", name)
    anonymous = _run(hulld, tmp_path, client, "push", name)
    assert anonymous.returncode != 0
    wrong = _run(hulld, tmp_path, client, "login", "-u", "alice", "-p", "wrong", reg)
    assert wrong.returncode != 0 and "unauthorized" in wrong.stderr
    assert not (tmp_path / "config.json").exists() or reg not in (tmp_path / "config.json").read_text()
    ok = _run(hulld, tmp_path, client, "login", "-u", "alice", "--password-stdin", reg, input=b"s3cret\n")
    assert ok.returncode == 0, ok.stderr
    assert "Login Succeeded" in ok.stdout
    auths = json.loads((tmp_path / "config.json").read_text())["auths"]
    assert reg in auths
    pushed = _run(hulld, tmp_path, client, "push", name)
    assert pushed.returncode == 0, pushed.stderr
    hulld.cli("docker", "rmi", name)
    pulled = _run(hulld, tmp_path, client, "pull", name)
    assert pulled.returncode == 0, pulled.stderr
    out = _run(hulld, tmp_path, client, "logout", reg)
    assert out.returncode == 0 and f"Removing login credentials for {reg}" in out.stdout
    hulld.cli("docker", "rmi", name)
    assert _run(hulld, tmp_path, client, "pull", name).returncode != 0


@pytest.fixture(scope="module")
def token_registry() -> Iterator[LocalRegistry]:
    r = LocalRegistry(token_users={"bob": "t0ken-pass"})
    try:
        yield r
    finally:
        r.stop()


@pytest.mark.parametrize("client", ["docker", "hull"])
def test_bearer_token_auth(hulld: HullDaemon, token_registry: LocalRegistry, tmp_path: Path, client: str) -> None:
    """The registry's 401 names a token realm: hulld trades the user's credentials there for a token
    scoped to the repository (pull, or pull and push), as dockerd does."""
    reg, token = token_registry.domain, token_registry.token
    assert token is not None
    name = f"{reg}/tokened/bb:{client}"
    hulld.cli("docker", "tag", "busybox", name)
    assert _run(hulld, tmp_path, client, "push", name).returncode != 0  # the token server wants a user
    wrong = _run(hulld, tmp_path, client, "login", "-u", "bob", "-p", "wrong", reg)
    assert wrong.returncode != 0 and "unauthorized" in wrong.stderr.lower()
    ok = _run(hulld, tmp_path, client, "login", "-u", "bob", "--password-stdin", reg, input=b"t0ken-pass\n")
    assert ok.returncode == 0 and "Login Succeeded" in ok.stdout, ok.stderr
    pushed = _run(hulld, tmp_path, client, "push", name)
    assert pushed.returncode == 0, pushed.stderr
    hulld.cli("docker", "rmi", name)
    pulled = _run(hulld, tmp_path, client, "pull", name)
    assert pulled.returncode == 0, pulled.stderr
    scopes = {r["scope"] for r in token.requests if r["user"] == "bob"}
    assert "repository:tokened/bb:pull,push" in scopes and "repository:tokened/bb:pull" in scopes
    assert all(r["service"] == "hull-test-registry" for r in token.requests)
    ran = hulld.cli("docker", "run", "--rm", "--network", "none", name, "echo", "tokened")
    assert ran.stdout == "tokened\n", ran.stderr
    hulld.cli("docker", "rmi", name)
