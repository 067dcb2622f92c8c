"""The image operations on a real graph driver: import, export, commit and diff of containers' layers,
history, inspect and list in Docker's JSON shapes, tag, remove and prune with Docker's conflicts.

Images are made from hand-made layer tars (layers.register + create_image) or by import_image;
containers are just their layers (create_rw), changed through their mounted root."""

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import zstandard

from hull.errors import Conflict, HullError, InvalidArgument, NotFound
from hull.images import ids
from hull.images.changes import apply_changes, parse_changes
from hull.images.commit import EMPTY_LAYER_DIFF_ID, _register_spooled
from hull.images.filters import familiar_match, parse_timestamp
from hull.images.operations import (
    commit,
    diff_container,
    export_container,
    history,
    import_image,
    inspect,
    list_images,
    prune,
    remove,
    tag,
)
from hull.images.platform import host_platform
from hull.images.reference import parse
from hull.images.service import ImageService
from hull.layout import DataRoot
from hull.testing import mounts_under
from hull.testing.layers import make_layer_tar

MTIME = 1_700_000_000




BASE = make_layer_tar(
    [("etc/", None), ("etc/os", b"hull\n"), ("bin/", None), ("bin/tool", b"#!/bin/sh\n"), ("old", b"x")]
)
TOP = make_layer_tar([("etc/", None), ("etc/top", b"top layer\n")])
OTHER = make_layer_tar([("srv/", None), ("srv/data", b"12345")])
BASE_SIZE = len(b"hull\n#!/bin/sh\nx")


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_image(
    service: ImageService,
    tars: list[bytes],
    *,
    created: str = "2024-01-01T00:00:00Z",
    config: dict[str, Any] | None = None,
    parent: str | None = None,
    history: list[dict[str, Any]] | None = None,
) -> str:
    """An image of `tars` (bottom-up) with a config as a registry would hold it."""
    chain: str | None = None
    diff_ids = []
    for t in tars:
        layer = service.layers.register(io.BytesIO(t), chain)
        chain = layer.chain_id
        diff_ids.append(layer.diff_id)
    doc = {
        "architecture": "amd64",
        "config": config if config is not None else {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "created": created,
        "history": history if history is not None else [{"created": created, "created_by": f"layer {i}"}
                                                        for i in range(len(tars))],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }  # fmt: skip
    return service.create_image(json.dumps(doc, sort_keys=True).encode(), parent=parent)


def raw_config(service: ImageService, image_id: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(service.images.get(image_id))
    return result


def new_container(service: ImageService, image_id: str | None) -> str:
    container_id = ids.new_id()
    service.layers.create_rw(container_id, service.top_layer(image_id) if image_id else None)
    return container_id


@contextmanager
def mounted(service: ImageService, container_id: str) -> Iterator[Path]:
    path = Path(service.layers.mount(container_id))
    try:
        yield path
    finally:
        service.layers.unmount(container_id)


def state(service: ImageService) -> tuple[Any, ...]:
    """Everything an operation could change in the data root."""
    return (
        service.images.list(),
        service.layers.db.list(),
        sorted(service.driver.layer_ids()),
        service.refs.all(),
        service.layers.db.list_mounts(),
    )


def layer_names(service: ImageService, chain_id: str) -> list[str]:
    out = io.BytesIO()
    service.layers.tar_stream(chain_id, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        return tar.getnames()


def _service(driver: str, tmp_path: Path) -> Iterator[ImageService]:
    s = ImageService(DataRoot(str(tmp_path / "data")), driver)
    try:
        yield s
    finally:
        for container_id in s.layers.db.list_mounts():
            s.layers.delete_rw(container_id)
        s.close()
    assert not mounts_under(tmp_path)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ImageService]:
    yield from _service("overlay2", tmp_path)


@pytest.fixture(params=["overlay2", "vfs"])
def any_service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ImageService]:
    """Both graph drivers: what commits differs between them (overlay upper dir vs. two full trees)."""
    yield from _service(request.param, tmp_path)


# --- import and export ------------------------------------------------------------------------------------


@pytest.mark.container
def test_import_applies_changes_and_writes_dockers_config(service: ImageService) -> None:
    changes = ["ENV A=1 B=$A", "ENV C=${A}2", "CMD echo hi", "EXPOSE 80 90/udp", 'LABEL x=y "a b"=c',
               "USER nobody", "WORKDIR /srv", "VOLUME /data", "ONBUILD RUN make"]  # fmt: skip
    image_id = import_image(service, io.BytesIO(gzip.compress(BASE)), repo_tag="imported:1", changes=changes)
    doc = raw_config(service, image_id)
    assert list(doc) == sorted(doc)  # Go marshals image.Image through a map: keys sorted
    assert doc["architecture"] == host_platform().architecture == "amd64" and doc["os"] == "linux"
    assert doc["rootfs"] == {"type": "layers", "diff_ids": [digest(BASE)]}
    assert doc["comment"] == "Imported from -"
    assert doc["history"] == [{"created": doc["created"], "comment": "Imported from -"}]
    config = doc["config"]
    assert list(config)[:3] == ["Hostname", "Domainname", "User"]  # the struct's order, not sorted
    assert config["Env"] == ["A=1", "B=", "C=12"]  # one ENV sees the environment from before it
    assert config["Cmd"] == ["/bin/sh", "-c", "echo hi"] and config["Entrypoint"] is None
    assert config["ExposedPorts"] == {"80/tcp": {}, "90/udp": {}}
    assert config["Labels"] == {"x": "y", "a b": "c"}
    assert (config["User"], config["WorkingDir"], config["Volumes"]) == ("nobody", "/srv", {"/data": {}})
    assert config["OnBuild"] == ["RUN make"]
    assert service.lookup("imported:1") == image_id
    assert inspect(service, "imported:1")["Comment"] == "Imported from -"


@pytest.mark.container
def test_import_takes_zstd_streams_files_and_directories(service: ImageService, tmp_path: Path) -> None:
    zstd_id = import_image(service, io.BytesIO(zstandard.ZstdCompressor().compress(BASE)), message="from zstd")
    assert raw_config(service, zstd_id)["rootfs"]["diff_ids"] == [digest(BASE)]
    assert inspect(service, zstd_id)["Comment"] == "from zstd"
    path = tmp_path / "layer.tar"
    path.write_bytes(OTHER)
    file_id = import_image(service, path, platform="linux/amd64")
    assert raw_config(service, file_id)["rootfs"]["diff_ids"] == [digest(OTHER)]

    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/hostname").write_text("box\n")
    os.symlink("etc/hostname", tree / "link")
    dir_id = import_image(service, tree)
    (chain,) = ids.chain_ids(raw_config(service, dir_id)["rootfs"]["diff_ids"])
    assert layer_names(service, chain) == ["etc", "etc/hostname", "link"]


@pytest.mark.container
def test_import_refuses_bad_input_and_changes_nothing(service: ImageService, tmp_path: Path) -> None:
    import_image(service, io.BytesIO(BASE), repo_tag="keep")
    before = state(service)
    bad: list[tuple[dict[str, Any], type[HullError], str]] = [
        ({"changes": ["RUN make"]}, InvalidArgument, "run is not a valid change command"),
        ({"changes": ["FROM busybox"]}, InvalidArgument, "from is not a valid change command"),
        ({"changes": ["ONBUILD ONBUILD RUN x"]}, InvalidArgument, "Chaining ONBUILD"),
        ({"changes": ["EXPOSE 80:80"]}, InvalidArgument, "EXPOSE"),
        ({"repo_tag": "Upper:case"}, InvalidArgument, "must be lowercase"),
        ({"repo_tag": "x@sha256:" + "a" * 64}, InvalidArgument, "digest reference"),
        ({"platform": "windows/amd64"}, InvalidArgument, 'image operating system "windows"'),
    ]
    for kwargs, error, message in bad:
        with pytest.raises(error, match=message):
            import_image(service, io.BytesIO(OTHER), **kwargs)
        assert state(service) == before, kwargs
    with pytest.raises(InvalidArgument):
        import_image(service, io.BytesIO(b"this is not a tar archive" * 40))
    with pytest.raises(NotFound):
        import_image(service, tmp_path / "missing.tar")
    assert state(service) == before


@pytest.mark.container
def test_export_is_the_merged_filesystem_and_imports_back_byte_for_byte(service: ImageService) -> None:
    image_id = make_image(service, [BASE, TOP])
    container_id = new_container(service, image_id)
    with mounted(service, container_id) as root:
        (root / "added").write_text("by the container")
        (root / "old").unlink()
    out = io.BytesIO()
    export_container(service, container_id, out)
    exported = out.getvalue()
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        names = tar.getnames()
        assert tar.extractfile("etc/top").read() == b"top layer\n"  # type: ignore[union-attr]
    assert {"added", "bin/tool", "etc/os", "etc/top", ".dockerenv", "etc/hosts"} <= set(names)
    assert "old" not in names and not any(".wh." in n for n in names)
    assert service.driver.name != "overlay2" or not mounts_under(Path(service.root.path))  # unmounted again

    reimported = import_image(service, io.BytesIO(exported))
    (diff_id,) = raw_config(service, reimported)["rootfs"]["diff_ids"]
    assert diff_id == digest(exported)
    rebuilt = io.BytesIO()
    service.layers.tar_stream(diff_id, rebuilt)
    assert rebuilt.getvalue() == exported
    with pytest.raises(NotFound, match="No such container: nope"):
        export_container(service, "nope", io.BytesIO())


# --- commit and diff --------------------------------------------------------------------------------------


CONTAINER_CONFIG = {"Hostname": "c0ffee", "Env": ["PATH=/bin", "MODE=test"], "Cmd": ["sh", "-c", "make"],
                    "Image": "base:1", "Labels": {"from": "container"}}  # fmt: skip


@pytest.mark.container
def test_commit_turns_adds_changes_and_deletions_into_a_layer(any_service: ImageService) -> None:
    service = any_service
    base_id = make_image(service, [BASE], config={"Env": ["PATH=/bin", "LANG=C"], "Cmd": ["sh"],
                                                  "Labels": {"base": "1"}, "ExposedPorts": {"22/tcp": {}}})  # fmt: skip
    service.tag(base_id, "base:1")
    container_id = new_container(service, base_id)
    with mounted(service, container_id) as root:
        (root / "new").write_text("new file\n")
        (root / "etc/os").write_text("changed\n")
        (root / "etc/added").write_text("added\n")
        (root / "old").unlink()
    changes = {str(c) for c in diff_container(service, container_id)}
    assert {"A /new", "C /etc/os", "C /etc", "A /etc/added", "D /old"} <= changes
    assert not any("hosts" in c or "dockerenv" in c for c in changes)  # the init layer is not the container's

    image_id = commit(service, container_id, parent_image="base:1", container_config=CONTAINER_CONFIG,
                      repo_tag="committed", author="me <me@example.com>", comment="a message",
                      changes=["WORKDIR /w", "ENV MODE=prod"])  # fmt: skip
    doc = raw_config(service, image_id)
    assert list(doc) == ["architecture", "author", "config", "created", "history", "os", "rootfs"]
    base_diff, new_diff = doc["rootfs"]["diff_ids"]
    assert base_diff == digest(BASE)
    top = ids.chain_id([base_diff, new_diff])
    names = layer_names(service, top)
    assert (
        {"new", "etc/os", "etc/added", ".wh.old"} <= set(names)
        and "etc/hosts" not in names
        and ".dockerenv" not in names
    )
    assert doc["history"][-1] == {"created": doc["created"], "author": "me <me@example.com>",
                                  "created_by": "sh -c make", "comment": "a message"}  # fmt: skip
    assert doc["history"][0] == {"created": "2024-01-01T00:00:00Z", "created_by": "layer 0"}
    config = doc["config"]
    assert config["Env"] == ["PATH=/bin", "MODE=prod", "LANG=C"]  # the container's, changed, then the image's
    assert config["Cmd"] == ["sh", "-c", "make"] and config["WorkingDir"] == "/w"
    assert config["Labels"] == {"from": "container", "base": "1"}
    assert config["ExposedPorts"] == {"22/tcp": {}} and config["Hostname"] == "c0ffee"
    assert service.images.get_parent(image_id) == base_id
    assert service.lookup("committed:latest") == image_id
    view = inspect(service, "committed")
    assert (view["Parent"], view["Author"], view["Comment"]) == (base_id, "me <me@example.com>", "a message")

    # Committed again unchanged: the same diff id, the layer shared, not stored twice.
    layers_before = sorted(service.driver.layer_ids())
    again = commit(service, container_id, parent_image=base_id, container_config=CONTAINER_CONFIG)
    assert raw_config(service, again)["rootfs"]["diff_ids"] == [base_diff, new_diff]
    assert sorted(service.driver.layer_ids()) == layers_before


@pytest.mark.container
def test_the_same_change_in_two_containers_commits_to_the_same_diff_id(service: ImageService) -> None:
    base_id = make_image(service, [BASE])
    diff_ids = []
    for _ in range(2):
        container_id = new_container(service, base_id)
        with mounted(service, container_id) as root:
            (root / "same").write_bytes(b"same content")
            os.utime(root / "same", (MTIME, MTIME))
        image_id = commit(service, container_id, parent_image=base_id, container_config={"Cmd": ["true"]})
        diff_ids.append(raw_config(service, image_id)["rootfs"]["diff_ids"][-1])
    assert diff_ids[0] == diff_ids[1]


@pytest.mark.container
def test_commit_of_nothing_adds_an_empty_history_step_and_no_layer(service: ImageService) -> None:
    base_id = make_image(service, [BASE])
    container_id = new_container(service, base_id)
    layers_before = service.layers.db.list()
    image_id = commit(service, container_id, parent_image=base_id, container_config={})
    doc = raw_config(service, image_id)
    assert doc["rootfs"]["diff_ids"] == [digest(BASE)]
    assert doc["history"][-1] == {"created": doc["created"], "created_by": "sh", "empty_layer": True}
    assert service.layers.db.list() == layers_before
    assert not service.layers.exists(ids.chain_id_step(service.top_layer(base_id), EMPTY_LAYER_DIFF_ID))
    assert history(service, image_id)[0]["Size"] == 0


@pytest.mark.container
def test_commit_refuses_bad_input_and_changes_nothing(service: ImageService) -> None:
    base_id = make_image(service, [BASE])
    other_id = make_image(service, [OTHER])
    container_id = new_container(service, base_id)
    with mounted(service, container_id) as root:
        (root / "new").write_text("x")
    before = state(service)
    cases: list[tuple[dict[str, Any], type[HullError], str]] = [
        ({"parent_image": "nope"}, NotFound, "No such image: nope"),
        ({"parent_image": other_id}, InvalidArgument, "was not created from image"),
        ({"changes": ["RUN rm -rf /"]}, InvalidArgument, "run is not a valid change command"),
        ({"changes": ["HEALTHCHECK --interval=1ns CMD true"]}, InvalidArgument, "cannot be less than 1ms"),
        ({"repo_tag": "bad tag"}, InvalidArgument, "invalid reference format"),
        ({"container_config": {"Cmd": 5}}, InvalidArgument, "Cmd must be a list of strings"),
    ]
    for kwargs, error, message in cases:
        args: dict[str, Any] = {"parent_image": base_id, "container_config": {}, **kwargs}
        with pytest.raises(error, match=message):
            commit(service, container_id, **args)
        assert state(service) == before, kwargs
    with pytest.raises(NotFound, match="No such container: " + "f" * 64):
        commit(service, "f" * 64, parent_image=base_id, container_config={})
    with pytest.raises(NotFound, match="No such container: x"):
        diff_container(service, "x")
    assert state(service) == before


@pytest.mark.container
def test_commit_pauses_the_container_while_its_layer_is_read(service: ImageService) -> None:
    base_id = make_image(service, [BASE])
    container_id = new_container(service, base_id)
    events: list[str] = []

    @contextmanager
    def pause() -> Iterator[None]:
        events.append("pause")
        yield
        events.append("unpause")

    commit(service, container_id, parent_image=base_id, container_config={}, pause=pause)
    assert events == ["pause", "unpause"]


@pytest.mark.container
def test_a_layer_whose_producer_fails_is_not_kept(service: ImageService) -> None:
    def produce(out: BinaryIO) -> str:
        out.write(make_layer_tar([("a", b"x")]))  # a tar that reads as complete...
        raise OSError("the disk went away")  # ...then the producer fails

    with pytest.raises(OSError, match="the disk went away"):
        _register_spooled(service, produce, None)
    assert service.layers.db.list() == [] and service.driver.layer_ids() == []


# --- history and inspect ----------------------------------------------------------------------------------


@pytest.mark.container
def test_history_follows_dockers_shape_and_parent_chain(service: ImageService) -> None:
    pulled = make_image(service, [BASE, TOP], created="2024-01-02T03:04:05.123456789Z", history=[
        {"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:x in /"},
        {"created": "2024-01-01T00:00:01Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]", "empty_layer": True},
        {"created": "2024-01-02T03:04:05.123456789Z", "created_by": "/bin/sh -c make", "comment": "built"},
    ])  # fmt: skip
    tag(service, pulled, "pulled:1")
    items = history(service, "pulled:1")
    assert [set(i) for i in items] == [{"Comment", "Created", "CreatedBy", "Id", "Size", "Tags"}] * 3
    assert [i["Id"] for i in items] == [pulled, "<missing>", "<missing>"]
    assert [i["Tags"] for i in items] == [["pulled:1"], None, None]
    assert [i["Size"] for i in items] == [len(b"top layer\n"), 0, BASE_SIZE]
    assert [i["Created"] for i in items] == [1704164645, 1704067201, 1704067200]
    assert items[0]["Comment"] == "built" and items[2]["CreatedBy"].endswith("ADD file:x in /")

    container_id = new_container(service, pulled)
    with mounted(service, container_id) as root:
        (root / "made").write_bytes(b"12345678")
    child = commit(service, container_id, parent_image=pulled, container_config={"Cmd": ["make"]}, comment="c")
    items = history(service, child)
    assert [i["Id"] for i in items] == [child, pulled, "<missing>", "<missing>"]
    assert (items[0]["Tags"], items[0]["Size"], items[0]["CreatedBy"], items[0]["Comment"]) == (None, 8, "make", "c")


@pytest.mark.container
def test_inspect_is_dockers_image_inspect(service: ImageService) -> None:
    image_id = make_image(service, [BASE, TOP], created="2024-01-02T03:04:05.500000000Z",
                          config={"Env": ["PATH=/bin"], "Cmd": ["sh"], "Labels": {"a": "b"}})  # fmt: skip
    service.tag(image_id, "img:1")
    service.refs.add(parse("img@sha256:" + "c" * 64), image_id)
    view = inspect(service, "img:1")
    assert list(view) == ["Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "DockerVersion", "Author",
                          "Config", "Architecture", "Os", "Size", "GraphDriver", "RootFS", "Metadata"]  # fmt: skip
    assert view["Id"] == image_id and view["RepoTags"] == ["img:1"]
    assert view["RepoDigests"] == ["img@sha256:" + "c" * 64]
    assert (view["Parent"], view["Comment"], view["DockerVersion"], view["Author"]) == ("", "", "", "")
    assert view["Created"] == "2024-01-02T03:04:05.5Z"  # RFC3339Nano as Go prints it
    assert (view["Architecture"], view["Os"]) == ("amd64", "linux")
    assert view["Size"] == BASE_SIZE + len(b"top layer\n") and isinstance(view["Size"], int)
    config = view["Config"]
    assert config is not None
    assert list(config) == ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "Tty",
                            "OpenStdin", "StdinOnce", "Env", "Cmd", "Image", "Volumes", "WorkingDir", "Entrypoint",
                            "OnBuild", "Labels"]  # fmt: skip
    assert (config["Env"], config["Cmd"], config["Labels"], config["Entrypoint"]) == (
        ["PATH=/bin"],
        ["sh"],
        {"a": "b"},
        None,
    )
    driver = view["GraphDriver"]
    assert driver["Name"] == "overlay2" and driver["Data"] is not None
    assert set(driver["Data"]) == {"LowerDir", "MergedDir", "UpperDir", "WorkDir"}
    top_cache = service.layers.get(service.top_layer(image_id) or "").cache_id
    assert driver["Data"]["UpperDir"] == os.path.join(service.driver.home, top_cache, "diff")
    assert view["RootFS"] == {"Type": "layers", "Layers": [digest(BASE), digest(TOP)]}
    assert view["Metadata"]["LastTagTime"].endswith("Z")
    with pytest.raises(NotFound, match="No such image: nope"):
        inspect(service, "nope")
    with pytest.raises(NotFound, match="No such image: "):
        history(service, "sha256:" + "0" * 64)


