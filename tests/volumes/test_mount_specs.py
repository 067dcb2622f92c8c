"""Parsing of -v, --mount (API and CLI form), --volumes-from and the config's Volumes into mount points,
and the OCI mounts they become: pure functions, no kernel."""

import pytest

from hull.cli.client import CLIError
from hull.cli.mountflag import parse as parse_mount_flag
from hull.containers.ocispec import SpecInputs, mounts
from hull.errors import InvalidArgument
from hull.volumes.mounts import (
    BIND,
    TMPFS,
    VOLUME,
    MountPoint,
    inherited,
    oci_mounts,
    parse_bind,
    parse_mount,
    plan,
    tmpfs_data,
)


def test_bind_with_mode() -> None:
    p = parse_bind("/host//dir/:/ctr/x:ro")
    assert (p.type, p.source, p.destination, p.rw, p.mode, p.propagation) == (BIND, "/host/dir", "/ctr/x", False, "ro",
                                                                              "rprivate")  # fmt: skip
    assert p.spec == {"Type": "bind", "Source": "/host/dir", "Target": "/ctr/x", "ReadOnly": True}
    assert parse_bind("/h:/c:rshared").propagation == "rshared"


def test_named_volume_gets_docker_default_mode() -> None:
    p = parse_bind("data:/data")
    assert (p.type, p.name, p.mode, p.rw, p.copy_data, p.anonymous) == (VOLUME, "data", "z", True, True, False)
    p = parse_bind("data:/data:ro,nocopy")
    assert (p.mode, p.rw, p.copy_data) == ("ro,nocopy", False, False)


