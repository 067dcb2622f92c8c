"""The reference store: repositories.json in Docker's exact format, tag and digest rules, crash safety."""

import json
import os
from pathlib import Path

import pytest

from hull.errors import Conflict, HullError, InvalidArgument, NotFound
from hull.images.reference import parse
from hull.images.references import ReferenceStore
from hull.layout import DataRoot

pytestmark = pytest.mark.unit

# Seed 004's repositories.json, compact as Docker writes it.
IMG = "sha256:1ddc7a18ba0bcc20c61447f391bfff98ac559eea590e7ac59b5b5f588f1f47ed"
SEED_004 = {
    "Repositories": {
        "openresty/openresty": {
            "openresty/openresty:1.17.8.2-5-alpine": IMG,
            "openresty/openresty@sha256:224ced85b5f8b679a8664a39b69c1b8feb09f8ba4343d834bd5b69433081389e": IMG,
        },
        "russellgao/openresty": {
            "russellgao/openresty:1.17.8.2-5-alpine": IMG,
            "russellgao/openresty@sha256:84f53dc7517e9b6695fc8fd74916a1eb5970a92fc24a984f99bfb81508f3d261": IMG,
        },
    }
}
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
DIG = "sha256:" + "d" * 64


@pytest.fixture
def root(tmp_path: Path) -> DataRoot:
    return DataRoot(str(tmp_path / "data"))


def _file(root: DataRoot) -> bytes:
    return Path(root.repositories_json).read_bytes()


def test_missing_file_is_empty_and_not_created(root: DataRoot) -> None:
    store = ReferenceStore(root)
    assert store.all() == []
    assert not os.path.exists(root.repositories_json)
    with pytest.raises(NotFound, match=r"^No such image: busybox:latest$"):
        store.get("busybox")


def test_writes_docker_format(root: DataRoot) -> None:
    store = ReferenceStore(root)
    store.add("busybox", A)
    store.add("busybox@" + DIG, A)
    store.add("localhost:5000/team/app:v1", B)
    expected = {
        "Repositories": {
            "busybox": {"busybox:latest": A, "busybox@" + DIG: A},
            "localhost:5000/team/app": {"localhost:5000/team/app:v1": B},
        }
    }
    assert _file(root) == json.dumps(expected, sort_keys=True, separators=(",", ":")).encode()
    assert not _file(root).endswith(b"\n")
    assert os.stat(root.repositories_json).st_mode & 0o777 == 0o600


def test_reads_seed_004(root: DataRoot) -> None:
    os.makedirs(os.path.dirname(root.repositories_json))
    Path(root.repositories_json).write_text(json.dumps(SEED_004, indent=2))
    store = ReferenceStore(root)
    assert store.get("openresty/openresty:1.17.8.2-5-alpine") == IMG
    assert store.get("docker.io/russellgao/openresty:1.17.8.2-5-alpine") == IMG
    assert [r.familiar() for r in store.references(IMG)] == [
        "openresty/openresty:1.17.8.2-5-alpine",
        "openresty/openresty@sha256:224ced85b5f8b679a8664a39b69c1b8feb09f8ba4343d834bd5b69433081389e",
        "russellgao/openresty:1.17.8.2-5-alpine",
        "russellgao/openresty@sha256:84f53dc7517e9b6695fc8fd74916a1eb5970a92fc24a984f99bfb81508f3d261",
    ]
    # A change rewrites it in Docker's compact form, keeping every entry.
    store.add("busybox", A)
    doc = json.loads(_file(root))
    assert doc["Repositories"]["openresty/openresty"] == SEED_004["Repositories"]["openresty/openresty"]
    assert doc["Repositories"]["busybox"] == {"busybox:latest": A}


def test_lookup_rules(root: DataRoot) -> None:
    store = ReferenceStore(root)
    store.add("busybox:1.36", A)
    store.add("busybox@" + DIG, B)
    assert store.get("docker.io/library/busybox:1.36") == A
    assert store.get(parse("busybox:1.36")) == A
    assert store.get("busybox:whatever@" + DIG) == B  # the digest wins over the tag
    with pytest.raises(NotFound, match="No such image: busybox:latest"):
        store.get("busybox")
    assert ReferenceStore(root).get("busybox:1.36") == A  # persisted