# --- list ---------------------------------------------------------------------------------------------------


@pytest.mark.container
def test_list_images_with_filters(service: ImageService) -> None:
    a = make_image(service, [BASE], created="2024-01-01T00:00:00Z", config={"Labels": {"x": "1", "y": "1"}})
    b = make_image(service, [BASE, TOP], created="2024-02-01T00:00:00Z", config={"Labels": {"x": "2"}})
    dangling = make_image(service, [OTHER], created="2024-03-01T00:00:00Z")
    middle = make_image(service, [BASE, OTHER], created="2024-04-01T00:00:00Z")
    child = make_image(service, [BASE, OTHER, TOP], created="2024-05-01T00:00:00Z", parent=middle)
    tag(service, a, "app:1")
    tag(service, b, "bee:1")
    tag(service, child, "child")

    def listed(**kwargs: Any) -> list[str]:
        return [s["Id"] for s in list_images(service, **kwargs)]

    assert listed() == [child, dangling, b, a]  # newest first; the intermediate image left out
    assert listed(all=True) == [child, middle, dangling, b, a]
    summary = next(s for s in list_images(service) if s["Id"] == b)
    assert summary == {"Containers": -1, "Created": 1706745600, "Id": b, "Labels": {"x": "2"}, "ParentId": "",
                       "RepoDigests": [], "RepoTags": ["bee:1"], "SharedSize": -1,
                       "Size": BASE_SIZE + len(b"top layer\n")}  # fmt: skip
    assert next(s for s in list_images(service) if s["Id"] == child)["ParentId"] == middle
    assert next(s for s in list_images(service) if s["Id"] == dangling)["Labels"] is None

    assert listed(filters={"dangling": ["true"]}) == [dangling]
    assert listed(filters={"dangling": {"false": True}}) == [child, b, a]  # the API's older map form
    assert listed(filters={"label": ["x"]}) == [b, a]
    assert listed(filters={"label": ["x=1", "y"]}) == [a]
    assert listed(filters={"reference": ["app"]}) == [a]
    assert listed(filters={"reference": ["*:1"]}) == [b, a]
    assert listed(filters={"reference": ["b?e:*"]}) == [b]
    assert listed(filters={"before": ["bee:1"]}) == [a]
    assert listed(filters={"since": ["bee:1"]}) == [child, dangling]
    assert listed(filters={"until": ["2024-02-15T00:00:00Z"]}) == [b, a]
    shared = {s["Id"]: s["SharedSize"] for s in list_images(service, shared_size=True)}
    assert shared[a] == BASE_SIZE and shared[dangling] == 0

    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        list_images(service, filters={"colour": ["red"]})
    with pytest.raises(InvalidArgument, match="invalid filter 'dangling=maybe'"):
        list_images(service, filters={"dangling": ["maybe"]})
    with pytest.raises(NotFound, match="No such image: nope"):
        list_images(service, filters={"before": ["nope"]})


