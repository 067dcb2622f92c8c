"""The image endpoints through a real client: the Docker SDK for Python against hull's API served on a unix socket.

The server runs the real handlers, middleware and image store (overlay2 in a temp dir) on its
own event loop in a thread; the daemon is a small stand-in with the attributes the handlers
use (images, root, events, containers, blocking, locked), so these tests do not depend on the
container manager. Expected wording and shapes were checked against dockerd.
"""

import asyncio
import functools
import io
import json
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import docker
import docker.errors
import pytest
from aiohttp import web

from hull.api import images, routing, server
from hull.daemon.config import DaemonConfig
from hull.daemon.events import Event, EventBus, EventFilter
from hull.distribution.pull import Downloads
from hull.images import ids
from hull.images.service import ImageService
from hull.layout import DataRoot
from hull.testing import mounts_under
from hull.testing.layers import make_layer_tar

if TYPE_CHECKING:
    from hull.daemon.daemon import Daemon

pytestmark = pytest.mark.container

T = TypeVar("T")

BASE = make_layer_tar([("etc/", None), ("etc/os", b"hull\n"), ("bin/", None), ("bin/tool", b"#!/bin/sh\n")])
OTHER = make_layer_tar([("srv/", None), ("srv/data", b"12345")])


class FakeContainers:
    def __init__(self) -> None:
        self.running: set[str] = set()

    def running_ids(self) -> set[str]:
        return set(self.running)

    def all(self) -> list[Any]:
        return []


class FakeDaemon:
    """What the image handlers use of hull.daemon.daemon.Daemon."""

    def __init__(self, root: Path) -> None:
        self.images = ImageService(DataRoot(str(root)), "overlay2")
        self.root = self.images.root
        self.events = EventBus()
        self.containers = FakeContainers()
        self.downloads = Downloads()
        self.config = DaemonConfig()
        self.store_lock = asyncio.Lock()
        self.locked_calls = 0

    async def blocking(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    async def locked(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        async with self.store_lock:
            self.locked_calls += 1
            return await self.blocking(fn, *args, **kwargs)


class ApiServer:
    """The image routes on a unix socket, served by an event loop in a thread."""

    def __init__(self, daemon: FakeDaemon, socket_path: str) -> None:
        self.daemon = daemon
        self.socket_path = socket_path
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = self.call(self._start())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    async def _start(self) -> web.AppRunner:
        app = web.Application(middlewares=[server.errors_middleware], client_max_size=0)
        app[routing.DAEMON] = cast("Daemon", self.daemon)
        images.add_routes(app.router)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.UnixSite(runner, self.socket_path).start()
        return runner

    def events(self) -> list[Event]:
        async def collect() -> list[Event]:
            return [ev async for ev in self.daemon.events.stream(0, time.time(), EventFilter({}))]

        return list(self.call(collect()))

    def stop(self) -> None:
        self.call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiServer]:
    daemon = FakeDaemon(tmp_path / "data")
    srv = ApiServer(daemon, str(tmp_path / "hull.sock"))
    try:
        yield srv
    finally:
        srv.stop()
        service = daemon.images
        for container_id in service.layers.db.list_mounts():
            service.layers.delete_rw(container_id)
        service.close()
    assert not mounts_under(tmp_path)


@pytest.fixture
def client(api: ApiServer) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=f"unix://{api.socket_path}", version="1.43", timeout=60)
    try:
        yield c
    finally:
        c.close()


def import_tar(client: docker.DockerClient, data: bytes, repo: str | None = None, **kw: Any) -> str:
    """POST /images/create?fromSrc=- through the SDK; returns the image id of the final status line."""
    if "message" in kw:  # the SDK has no parameter for it
        params = {"fromSrc": "-", "repo": repo, **kw}
        res = client.api._post(client.api._url("/images/create"), params=params, data=data)
        client.api._raise_for_status(res)
        out = res.text
    else:
        out = client.api.import_image_from_data(data, repository=repo, **kw)
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert lines and set(lines[-1]) == {"status"}, out
    image_id: str = lines[-1]["status"]
    assert ids.is_hex_id(image_id.removeprefix("sha256:"))
    return image_id