def test_tag_moves_only_when_forced(root: DataRoot) -> None:
    store = ReferenceStore(root)
    store.add("app:v1", A)
    store.add("app:v1", A)  # same mapping: no-op
    with pytest.raises(Conflict, match=r"Conflict: Tag app:v1 is already set to image sha256:a+, .*force"):
        store.add("app:v1", B)
    assert store.get("app:v1") == A
    store.add("app:v1", B, force=True)
    assert store.get("app:v1") == B
    assert store.references(A) == []
    assert [r.familiar() for r in store.references(B)] == ["app:v1"]


def test_digest_never_moves(root: DataRoot) -> None:
    store = ReferenceStore(root)
    store.add("app@" + DIG, A)
    for force in (False, True):
        with pytest.raises(Conflict, match="cannot overwrite digest " + DIG):
            store.add("app@" + DIG, B, force=force)
    assert store.get("app@" + DIG) == A


def test_refuses_bad_input_without_writing(root: DataRoot) -> None:
    store = ReferenceStore(root)
    store.add("app", A)
    before = _file(root)
    with pytest.raises(InvalidArgument, match="both a tag and a digest"):
        store.add("app:v1@" + DIG, A)
    with pytest.raises(InvalidArgument, match="digest algorithm as name"):
        store.add("sha256:" + "1" * 10, A)
    with pytest.raises(InvalidArgument, match="image id"):
        store.add("app:v2", "a" * 64)
    with pytest.raises(InvalidArgument, match="invalid reference format"):
        store.add("Not Valid", A)
    with pytest.raises(InvalidArgument):
        store.get("UPPER")
    assert _file(root) == before


def test_delete(root: DataRoot) -> None:
    store = ReferenceStore(root)
    store.add("app:v1", A)
    store.add("app:v2", A)
    store.add("app@" + DIG, A)
    assert store.delete("app:v1") == A
    with pytest.raises(NotFound, match="No such image: app:v1"):
        store.delete("app:v1")
    assert store.delete("app:v9@" + DIG) == A  # by digest
    assert store.delete("app:v2") == A
    assert json.loads(_file(root)) == {"Repositories": {}}
    store.add("x", A)
    store.add("y:1", A)
    store.add("z", B)
    assert [r.familiar() for r in store.delete_image(A)] == ["x:latest", "y:1"]
    assert [(r.familiar(), i) for r, i in ReferenceStore(root).all()] == [("z:latest", B)]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"Repositories": []}',
        b'{"Repositories": {"busybox": ["x"]}}',
        b'{"Repositories": {"busybox": {"Busybox:latest": "sha256:' + b"a" * 64 + b'"}}}',
        b'{"Repositories": {"busybox": {"busybox:latest": "nope"}}}',
        b'{"Repositories": {"busybox": {"alpine:latest": "sha256:' + b"a" * 64 + b'"}}}',
    ],
)
def test_corrupt_file_is_a_clear_error_and_left_alone(root: DataRoot, content: bytes) -> None:
    os.makedirs(os.path.dirname(root.repositories_json))
    Path(root.repositories_json).write_bytes(content)
    with pytest.raises(HullError, match=r"reference store .*repositories\.json is corrupt"):
        ReferenceStore(root)
    assert Path(root.repositories_json).read_bytes() == content


def test_failed_save_keeps_memory_and_file_in_step(root: DataRoot, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ReferenceStore(root)
    store.add("app:v1", A)
    before = _file(root)

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("hull.images.references.atomic_write", broken)
    with pytest.raises(OSError):
        store.add("app:v2", A)
    with pytest.raises(OSError):
        store.add("app:v1", B, force=True)
    with pytest.raises(OSError):
        store.delete("app:v1")
    assert store.get("app:v1") == A
    with pytest.raises(NotFound):
        store.get("app:v2")
    assert _file(root) == before