# --- tag, remove, prune --------------------------------------------------------------------------------


@pytest.mark.container
def test_tag_and_remove_untag_one_reference_then_delete(service: ImageService) -> None:
    image_id = make_image(service, [BASE, TOP])
    assert tag(service, image_id[7:19], "x") == "x:latest"
    tag(service, "x", "x:2")
    tag(service, "x:2", "localhost:5000/y:1")
    assert inspect(service, image_id)["RepoTags"] == ["localhost:5000/y:1", "x:2", "x:latest"]
    assert remove(service, "x") == [{"Untagged": "x:latest"}]
    assert remove(service, "localhost:5000/y:1") == [{"Untagged": "localhost:5000/y:1"}]
    base_chain, top_chain = ids.chain_ids([digest(BASE), digest(TOP)])
    assert remove(service, "x:2") == [{"Untagged": "x:2"}, {"Deleted": image_id},
                                      {"Deleted": top_chain}, {"Deleted": base_chain}]  # fmt: skip
    assert service.images.list() == [] and service.layers.db.list() == [] and service.driver.layer_ids() == []

    other = make_image(service, [OTHER])
    before = state(service)
    with pytest.raises(InvalidArgument, match="lowercase"):
        tag(service, other, "Bad")
    with pytest.raises(InvalidArgument, match="digest reference"):
        tag(service, other, "x@sha256:" + "a" * 64)
    with pytest.raises(NotFound, match="No such image: nope"):
        tag(service, "nope", "x")
    with pytest.raises(NotFound, match="No such image: nope"):
        remove(service, "nope")
    assert state(service) == before