def actions(api: ApiServer) -> list[tuple[str, str, str]]:
    return [(e.action, e.actor_id, e.attributes.get("name", "")) for e in api.events() if e.type == "image"]


def tar_of_dir(path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for entry in sorted(os.listdir(path)):
            tar.add(str(path / entry), arcname=entry)
    return buf.getvalue()


def api_error(excinfo: pytest.ExceptionInfo[docker.errors.APIError]) -> tuple[int, str]:
    e = excinfo.value
    assert e.response is not None
    return e.response.status_code, e.response.json()["message"]


# --- import, list, inspect, history -------------------------------------------------------------------


def test_import_busybox_then_list_inspect_history(
    api: ApiServer, client: docker.DockerClient, busybox_rootfs: Path
) -> None:
    image_id = import_tar(
        client, tar_of_dir(busybox_rootfs), "busybox", tag="latest", changes=["CMD [\"sh\"]", "ENV A=1"],
        message="from the test",
    )  # fmt: skip
    assert [i.id for i in client.images.list()] == [image_id]
    image = client.images.get("busybox")
    assert image.id == image_id and image.tags == ["busybox:latest"]
    assert image.attrs["Config"]["Cmd"] == ["sh"] and "A=1" in image.attrs["Config"]["Env"]
    assert image.attrs["Comment"] == "from the test"
    assert image.attrs["Size"] > 500_000 and image.attrs["VirtualSize"] == image.attrs["Size"]  # API 1.43
    assert image.attrs["RootFS"]["Type"] == "layers" and len(image.attrs["RootFS"]["Layers"]) == 1
    assert client.images.get(image_id[7:19]).id == image_id  # a short id
    (step,) = image.history()
    assert step["Id"] == image_id and step["Comment"] == "from the test" and step["Tags"] == ["busybox:latest"]
    summary = client.api.images()[0]
    assert summary["RepoTags"] == ["busybox:latest"] and summary["Containers"] == -1
    assert summary["VirtualSize"] == summary["Size"] == image.attrs["Size"]
    assert actions(api) == [("tag", image_id, "busybox:latest"), ("import", image_id, image_id)]


def test_import_streams_a_chunked_body_and_never_holds_the_lock_while_it_arrives(
    api: ApiServer, client: docker.DockerClient
) -> None:
    base_id = import_tar(client, OTHER, "other")
    half = threading.Event()
    go_on = threading.Event()

    def body() -> Iterator[bytes]:
        yield BASE[:1000]
        half.set()
        assert go_on.wait(30)
        yield BASE[1000:]

    result: dict[str, Any] = {}

    def post() -> None:
        url = client.api._url("/images/create")
        res = client.api._post(url, params={"fromSrc": "-", "repo": "slow"}, data=body())
        result["status"], result["text"] = res.status_code, res.text

    t = threading.Thread(target=post)
    t.start()
    try:
        assert half.wait(30)
        time.sleep(0.2)
        client.api.tag(base_id, "other", "meanwhile")  # the store lock is free while the body trickles in
    finally:
        go_on.set()
        t.join(60)
    assert result["status"] == 200, result
    image_id = json.loads(result["text"])["status"]
    assert client.images.get("slow:latest").id == image_id
    assert client.images.get("other:meanwhile").id == base_id


def test_import_errors(api: ApiServer, client: docker.DockerClient) -> None:
    with pytest.raises(docker.errors.APIError) as e:
        import_tar(client, BASE, "Upper")
    status, message = api_error(e)
    assert status == 400 and message.startswith("invalid reference format: repository name")
    with pytest.raises(docker.errors.APIError) as e:
        client.api.import_image_from_url("http://example.invalid/x.tar")
    assert api_error(e) == (400, images.IMPORT_URL_NOT_SUPPORTED)
    with pytest.raises(docker.errors.APIError) as e:
        import_tar(client, b"not a tar archive at all" * 40, "junk")
    status, _ = api_error(e)
    assert status in (400, 500)
    with pytest.raises(docker.errors.APIError) as e:
        import_tar(client, BASE, "x", changes=["FROB x"])
    assert api_error(e)[0] == 400
    assert client.images.list() == []
    assert os.listdir(api.daemon.root.layerdb_tmp) == []


def test_inspect_and_history_of_unknown_images_are_404_in_dockers_words(
    api: ApiServer, client: docker.DockerClient
) -> None:
    cases = {
        "nosuch": "No such image: nosuch:latest",
        "foo/bar:baz": "No such image: foo/bar:baz",
        "abc123": "No such image: abc123:latest",
        "sha256:abc123": "No such image: sha256:abc123",
        "0" * 64: f"No such image: sha256:{'0' * 64}",
    }
    for name, message in cases.items():
        with pytest.raises(docker.errors.ImageNotFound) as e:
            client.images.get(name)
        assert api_error(e) == (404, message), name
        with pytest.raises(docker.errors.ImageNotFound) as e:
            client.api.history(name)
        assert api_error(e) == (404, message), name
    with pytest.raises(docker.errors.APIError) as e:
        client.api.history("UPPER")
    assert api_error(e)[0] == 400


def test_list_filters(api: ApiServer, client: docker.DockerClient) -> None:
    first = import_tar(client, BASE, "first", changes=["LABEL team=a"])
    time.sleep(0.01)
    second = import_tar(client, OTHER, "second/two", tag="v1")
    dangling = import_tar(client, make_layer_tar([("d", b"d")]))
    assert [i.id for i in client.images.list()] == [dangling, second, first]
    assert [i.id for i in client.images.list(filters={"dangling": True})] == [dangling]
    assert [i.id for i in client.images.list(filters={"label": "team=a"})] == [first]
    assert [i.id for i in client.images.list(filters={"reference": "second/*"})] == [second]
    assert [i.id for i in client.images.list(filters={"before": "second/two:v1"})] == [first]
    assert [i.id for i in client.images.list(filters={"since": "first"})] == [dangling, second]
    assert [i.id for i in client.images.list(name="first")] == [first]
    assert client.images.get("second/two:v1").id == second  # a name with a slash and a tag in the path


@pytest.mark.parametrize(
    ("filters", "message"),
    [("{bad", "invalid filter"), ('{"foo": ["x"]}', "invalid filter 'foo'"), ('["x"]', "invalid filter")],
)
def test_bad_filters_are_400(api: ApiServer, client: docker.DockerClient, filters: str, message: str) -> None:
    for path in ("/images/json", "/images/prune"):
        url = client.api._url(path)
        res = (client.api._get if path.endswith("json") else client.api._post)(url, params={"filters": filters})
        assert res.status_code == 400, res.text
        assert res.json()["message"].startswith(message)


# --- tag, remove, prune ---------------------------------------------------------------------------------------


def test_tag_and_remove(api: ApiServer, client: docker.DockerClient) -> None:
    image_id = import_tar(client, BASE, "base")
    image = client.images.get(image_id)
    assert image.tag("foo/bar", "v1") is True
    assert client.api.tag("base", "foo/bar:v2") is True  # the repo may carry the tag
    assert sorted(client.images.get(image_id).tags) == ["base:latest", "foo/bar:v1", "foo/bar:v2"]
    with pytest.raises(docker.errors.ImageNotFound) as e:
        client.api.tag("nosuch", "x")
    assert api_error(e) == (404, "No such image: nosuch:latest")
    with pytest.raises(docker.errors.APIError) as e:
        client.api.tag("base", "Foo")
    assert api_error(e)[0] == 400

    assert client.api.remove_image("foo/bar:v1") == [{"Untagged": "foo/bar:v1"}]
    with pytest.raises(docker.errors.APIError) as e:
        client.api.remove_image(image_id)
    assert api_error(e) == (
        409,
        f"conflict: unable to delete {image_id[7:19]} (must be forced) - image is referenced in multiple repositories",
    )
    top = api.daemon.images.top_layer(image_id)
    assert client.api.remove_image(image_id, force=True) == [
        {"Untagged": "base:latest"},
        {"Untagged": "foo/bar:v2"},
        {"Deleted": image_id},
        {"Deleted": top},
    ]
    assert client.images.list() == []
    with pytest.raises(docker.errors.ImageNotFound) as e:
        client.api.remove_image("base")
    assert api_error(e) == (404, "No such image: base:latest")
    assert actions(api) == [
        ("tag", image_id, "base:latest"),
        ("import", image_id, image_id),
        ("tag", image_id, "foo/bar:v1"),
        ("tag", image_id, "foo/bar:v2"),
        ("untag", image_id, image_id),
        ("untag", image_id, image_id),
        ("untag", image_id, image_id),
        ("delete", image_id, image_id),
    ]


def test_remove_conflicts_with_containers(api: ApiServer, client: docker.DockerClient) -> None:
    image_id = import_tar(client, BASE, "base")
    service = api.daemon.images
    container_id = ids.new_id()
    service.layers.create_rw(container_id, service.top_layer(image_id))
    short_image, short_container = image_id[7:19], container_id[:12]

    with pytest.raises(docker.errors.APIError) as e:
        client.images.remove("base")
    assert api_error(e) == (
        409,
        f'conflict: unable to remove repository reference "base" (must force) - container {short_container} '
        f"is using its referenced image {short_image}",
    )
    with pytest.raises(docker.errors.APIError) as e:
        client.images.remove(image_id)
    assert api_error(e) == (
        409,
        f"conflict: unable to delete {short_image} (must be forced) - image is being used by stopped container "
        f"{short_container}",
    )
    api.daemon.containers.running.add(container_id)
    with pytest.raises(docker.errors.APIError) as e:
        client.images.remove(image_id, force=True)
    assert api_error(e) == (
        409,
        f"conflict: unable to delete {short_image} (cannot be forced) - image is being used by running container "
        f"{short_container}",
    )
    assert client.images.get("base").id == image_id
    api.daemon.containers.running.clear()
    # Forced, the image goes but the layer under the container stays.
    assert client.api.remove_image(image_id, force=True) == [{"Untagged": "base:latest"}, {"Deleted": image_id}]
    assert service.layers.exists(service.layers.db.get_mount(container_id).parent or "")


def test_prune(api: ApiServer, client: docker.DockerClient) -> None:
    kept = import_tar(client, BASE, "kept")
    dangling = import_tar(client, OTHER)
    top = api.daemon.images.top_layer(dangling)
    assert top is not None
    size = api.daemon.images.layers.get(top).size
    assert size > 0
    assert client.images.prune() == {"ImagesDeleted": [{"Deleted": dangling}, {"Deleted": top}], "SpaceReclaimed": size}
    assert client.images.prune() == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    assert [i.id for i in client.images.list()] == [kept]
    report = client.images.prune(filters={"dangling": False})
    assert report["ImagesDeleted"][:2] == [{"Untagged": "kept:latest"}, {"Deleted": kept}]
    assert client.images.list() == []
    prunes = [e for e in api.events() if e.action == "prune"]
    assert [(e.actor_id, dict(e.attributes)) for e in prunes] == [
        ("", {"reclaimed": str(size)}),
        ("", {"reclaimed": "0"}),
        ("", {"reclaimed": str(report["SpaceReclaimed"])}),
    ]
    assert ("untag", kept, kept) in actions(api) and ("delete", kept, kept) in actions(api)


# --- save and load ----------------------------------------------------------------------------------------


def test_save_load_round_trip_keeps_the_image_id(api: ApiServer, client: docker.DockerClient) -> None:
    image_id = import_tar(client, BASE, "app", tag="v1")
    other_id = import_tar(client, OTHER, "other")
    res = client.api._get(client.api._url("/images/{0}/get", "app:v1"), stream=True)
    assert res.status_code == 200 and res.headers["Content-Type"] == "application/x-tar"
    assert res.headers.get("Transfer-Encoding") == "chunked"  # streamed, not sized up front
    archive = b"".join(res.iter_content(65536))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["app:v1"]

    client.images.remove(image_id)
    loaded = client.images.load(archive)
    assert [i.id for i in loaded] == [image_id]
    assert client.images.get("app:v1").id == image_id
    stream = list(client.api.load_image(archive))
    assert stream == [{"stream": "Loaded image: app:v1\n"}]

    # Several names in one archive (GET /images/get?names=...), and an untagged image by id.
    res = client.api._get(client.api._url("/images/get"), params={"names": ["app:v1", other_id]}, stream=True)
    both = b"".join(res.iter_content(65536))
    client.images.remove("app:v1")
    client.images.remove("other")
    assert client.images.list() == []
    assert sorted(i.id for i in client.images.load(both)) == sorted([image_id, other_id])

    data = b"".join(client.images.get(other_id).save())
    client.images.remove(other_id)
    assert list(client.api.load_image(data)) == [{"stream": f"Loaded image ID: {other_id}\n"}]
    a, o = ("save", image_id, image_id), ("save", other_id, other_id)
    la, lo = ("load", image_id, image_id), ("load", other_id, other_id)
    expected = [a, la, la, *sorted([a, o]), *sorted([la, lo]), o, lo]
    assert [x for x in actions(api) if x[0] in ("save", "load")] == expected


def test_save_of_unknown_image_is_404(api: ApiServer, client: docker.DockerClient) -> None:
    with pytest.raises(docker.errors.ImageNotFound) as e:
        b"".join(client.api.get_image("nosuch"))
    assert api_error(e) == (404, "No such image: nosuch")
    res = client.api._get(client.api._url("/images/get"), params={"names": ["nosuch"]})
    assert res.status_code == 404 and res.json() == {"message": "No such image: nosuch"}


def test_load_of_a_malformed_archive_is_an_error_in_the_stream_and_changes_nothing(
    api: ApiServer, client: docker.DockerClient
) -> None:
    image_id = import_tar(client, BASE, "app")
    archive = b"".join(client.images.get(image_id).save())
    client.images.remove(image_id)
    service = api.daemon.images
    before = (sorted(service.layers.db.list()), sorted(service.images.list()), service.refs.all())

    for bad in (b"garbage" * 300, archive[: len(archive) // 2], make_layer_tar([("hello", b"x")])):
        stream = list(client.api.load_image(bad))
        assert len(stream) == 1 and set(stream[0]) == {"errorDetail", "error"}, stream
        assert stream[0]["error"] == stream[0]["errorDetail"]["message"]
        with pytest.raises(docker.errors.ImageLoadError):
            client.images.load(bad)
        after = (sorted(service.layers.db.list()), sorted(service.images.list()), service.refs.all())
        assert after == before
        assert os.listdir(service.root.layerdb_tmp) == []
    (line,) = client.api.load_image(make_layer_tar([("x", b"x")]))
    assert "manifest.json" in line["error"]
    assert [e for e in api.events() if e.action == "load"] == []


# --- unreachable registries, not supported yet ---------------------------------------------------------------


def test_pull_from_unreachable_registries_and_search_answer_with_dockers_error_shape(
    api: ApiServer, client: docker.DockerClient
) -> None:
    # No registry answers here (loopback port 9 is closed): a 500 before any stream, as dockerd.
    with pytest.raises(docker.errors.APIError) as e:
        client.images.pull("127.0.0.1:9/a/b", tag="sha256:" + "a" * 64)
    status, message = api_error(e)
    assert status == 500 and message.startswith('Get "https://127.0.0.1:9/v2/"')
    with pytest.raises(docker.errors.APIError) as e:
        client.images.pull("UPPER")
    assert api_error(e)[0] == 400
    with pytest.raises(docker.errors.APIError) as e:
        client.images.search("busybox")
    assert api_error(e) == (400, images.SEARCH_NOT_SUPPORTED)
