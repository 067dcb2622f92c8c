"""Volumes and mounts on a private hulld, through the Docker SDK, the official docker CLI and `hull`:
the issue's scenarios (named volume data outlives its container; a :ro bind refuses writes), copy-up,
anonymous volumes, tmpfs, --volumes-from, prune, the local driver's options, bad input, a restart."""

import json
import os
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import urlencode

import docker
import docker.errors
import pytest

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container

ANONYMOUS_LABEL = "com.docker.volume.anonymous"


def docker_cli(hulld: HullDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    return hulld.cli("docker", *args)


def hull(hulld: HullDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    return hulld.cli("hull", *args)


def volume_names(hulld: HullDaemon) -> set[str]:
    status, body = hulld.request("GET", "/volumes")
    assert status == 200
    return {v["Name"] for v in body["Volumes"]}


# --- the issue's scenarios -------------------------------------------------------------------------


def test_named_volume_outlives_its_container_sdk(sdk: docker.DockerClient, hulld: HullDaemon) -> None:
    out = sdk.containers.run("busybox", ["sh", "-c", "echo kept > /data/f"], volumes={"sdkdata": {"bind": "/data"}},
                             remove=True)  # fmt: skip
    assert out == b""
    v = sdk.volumes.get("sdkdata")
    assert v.attrs["Driver"] == "local" and v.attrs["Scope"] == "local"
    assert v.attrs["Mountpoint"] == str(hulld.data_root / "volumes" / "sdkdata" / "_data")
    assert sdk.containers.run("busybox", ["cat", "/data/f"], volumes=["sdkdata:/data:ro"], remove=True) == b"kept\n"
    c = sdk.containers.create("busybox", ["true"], volumes=["sdkdata:/data"])
    with pytest.raises(docker.errors.APIError) as e:
        v.remove()
    assert e.value.status_code == 409
    assert e.value.explanation == f"remove sdkdata: volume is in use - [{c.id}]"
    c.remove()
    v.remove()
    assert "sdkdata" not in volume_names(hulld)
    assert not (hulld.data_root / "volumes" / "sdkdata").exists()


def test_ro_bind_refuses_writes_sdk(sdk: docker.DockerClient, tmp_path: Path) -> None:
    with pytest.raises(docker.errors.ContainerError) as e:
        sdk.containers.run("busybox", ["sh", "-c", "echo x > /ro/f"], volumes={str(tmp_path): {"bind": "/ro",
                           "mode": "ro"}}, remove=True)  # fmt: skip
    assert e.value.exit_status != 0 and b"Read-only file system" in e.value.stderr
    assert not (tmp_path / "f").exists()
    # ...and a rw bind writes through to the host
    sdk.containers.run("busybox", ["sh", "-c", "echo y > /rw/f"], volumes=[f"{tmp_path}:/rw"], remove=True)
    assert (tmp_path / "f").read_text() == "y\n"


def test_sdk_volume_collection(sdk: docker.DockerClient) -> None:
    v = sdk.volumes.create("sdkcol", labels={"team": "a"})
    assert v.attrs["Labels"] == {"team": "a"} and v.attrs["Options"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", v.attrs["CreatedAt"])
    assert [x.name for x in sdk.volumes.list(filters={"label": "team=a"})] == ["sdkcol"]
    assert sdk.volumes.create("sdkcol").attrs["Labels"] == {"team": "a"}  # an existing name: that volume
    v.remove()
    with pytest.raises(docker.errors.NotFound):
        sdk.volumes.get("sdkcol")


def test_docker_cli_scenario(hulld: HullDaemon, tmp_path: Path) -> None:
    assert docker_cli(hulld, "volume", "create", "--label", "k=v", "clivol").stdout == "clivol\n"
    ls = docker_cli(hulld, "volume", "ls")
    assert ls.stdout.splitlines()[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert ["local", "clivol"] in [line.split() for line in ls.stdout.splitlines()]
    info = json.loads(docker_cli(hulld, "volume", "inspect", "clivol").stdout)[0]
    assert set(info) == {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}
    assert (info["Name"], info["Labels"], info["Scope"]) == ("clivol", {"k": "v"}, "local")
    r = docker_cli(hulld, "run", "--rm", "-v", "clivol:/data", "busybox", "sh", "-c", "echo one > /data/f")
    assert r.returncode == 0, r.stderr
    r = docker_cli(hulld, "run", "--name", "cli-vol-user", "-v", "clivol:/data", "busybox", "cat", "/data/f")
    assert r.stdout == "one\n", r.stderr
    rm = docker_cli(hulld, "volume", "rm", "clivol")
    assert rm.returncode == 1 and "volume is in use" in rm.stderr
    assert docker_cli(hulld, "rm", "cli-vol-user").returncode == 0
    assert docker_cli(hulld, "volume", "rm", "clivol").stdout == "clivol\n"
    r = docker_cli(hulld, "run", "--rm", "-v", f"{tmp_path}:/ro:ro", "busybox", "sh", "-c", "echo x > /ro/f")
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    missing = docker_cli(hulld, "volume", "inspect", "clivol")
    assert missing.returncode == 1 and "get clivol: no such volume" in missing.stderr


# --- details Docker users expect ------------------------------------------------------------------


def test_inspect_mounts_as_docker(hulld: HullDaemon, tmp_path: Path) -> None:
    r = docker_cli(hulld, "create", "--name", "mounts-insp", "-v", f"{tmp_path}:/b:ro", "-v", "/anon", "-v",
                   "insp-nv:/n:ro,nocopy", "--mount", "type=volume,src=insp-mv,dst=/mv", "--mount",
                   f"type=bind,src={tmp_path},dst=/b2", "--mount", "type=tmpfs,dst=/t", "busybox", "true")  # fmt: skip
    assert r.returncode == 0, r.stderr
    try:
        listed = json.loads(docker_cli(hulld, "inspect", "mounts-insp").stdout)[0]["Mounts"]
        mounts = {m["Destination"]: m for m in listed}
        vols = hulld.data_root / "volumes"
        anon = mounts["/anon"]["Name"]
        assert re.fullmatch(r"[0-9a-f]{64}", anon)
        assert mounts == {
            "/b": {"Type": "bind", "Source": str(tmp_path), "Destination": "/b", "Mode": "ro", "RW": False,
                   "Propagation": "rprivate"},
            "/anon": {"Type": "volume", "Name": anon, "Source": f"{vols}/{anon}/_data", "Destination": "/anon",
                      "Driver": "local", "Mode": "", "RW": True, "Propagation": ""},
            "/n": {"Type": "volume", "Name": "insp-nv", "Source": f"{vols}/insp-nv/_data", "Destination": "/n",
                   "Driver": "local", "Mode": "ro,nocopy", "RW": False, "Propagation": ""},
            "/mv": {"Type": "volume", "Name": "insp-mv", "Source": f"{vols}/insp-mv/_data", "Destination": "/mv",
                    "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""},
            "/b2": {"Type": "bind", "Source": str(tmp_path), "Destination": "/b2", "Mode": "", "RW": True,
                    "Propagation": "rprivate"},
            "/t": {"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "", "RW": True, "Propagation": ""},
        }  # fmt: skip
        _, anon_info = hulld.request("GET", f"/volumes/{anon}")
        assert anon_info["Labels"] == {ANONYMOUS_LABEL: ""}
        # rm -v: the anonymous volume goes, the named ones stay
        assert docker_cli(hulld, "rm", "-v", "mounts-insp").returncode == 0
        names = volume_names(hulld)
        assert anon not in names and {"insp-nv", "insp-mv"} <= names
    finally:
        docker_cli(hulld, "rm", "-f", "mounts-insp")
        docker_cli(hulld, "volume", "rm", "insp-nv", "insp-mv")


def test_copy_up_into_new_volume(hulld: HullDaemon) -> None:
    r = docker_cli(hulld, "run", "--rm", "-v", "copyup:/etc", "busybox", "cat", "/etc/passwd")
    assert r.returncode == 0 and "root:" in r.stdout, r.stderr
    on_host = hulld.data_root / "volumes" / "copyup" / "_data"
    assert "root:" in (on_host / "passwd").read_text()
    # Only into an empty volume: a file the next container removed stays removed.
    assert docker_cli(hulld, "run", "--rm", "-v", "copyup:/x", "busybox", "rm", "/x/passwd").returncode == 0
    assert docker_cli(hulld, "run", "--rm", "-v", "copyup:/etc", "busybox", "ls", "/etc/passwd").returncode != 0
    r = docker_cli(hulld, "run", "--rm", "-v", "nocopyup:/etc:nocopy", "busybox", "ls", "/etc")
    assert r.stdout.split() == ["hostname", "hosts", "resolv.conf"]
    assert docker_cli(hulld, "volume", "rm", "copyup", "nocopyup").returncode == 0


def test_rm_flag_removes_anonymous_volumes(hulld: HullDaemon) -> None:
    before = volume_names(hulld)
    r = docker_cli(hulld, "run", "--rm", "-v", "/anon", "-v", "rmkeep:/keep", "busybox", "touch", "/anon/f")
    assert r.returncode == 0, r.stderr
    assert volume_names(hulld) == before | {"rmkeep"}
    assert docker_cli(hulld, "volume", "rm", "rmkeep").returncode == 0


def test_tmpfs_mounts(hulld: HullDaemon) -> None:
    r = docker_cli(hulld, "run", "--rm", "--tmpfs", "/x:size=1m", "--mount", "type=tmpfs,dst=/y,tmpfs-size=2m",
                   "busybox", "cat", "/proc/mounts")  # fmt: skip
    lines = {line.split()[1]: line.split() for line in r.stdout.splitlines()}
    assert lines["/x"][2] == "tmpfs" and "size=1024k" in lines["/x"][3]
    assert lines["/y"][2] == "tmpfs" and "size=2048k" in lines["/y"][3]


def test_volumes_from(hulld: HullDaemon, tmp_path: Path) -> None:
    r = docker_cli(hulld, "create", "--name", "vf-src", "-v", "/anon", "-v", f"{tmp_path}:/b", "busybox", "true")
    assert r.returncode == 0, r.stderr
    try:
        r = docker_cli(hulld, "run", "--rm", "--volumes-from", "vf-src:ro", "busybox", "sh", "-c",
                       "grep -e ' /anon ' -e ' /b ' /proc/mounts; touch /b/f")  # fmt: skip
        opts = {line.split()[1]: line.split()[3].split(",")[0] for line in r.stdout.splitlines()}
        assert opts == {"/anon": "ro", "/b": "ro"} and r.returncode != 0
        r = docker_cli(hulld, "run", "--rm", "--volumes-from", "vf-src", "busybox", "touch", "/b/f", "/anon/f")
        assert r.returncode == 0 and (tmp_path / "f").exists()
        r = docker_cli(hulld, "run", "--rm", "--volumes-from", "nosuch", "busybox", "true")
        assert r.returncode != 0
    finally:
        docker_cli(hulld, "rm", "-v", "vf-src")


def test_prune(hulld: HullDaemon) -> None:
    assert docker_cli(hulld, "create", "--name", "prune-user", "-v", "/inuse", "busybox", "true").returncode == 0
    try:
        anon = docker_cli(hulld, "create", "-v", "/a", "busybox", "true").stdout.strip()
        docker_cli(hulld, "rm", anon)  # without -v: its anonymous volume stays, unused
        hulld.request("POST", "/volumes/create", body=json.dumps({"Name": "prune-named"}).encode(),
                      headers={"Content-Type": "application/json"})  # fmt: skip
        in_use = volume_names(hulld)
        r = docker_cli(hulld, "volume", "prune", "-f")  # API 1.43: anonymous volumes only
        assert r.returncode == 0 and r.stdout.startswith("Deleted Volumes:\n")
        after = volume_names(hulld)
        assert "prune-named" in after and len(in_use - after) == 1
        status, body = hulld.request("POST", "/v1.41/volumes/prune")  # before 1.42: every unused volume
        assert status == 200 and "prune-named" in body["VolumesDeleted"]
        status, body = hulld.request("GET", "/volumes?" + urlencode({"filters": json.dumps({"dangling": ["false"]})}))
        assert [v["Labels"] for v in body["Volumes"]] == [{ANONYMOUS_LABEL: ""}]
    finally:
        docker_cli(hulld, "rm", "-v", "prune-user")


def test_local_driver_tmpfs_volume(hulld: HullDaemon) -> None:
    r = docker_cli(hulld, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", "tmpvol")
    assert r.returncode == 0, r.stderr
    data = str(hulld.data_root / "volumes" / "tmpvol" / "_data")
    try:
        info = json.loads(docker_cli(hulld, "volume", "inspect", "tmpvol").stdout)[0]
        assert info["Options"] == {"device": "tmpfs", "o": "size=1m", "type": "tmpfs"}
        assert docker_cli(hulld, "run", "-d", "--name", "tmpvol-user", "-v", "tmpvol:/x", "busybox", "sleep",
                          "60").returncode == 0  # fmt: skip
        r = docker_cli(hulld, "exec", "tmpvol-user", "grep", " /x ", "/proc/mounts")
        assert r.stdout.split()[2] == "tmpfs" and "size=1024k" in r.stdout
        assert any(line.split()[1] == data for line in Path("/proc/mounts").read_text().splitlines())
        docker_cli(hulld, "rm", "-f", "tmpvol-user")
        assert not os.path.ismount(data)  # the last user gone: unmounted
    finally:
        docker_cli(hulld, "rm", "-f", "tmpvol-user")
        docker_cli(hulld, "volume", "rm", "tmpvol")


def test_bad_input(hulld: HullDaemon) -> None:
    before_volumes = volume_names(hulld)
    before_containers = set(os.listdir(hulld.data_root / "containers"))
    cases = [
        (["run", "--rm", "-v", "bad$name:/x", "busybox", "true"],
         'create bad$name: "bad$name" includes invalid characters for a local volume name'),
        (["run", "--rm", "-v", "rel/dir:/x", "busybox", "true"], "If you intended to pass a host directory"),
        (["run", "--rm", "--mount", "type=bind,src=/nonexistent-hull,dst=/y", "busybox", "true"],
         'invalid mount config for type "bind": bind source path does not exist: /nonexistent-hull'),
        (["run", "--rm", "--mount", "type=volume,src=x,dst=/y,foo=bar", "busybox", "true"],
         "unexpected key 'foo' in 'foo=bar'"),
        (["run", "--rm", "-v", "okvol:/x", "-v", "/tmp:/x", "busybox", "true"], "Duplicate mount point: /x"),
        (["volume", "create", "-o", "foo=bar", "optvol"], 'create optvol: invalid option: "foo"'),
        (["volume", "create", "-d", "nodriver", "drvvol"], 'plugin "nodriver" not found'),
        (["volume", "rm", "nosuchvol"], "get nosuchvol: no such volume"),
    ]  # fmt: skip
    for args, message in cases:
        for program in ("docker", "hull"):
            r = hulld.cli(program, *args)
            assert r.returncode != 0 and message in r.stderr, (program, args, r.stderr)
    assert volume_names(hulld) == before_volumes  # nothing half-made
    assert set(os.listdir(hulld.data_root / "containers")) == before_containers


def test_bind_source_made_for_dash_v(hulld: HullDaemon, tmp_path: Path) -> None:
    src = tmp_path / "made" / "here"
    r = docker_cli(hulld, "run", "--rm", "-v", f"{src}:/m", "busybox", "touch", "/m/f")
    assert r.returncode == 0, r.stderr
    assert (src / "f").exists()


def test_hull_cli_volumes(hulld: HullDaemon) -> None:
    assert hull(hulld, "volume", "create", "--label", "a=1", "hullvol").stdout == "hullvol\n"
    assert "hullvol" in hull(hulld, "volume", "ls", "-q").stdout.split()
    r = hull(hulld, "volume", "ls", "--filter", "label=a=1", "--format", "{{.Name}} {{.Driver}} {{.Labels}}")
    assert r.stdout == "hullvol local a=1\n"
    assert hull(hulld, "volume", "inspect", "-f", "{{.Name}} {{.Scope}}", "hullvol").stdout == "hullvol local\n"
    r = hull(hulld, "run", "--rm", "--mount", "type=volume,src=hullvol,dst=/v", "busybox", "sh", "-c",
             "echo hi > /v/f && cat /v/f")  # fmt: skip
    assert r.stdout == "hi\n", r.stderr
    r = hull(hulld, "run", "--name", "hull-rmv", "-v", "/anon", "busybox", "true")
    assert r.returncode == 0, r.stderr
    _, info = hulld.request("GET", "/containers/hull-rmv/json")
    anon = info["Mounts"][0]["Name"]
    assert hull(hulld, "rm", "-v", "hull-rmv").returncode == 0
    assert anon not in volume_names(hulld)
    assert hull(hulld, "volume", "rm", "hullvol").stdout == "hullvol\n"
    r = hull(hulld, "volume", "prune", "-f")
    assert r.returncode == 0 and "Total reclaimed space:" in r.stdout


def test_mounts_survive_restart(own_hulld: HullDaemon) -> None:
    d = own_hulld
    r = d.cli("docker", "run", "-d", "--name", "keeper", "-v", "persist:/p", "-v", "/anon", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr
    before = json.loads(d.cli("docker", "inspect", "keeper").stdout)[0]["Mounts"]
    d.restart()
    after = json.loads(d.cli("docker", "inspect", "keeper").stdout)[0]["Mounts"]
    assert after == before
    rm = d.cli("docker", "volume", "rm", "persist")
    assert rm.returncode == 1 and "volume is in use" in rm.stderr  # its users were counted again
    assert d.cli("docker", "rm", "-f", "-v", "keeper").returncode == 0
    assert d.cli("docker", "volume", "ls", "-q").stdout == "persist\n"


def test_df_ps_filter_and_events(sdk: docker.DockerClient, hulld: HullDaemon) -> None:
    since = int(time.time())
    c = sdk.containers.create("busybox", ["true"], volumes=["dfvol:/d"])
    try:
        df = {v["Name"]: v for v in sdk.df()["Volumes"]}
        assert df["dfvol"]["UsageData"] == {"Size": 0, "RefCount": 1}
        assert [x.id for x in sdk.containers.list(all=True, filters={"volume": "dfvol"})] == [c.id]
        assert [x.id for x in sdk.containers.list(all=True, filters={"volume": "/d"})] == [c.id]
    finally:
        c.remove()
    sdk.volumes.get("dfvol").remove()
    events = sdk.events(since=since, until=int(time.time()) + 1, decode=True,
                        filters={"type": "volume", "volume": "dfvol"})  # fmt: skip
    assert [e["Action"] for e in events] == ["create", "destroy"]


def test_bind_propagation(hulld: HullDaemon, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    r = docker_cli(hulld, "run", "--rm", "-v", f"{src}:/s:rshared", "busybox", "true")
    assert r.returncode != 0 and "but it is not a shared mount" in r.stderr
    subprocess.run(["mount", "--bind", str(src), str(src)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(src)], check=True)
        r = docker_cli(hulld, "run", "--rm", "-v", f"{src}:/s:rshared", "busybox", "grep", " /s ",
                       "/proc/self/mountinfo")  # fmt: skip
        assert r.returncode == 0 and "shared:" in r.stdout, r.stderr
        r = docker_cli(hulld, "run", "--rm", "-v", f"{src}:/s:rslave", "busybox", "true")
        assert r.returncode == 0, r.stderr
    finally:
        subprocess.run(["umount", "-R", str(src)], check=False)