@pytest.mark.container
def test_removing_one_of_two_images_leaves_their_shared_base(service: ImageService) -> None:
    small = make_image(service, [BASE])
    big = make_image(service, [BASE, TOP])
    base_chain, top_chain = ids.chain_ids([digest(BASE), digest(TOP)])
    assert remove(service, big) == [{"Deleted": big}, {"Deleted": top_chain}]
    assert service.layers.db.list() == [base_chain]
    assert remove(service, small) == [{"Deleted": small}, {"Deleted": base_chain}]
    assert service.driver.layer_ids() == []


@pytest.mark.container
def test_an_image_a_container_uses_is_kept_and_force_keeps_its_layers(service: ImageService) -> None:
    image_id = make_image(service, [BASE])
    service.tag(image_id, "used:1")
    container_id = new_container(service, image_id)
    before = state(service)
    short, container_short = image_id[7:19], container_id[:12]
    with pytest.raises(Conflict, match=f'unable to remove repository reference "used:1" \\(must force\\) - container '
                                       f"{container_short} is using its referenced image {short}"):  # fmt: skip
        remove(service, "used:1")
    with pytest.raises(Conflict, match=f"conflict: unable to delete {short} \\(must be forced\\) - image is being "
                                       f"used by stopped container {container_short}"):  # fmt: skip
        remove(service, image_id)
    with pytest.raises(Conflict, match="cannot be forced\\) - image is being used by running container"):
        remove(service, image_id, force=True, running=[container_id])
    assert state(service) == before

    assert remove(service, image_id, force=True) == [{"Untagged": "used:1"}, {"Deleted": image_id}]
    assert service.images.list() == []
    assert service.layers.db.list() == [digest(BASE)]  # the container still needs its layer
    with mounted(service, container_id) as root:
        assert (root / "etc/os").read_text() == "hull\n"
    service.layers.delete_rw(container_id)
    assert [layer.chain_id for layer in service.free_unused_layers(digest(BASE))] == [digest(BASE)]
    assert service.driver.layer_ids() == []