def test_lone_path_is_anonymous() -> None:
    p = parse_bind("/anon")
    assert p.anonymous and p.name == "" and p.copy_data


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("/a:/b:c:d", "invalid volume specification: '/a:/b:c:d'"),
        ("/a:ro", "invalid volume specification: '/a:ro'"),
        ("/a:rel", "invalid volume specification: '/a:rel': invalid mount config for type \"bind\": "
                   "invalid mount path: 'rel' mount path must be absolute"),
        ("/a:/b:bogus", "invalid mode: bogus"),
        ("/a:/b:ro,rw", "invalid mode: ro,rw"),
        ("/a:/b:nocopy", "invalid volume specification: '/a:/b:nocopy': invalid mount config for type \"bind\": "
                         "field VolumeOptions must not be specified"),
        ("vol:/b:rshared", "invalid volume specification: 'vol:/b:rshared': invalid mount config for type "
                           "\"volume\": field BindOptions must not be specified"),
        ("/a:/", "invalid volume specification: '/a:/': invalid mount config for type \"bind\": "
                 "invalid specification: destination can't be '/'"),
        ("", "invalid volume specification: ''"),
    ],
)
def test_bad_binds(raw: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse_bind(raw)
    assert e.value.message == message


def test_api_mounts() -> None:
    b = parse_mount({"Type": "bind", "Source": "/h", "Target": "/c", "BindOptions": {"Propagation": "rslave"}})
    assert (b.type, b.propagation, b.mode, b.skip_source_creation) == (BIND, "rslave", "", True)
    v = parse_mount({"Type": "volume", "Source": "v", "Target": "/v", "ReadOnly": True})
    assert (v.name, v.rw, v.mode) == ("v", False, "z")
    anon = parse_mount({"Type": "volume", "Target": "/v"})
    assert anon.anonymous and anon.mode == ""
    t = parse_mount({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1777}})
    assert t.type == TMPFS and tmpfs_data(t.spec) == "size=1m,mode=1777"
    assert tmpfs_data({"TmpfsOptions": {"SizeBytes": 1000000}, "ReadOnly": True}) == "size=1000000,ro"


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        ({"Type": "bind", "Target": "/c"}, 'invalid mount config for type "bind": field Source must not be empty'),
        ({"Type": "bind", "Source": "/h"}, 'invalid mount config for type "bind": field Target must not be empty'),
        ({"Type": "bind", "Source": "/h", "Target": "c"},
         "invalid mount config for type \"bind\": invalid mount path: 'c' mount path must be absolute"),
        ({"Type": "bind", "Source": "/h", "Target": "/c", "VolumeOptions": {"NoCopy": True}},
         'invalid mount config for type "bind": field VolumeOptions must not be specified'),
        ({"Type": "tmpfs", "Source": "x", "Target": "/c"},
         'invalid mount config for type "tmpfs": field Source must not be specified'),
        ({"Type": "volume", "Target": "/c", "ReadOnly": True},
         'invalid mount config for type "volume": must not set ReadOnly mode when using anonymous volumes'),
        ({"Type": "npipe", "Target": "/c"}, 'invalid mount config for type "npipe": mount type unknown'),
    ],
)  # fmt: skip
def test_bad_api_mounts(mount: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse_mount(mount)
    assert e.value.message == message


def test_precedence_and_duplicates() -> None:
    other = [MountPoint(VOLUME, "/shared", "/src", name="vol", driver="local", mode="z"),
             MountPoint(TMPFS, "/tmp2")]  # fmt: skip
    config = {"Volumes": {"/img": {}, "/shared": {}, "/over": {}}}
    hc = {"VolumesFrom": ["other:ro"], "Binds": ["/h:/over"]}
    points = {p.destination: p for p in plan(config, hc, lambda ref: other)}
    assert set(points) == {"/img", "/shared", "/over"}
    assert points["/img"].anonymous
    assert (points["/shared"].name, points["/shared"].rw, points["/shared"].mode) == ("vol", False, "")
    assert points["/over"].type == BIND
    for hc in ({"Binds": ["/a:/x", "v:/x"]}, {"Binds": ["/a:/x"], "Mounts": [{"Type": "tmpfs", "Target": "/x"}]},
               {"Binds": ["/a:/x"], "Tmpfs": {"/x": ""}}):  # fmt: skip
        with pytest.raises(InvalidArgument, match="Duplicate mount point: /x"):
            plan({}, hc, lambda ref: [])


def test_volumes_from_mode() -> None:
    src = [MountPoint(BIND, "/b", "/h", rw=True, mode="rw", propagation="rprivate")]
    assert inherited(src, "")[0].rw and not inherited(src, "ro")[0].rw
    with pytest.raises(InvalidArgument, match="invalid mode: xx"):
        plan({}, {"VolumesFrom": ["c:xx"]}, lambda ref: src)


def test_oci_mounts_parents_first_and_after_defaults() -> None:
    points = [
        MountPoint(BIND, "/a/b/c", "/h1", rw=False, propagation="rprivate"),
        MountPoint(VOLUME, "/a", "/vol/_data", name="v"),
        MountPoint(TMPFS, "/a/t", spec={"Type": "tmpfs", "Target": "/a/t", "TmpfsOptions": {"SizeBytes": 4096}}),
    ]
    got = oci_mounts(points)
    assert [m["destination"] for m in got] == ["/a", "/a/t", "/a/b/c"]
    assert got[0] == {"destination": "/a", "type": "bind", "source": "/vol/_data", "options": ["rbind"]}
    assert got[2]["options"] == ["rbind", "ro", "rprivate"]
    assert got[1]["options"] == ["noexec", "nosuid", "nodev", "rprivate", "size=4k"]
    inputs = SpecInputs("c" * 64, {}, {"Tmpfs": {"/z": ""}}, "/nonexistent", "/h", "/hs", "/r", volume_mounts=got)
    dests = [m["destination"] for m in mounts(inputs)]
    assert dests.index("/dev/shm") < dests.index("/a") < dests.index("/z") < dests.index("/etc/resolv.conf")


def test_mount_point_round_trip() -> None:
    p = parse_bind("data:/data:ro")
    p.source = "/var/lib/hull/volumes/data/_data"
    assert MountPoint.from_config(p.to_config()) == p
    assert p.to_api() == {"Type": "volume", "Name": "data", "Source": p.source, "Destination": "/data",
                          "Driver": "local", "Mode": "ro", "RW": False, "Propagation": ""}  # fmt: skip


def test_cli_mount_flag() -> None:
    assert parse_mount_flag("type=bind,src=/h,dst=/c,readonly,bind-propagation=rshared") == {
        "Type": "bind", "Source": "/h", "Target": "/c", "ReadOnly": True,
        "BindOptions": {"Propagation": "rshared"}}  # fmt: skip
    assert parse_mount_flag("target=/v,volume-label=a=b,volume-nocopy") == {
        "Type": "volume", "Target": "/v", "VolumeOptions": {"Labels": {"a": "b"}, "NoCopy": True}}  # fmt: skip
    assert parse_mount_flag("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770")["TmpfsOptions"] == {
        "SizeBytes": 1 << 20, "Mode": 0o1770}  # fmt: skip
    for text, message in (
        ("type=volume,src=x,dst=/y,foo=bar", "unexpected key 'foo' in 'foo=bar'"),
        ("type=bind,src=/x", "target is required"),
        ("type=volume,dst=/y,bind-propagation=shared", "cannot mix 'bind-*' options with mount type 'volume'"),
        ("type=bind,dst=/y,src", "invalid field 'src' must be a key=value pair"),
    ):
        with pytest.raises(CLIError) as e:
            parse_mount_flag(text)
        assert str(e.value) == f'invalid argument "{text}" for "--mount" flag: {message}'
