"""System endpoints: /_ping, /version, /info, /events, /system/df."""

import os
import platform
import time
from typing import Any

from aiohttp import web

from hull.api import params, routing, streams, version
from hull.api.containers import parse_time, summary
from hull.daemon.events import EventFilter
from hull.errors import InvalidArgument
from hull.images.inspect import list_images

_EVENT_FILTERS = ("type", "event", "container", "image", "label", "daemon", "network", "volume", "plugin", "scope")


async def ping(request: web.Request) -> web.StreamResponse:
    headers = {
        "Builder-Version": "1",
        "Swarm": "inactive",
        "Cache-Control": "no-cache, no-store, must-revalidate",
        "Pragma": "no-cache",
    }
    if request.method == "HEAD":
        return web.Response(status=200, headers={**headers, "Content-Type": "text/plain; charset=utf-8"})
    return web.Response(text="OK", headers=headers)


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


async def version_info(request: web.Request) -> web.StreamResponse:
    kernel = platform.release()
    details = {
        "ApiVersion": version.API_VERSION,
        "Arch": _arch(),
        "BuildTime": "",
        "Experimental": "false",
        "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}",
        "KernelVersion": kernel,
        "MinAPIVersion": version.MIN_API_VERSION,
        "Os": "linux",
    }
    return web.json_response(
        {
            "Platform": {"Name": "hull"},
            "Components": [{"Name": "Engine", "Version": version.ENGINE_VERSION, "Details": details}],
            "Version": version.ENGINE_VERSION,
            "ApiVersion": version.API_VERSION,
            "MinAPIVersion": version.MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": details["GoVersion"],
            "Os": "linux",
            "Arch": _arch(),
            "KernelVersion": kernel,
            "BuildTime": "",
        }
    )


def _mem_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.partition("=")[2].strip().strip('"')
    except OSError:
        pass
    return "Linux"


async def info(request: web.Request) -> web.StreamResponse:
    daemon = routing.daemon(request)
    containers = daemon.containers.all()
    running = sum(1 for c in containers if c.state.running and not c.state.paused)
    paused = sum(1 for c in containers if c.state.paused)
    images = await daemon.blocking(daemon.images.images.list)
    config = daemon.config
    runtimes: dict[str, Any] = {"hull": {"path": "hull-runtime"}, "runc": {"path": "runc"}}
    runtimes.update({name: {"path": path} for name, path in config.runtimes.items()})
    return web.json_response(
        {
            "ID": _daemon_id(daemon.root.path),
            "Containers": len(containers),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": len(containers) - running - paused,
            "Images": len(images),
            "Driver": daemon.root.driver,
            "DriverStatus": [["Backing Filesystem", "extfs"]] if daemon.root.driver == "overlay2" else [],
            "Plugins": {"Volume": ["local"], "Network": ["host", "none"], "Log": ["json-file"]},
            "MemoryLimit": True,
            "SwapLimit": os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "CPUShares": True,
            "CPUSet": True,
            "PidsLimit": True,
            "IPv4Forwarding": True,
            "Debug": config.log_level == "debug",
            "NFd": len(os.listdir("/proc/self/fd")),
            "NGoroutines": 0,
            "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1",
            "KernelVersion": platform.release(),
            "OperatingSystem": _os_name(),
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": platform.machine(),
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "IndexConfigs": {},
                "InsecureRegistryCIDRs": ["127.0.0.0/8", *(r for r in config.insecure_registries if "/" in r)],
                "Mirrors": [],
            },
            "NCPU": os.cpu_count() or 1,
            "MemTotal": _mem_total(),
            "DockerRootDir": daemon.root.path,
            "Name": platform.node(),
            "Labels": [],
            "ExperimentalBuild": False,
            "ServerVersion": version.ENGINE_VERSION,
            "Runtimes": runtimes,
            "DefaultRuntime": config.default_runtime,
            "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": False},
            "LiveRestoreEnabled": True,
            "Isolation": "",
            "InitBinary": "",
            "SecurityOptions": ["name=seccomp,profile=builtin"],
            "Warnings": daemon.warnings or None,
        }
    )


def _daemon_id(data_root: str) -> str:
    """A stable id for this daemon, kept in the data root (Docker keeps engine-id there)."""
    from hull.fsutil import atomic_write

    path = os.path.join(data_root, "engine-id")
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        import uuid

        value = str(uuid.uuid4())
        atomic_write(path, value.encode())
        return value


async def events(request: web.Request) -> web.StreamResponse:
    filters = params.query_filters(request)
    for key in filters:
        if key not in _EVENT_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
    since_text = params.query_str(request, "since")
    until_text = params.query_str(request, "until")
    since = parse_time(since_text) if since_text else None
    until = parse_time(until_text) if until_text else None
    response = await streams.json_lines(request)
    async for ev in routing.daemon(request).events.stream(since, until, EventFilter(filters)):
        await streams.write_json_line(response, ev.to_json())
    await response.write_eof()
    return response


async def disk_usage(request: web.Request) -> web.StreamResponse:
    daemon = routing.daemon(request)
    containers = daemon.containers.all()
    images = await daemon.blocking(list_images, daemon.images, all=True, shared_size=True)
    uses: dict[str, int] = {}
    for c in containers:
        uses[c.image_id] = uses.get(c.image_id, 0) + 1
    db = daemon.images.layers.db
    layers_size = sum(db.get(chain_id).size for chain_id in await daemon.blocking(db.list))
    now = time.time()
    container_items = []
    for c in containers:
        item = summary(c, now)
        item["SizeRw"] = await daemon.blocking(daemon.images.layers.rw_size, c.id)
        container_items.append(item)
    image_items = []
    for image in images:
        d: dict[str, Any] = dict(image)
        d["Containers"] = uses.get(d["Id"], 0)
        image_items.append(d)
    return web.json_response(
        {
            "LayersSize": layers_size,
            "Images": image_items,
            "Containers": container_items,
            "Volumes": await daemon.volumes.disk_usage(),
            "BuildCache": [],
        }
    )


def add_routes(router: web.UrlDispatcher) -> None:
    add = routing.add
    add(router, "GET", "/_ping", ping)
    add(router, "HEAD", "/_ping", ping)
    add(router, "GET", "/version", version_info)
    add(router, "GET", "/info", info)
    add(router, "GET", "/events", events)
    add(router, "GET", "/system/df", disk_usage)