@pytest.mark.container
def test_parents_children_and_pruning_of_untagged_parents(service: ImageService) -> None:
    parent = make_image(service, [BASE])
    child = make_image(service, [BASE, TOP], parent=parent)
    tag(service, child, "child:1")
    with pytest.raises(Conflict, match="cannot be forced\\) - image has dependent child images"):
        remove(service, parent, force=True)
    base_chain, top_chain = ids.chain_ids([digest(BASE), digest(TOP)])
    assert remove(service, "child:1") == [{"Untagged": "child:1"}, {"Deleted": child}, {"Deleted": top_chain},
                                          {"Deleted": parent}, {"Deleted": base_chain}]  # fmt: skip

    parent = make_image(service, [BASE])
    child = make_image(service, [BASE, TOP], parent=parent)
    assert remove(service, child, prune_children=False) == [{"Deleted": child}, {"Deleted": top_chain}]
    assert service.images.list() == [parent]


@pytest.mark.container
def test_prune_removes_dangling_images_or_all_unused(service: ImageService) -> None:
    kept = make_image(service, [BASE], config={"Labels": {"keep": "yes"}})
    tag(service, kept, "kept:1")
    dangling = make_image(service, [OTHER], created="2024-01-01T00:00:00Z")
    old_dangling = make_image(service, [TOP], created="2020-01-01T00:00:00Z")
    used = make_image(service, [BASE, TOP])
    tag(service, used, "used:1")
    container_id = new_container(service, used)

    report = prune(service, filters={"until": ["2022-01-01T00:00:00Z"]})
    assert report == {"ImagesDeleted": [{"Deleted": old_dangling}, {"Deleted": digest(TOP)}],
                      "SpaceReclaimed": len(b"top layer\n")}  # fmt: skip
    assert prune(service) == {"ImagesDeleted": [{"Deleted": dangling}, {"Deleted": digest(OTHER)}],
                              "SpaceReclaimed": 5}  # fmt: skip
    assert prune(service) == {"ImagesDeleted": None, "SpaceReclaimed": 0}

    assert prune(service, all=True, filters={"label!": ["keep"]}) == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    report = prune(service, all=True)
    assert report["ImagesDeleted"] == [{"Untagged": "kept:1"}, {"Deleted": kept}]  # its layer is used by `used`
    assert report["SpaceReclaimed"] == 0
    assert service.images.list() == [used]  # the container's image stays
    with pytest.raises(InvalidArgument, match="invalid filter 'reference'"):
        prune(service, filters={"reference": ["x"]})
    service.layers.delete_rw(container_id)


