"""Bad input through the API: Docker's status codes and wording, and no half-written record."""

import json
import os

import pytest

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container


def _records(d: HullDaemon) -> list[str]:
    return sorted(os.listdir(d.data_root / "containers"))


def test_unknown_image(hulld: HullDaemon) -> None:
    before = _records(hulld)
    status, body = hulld.request(
        "POST", "/containers/create", json.dumps({"Image": "nosuch"}).encode(), {"Content-Type": "application/json"}
    )
    assert status == 404
    assert body["message"] == "No such image: nosuch:latest"
    assert _records(hulld) == before


def test_unknown_container(hulld: HullDaemon) -> None:
    for method, path in [
        ("GET", "/containers/nosuch/json"),
        ("POST", "/containers/nosuch/start"),
        ("POST", "/containers/nosuch/stop"),
        ("DELETE", "/containers/nosuch"),
        ("GET", "/containers/nosuch/logs?stdout=1"),
    ]:
        status, body = hulld.request(method, path)
        assert status == 404, path
        assert body["message"] == "No such container: nosuch"


def test_malformed_json(hulld: HullDaemon) -> None:
    before = _records(hulld)
    status, body = hulld.request("POST", "/containers/create", b"{not json", {"Content-Type": "application/json"})
    assert status == 400
    assert "invalid JSON" in body["message"]
    status, body = hulld.request(
        "POST",
        "/containers/create",
        json.dumps({"Image": "busybox", "Cmd": ["true"], "Env": "A=1"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 400
    assert _records(hulld) == before


def test_image_without_command(hulld: HullDaemon, tmp_path: object) -> None:
    # An imported image has no CMD: creating a container of it without one fails as in Docker.
    before = _records(hulld)
    status, body = hulld.request(
        "POST", "/containers/create", json.dumps({"Image": "busybox"}).encode(), {"Content-Type": "application/json"}
    )
    assert status == 400
    assert body["message"] == "No command specified"
    assert _records(hulld) == before


def test_api_versions(hulld: HullDaemon) -> None:
    status, body = hulld.request("GET", "/v1.12/version")
    assert status == 400 and "is too old" in body["message"]
    status, body = hulld.request("GET", "/v9.99/version")
    assert status == 400 and "is too new" in body["message"]
    status, body = hulld.request("GET", "/v1.41/version")
    assert status == 200 and body["ApiVersion"] == "1.43"
    status, body = hulld.request("GET", "/nosuch/endpoint")
    assert status == 404 and body["message"] == "page not found"


def test_unknown_network_mode_and_bad_name(hulld: HullDaemon) -> None:
    before = _records(hulld)
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"CapAdd": ["CAP_NOSUCH"]}}
    status, _ = hulld.request(
        "POST", "/containers/create", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    assert status == 400
    # As dockerd: an unknown network passes create and fails the start (and the container stays created).
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "nosuchnet"}}
    status, created = hulld.request(
        "POST", "/containers/create", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    assert status == 201
    status, started = hulld.request("POST", f"/containers/{created['Id']}/start")
    assert status == 404 and started["message"] == "network nosuchnet not found"
    assert hulld.request("DELETE", f"/containers/{created['Id']}")[0] == 204
    status, body = hulld.request(
        "POST",
        "/containers/create?name=bad%20name",
        json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 400 and "Invalid container name" in body["message"]
    assert _records(hulld) == before
