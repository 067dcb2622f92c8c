"""`hull push` and `hull pull` against a real registry (Debian's docker-registry on 127.0.0.1),
for each engine of the `engine` fixture (hulld, and dockerd as the reference)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from hull.testing.registry import LocalRegistry

if TYPE_CHECKING:
    from conftest import Engine

pytestmark = pytest.mark.container



def test_push_rmi_pull_run(engine: Engine, registry: LocalRegistry) -> None:
    name = f"{registry.domain}/cli/bb:{engine.host.rsplit('/', 2)[-2]}"  # one tag per engine
    assert engine.hull("tag", engine.image, name).returncode == 0
    pushed = engine.hull("push", name)
    assert pushed.returncode == 0, pushed.stderr
    assert ": digest: sha256:" in pushed.stdout
    assert engine.hull("rmi", name).returncode == 0
    pulled = engine.hull("pull", name)
    assert pulled.returncode == 0, pulled.stderr
    assert f"Status: Downloaded newer image for {name}" in pulled.stdout
    ran = engine.hull("run", "--rm", "--network", "none", name, "echo", "round trip")
    assert ran.stdout == "round trip\n", ran.stderr
    assert engine.hull("rmi", name).returncode == 0


def test_pull_of_an_unknown_tag(engine: Engine, registry: LocalRegistry) -> None:
    done = engine.hull("pull", f"{registry.domain}/cli/nosuch:1")
    assert done.returncode == 1
    assert "manifest for" in done.stderr and "not found" in done.stderr