# --- change instructions and filters (no kernel needed) -------------------------------------------------


@pytest.mark.unit
def test_change_instructions_follow_dockers_rules() -> None:
    config = apply_changes({"Env": ["HOME=/root"], "Shell": ["/bin/bash", "-c"]}, [
        "# a comment",
        "ENV PATH=/usr/bin \\",
        "    GREETING=\"hello $HOME\" SINGLE='$HOME'",
        "ENTRYPOINT run",
        'CMD ["--flag", "x"]',
        "EXPOSE 8000-8002/udp",
        "VOLUME [\"/a\", \"/b\"]",
        "WORKDIR rel",
        "WORKDIR ../other",
        "HEALTHCHECK --interval=30s --timeout=1m30s --retries=2 CMD [\"check\", \"-q\"]",
        "LABEL legacy value with spaces",
        "ENV LEGACY ${MISSING:-fallback} and ${HOME:+set}",
    ])  # fmt: skip
    assert config["Env"] == ["HOME=/root", "PATH=/usr/bin", "GREETING=hello /root", "SINGLE=$HOME",
                             "LEGACY=fallback and set"]  # fmt: skip
    assert config["Entrypoint"] == ["/bin/bash", "-c", "run"] and config["Cmd"] == ["--flag", "x"]
    assert config["ExposedPorts"] == {"8000/udp": {}, "8001/udp": {}, "8002/udp": {}}
    assert config["Volumes"] == {"/a": {}, "/b": {}} and config["WorkingDir"] == "/other"
    assert config["Healthcheck"] == {"Test": ["CMD", "check", "-q"], "Interval": 30_000_000_000,
                                     "Timeout": 90_000_000_000, "Retries": 2}  # fmt: skip
    assert config["Labels"] == {"legacy": "value with spaces"}
    assert apply_changes({"Cmd": ["old"]}, ['ENTRYPOINT ["e"]'])["Cmd"] is None  # ENTRYPOINT resets Cmd
    assert apply_changes(None, ["HEALTHCHECK NONE"])["Healthcheck"] == {"Test": ["NONE"]}
    assert [i.name for i in parse_changes(["cmd x", "Env A=1"])] == ["cmd", "env"]
    for bad, message in [("STOPSIGNAL 9", "stopsignal is not a valid change command"),
                         ("ADD . /", "add is not a valid change command"),
                         ("ONBUILD MAINTAINER me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
                         ("ENV A", "ENV must have two arguments"), ("ENV =1", "ENV names can not be blank"),
                         ("LABEL a=1 b", "Syntax error - can't find = in 'b'"), ("USER", "USER requires"),
                         ("EXPOSE 1/xtp", "invalid proto: xtp"), ("EXPOSE 70000", "invalid containerPort"),
                         ("HEALTHCHECK --retries=-1 CMD x", "cannot be negative"),
                         ("HEALTHCHECK --bogus=1 CMD x", "Unknown flag: bogus"),
                         ("VOLUME ['']", None), ("ENV A=\"unclosed", "matching double-quote")]:  # fmt: skip
        if message is None:
            apply_changes(None, [bad])  # not JSON: a path named ['']; Docker takes it too
            continue
        with pytest.raises(InvalidArgument, match=message.replace("(", "\\(")):
            apply_changes(None, [bad])


@pytest.mark.unit
def test_filter_patterns_and_timestamps() -> None:
    assert familiar_match("busybox", parse("busybox:latest"))  # the name alone matches too
    assert familiar_match("library/*", parse("library/x:1")) is False  # familiar: "x:1"
    assert familiar_match("*/app:*", parse("me/app:2"))
    assert not familiar_match("*", parse("me/app:2"))  # "*" stops at "/", as Go's path.Match
    assert familiar_match("[a-c]pp:[0-9]", parse("app:1")) and not familiar_match("[^a]pp:1", parse("app:1"))
    with pytest.raises(InvalidArgument, match="syntax error in pattern"):
        familiar_match("[", parse("app"))
    now = 2_000_000_000 * 10**9
    assert parse_timestamp("1h30m", now) == now - 5400 * 10**9
    assert parse_timestamp("1700000000.25") == 1_700_000_000_250_000_000
    assert parse_timestamp("2024-01-01T01:00:00+01:00") == 1_704_067_200 * 10**9
    with pytest.raises(InvalidArgument, match="failed to parse value as time or duration"):
        parse_timestamp("yesterday")
