"""The flags of `hull run` and `hull create`, and their mapping to the body of POST /containers/create.

The body has the shape the docker CLI sends: `{...Config, "HostConfig": {...}, "NetworkingConfig": {...}}`.
"""

from __future__ import annotations

import argparse
import os

from hull.cli import mountflag, units
from hull.cli.client import CLIError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (7 ms of every start)
if TYPE_CHECKING:
    from typing import Any


def add_flags(p: argparse.ArgumentParser, run: bool) -> None:
    a = p.add_argument
    if run:
        a("-d", "--detach", action="store_true", help="run container in background and print container ID")
        a("--rm", action="store_true", help="automatically remove the container when it exits")
        a("--sig-proxy", default="true", help="proxy received signals to the process")
        a("--detach-keys", default=None, help="override the key sequence for detaching a container")
    a("-a", "--attach", action="append", default=[], help="attach to STDIN, STDOUT or STDERR")
    a("-i", "--interactive", action="store_true", help="keep STDIN open even if not attached")
    a("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    a("--name", default="", help="assign a name to the container")
    a("-e", "--env", action="append", default=[], help="set environment variables")
    a("--env-file", action="append", default=[], help="read in a file of environment variables")
    a("-w", "--workdir", default="", help="working directory inside the container")
    a("-u", "--user", default="", help="username or UID (format: <name|uid>[:<group|gid>])")
    a("--entrypoint", default=None, help="overwrite the default ENTRYPOINT of the image")
    a("-h", "--hostname", default="", help="container host name")
    a("--domainname", default="", help="container NIS domain name")
    a("--stop-signal", default="", help="signal to stop the container")
    a("--stop-timeout", type=int, default=None, help="timeout (in seconds) to stop a container")
    a("--read-only", action="store_true", help="mount the container's root filesystem as read only")
    a("--tmpfs", action="append", default=[], help="mount a tmpfs directory")
    a("--ulimit", action="append", default=[], help="ulimit options")
    a("--privileged", action="store_true", help="give extended privileges to this container")
    a("--cap-add", action="append", default=[], help="add Linux capabilities")
    a("--cap-drop", action="append", default=[], help="drop Linux capabilities")
    a("--security-opt", action="append", default=[], help="security options")
    a("--pid", default="", help="PID namespace to use")
    a("--ipc", default="", help="IPC mode to use")
    a("--uts", default="", help="UTS namespace to use")
    a("--network", "--net", default="default", help="connect a container to a network")
    a("--network-alias", "--net-alias", action="append", default=[], help="add network-scoped alias for the container")
    a("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
    a("--link", action="append", default=[], help="add link to another container")
    a("--cgroup-parent", default="", help="optional parent cgroup for the container")
    a("--cgroupns", default="", help="cgroup namespace to use (host|private)")
    a("--cpus", default=None, help="number of CPUs")
    a("--cpu-period", type=int, default=0, help="limit CPU CFS period")
    a("--cpu-quota", type=int, default=0, help="limit CPU CFS quota")
    a("-c", "--cpu-shares", type=int, default=0, help="CPU shares (relative weight)")
    a("--cpuset-cpus", default="", help="CPUs in which to allow execution (0-3, 0,1)")
    a("--cpuset-mems", default="", help="MEMs in which to allow execution (0-3, 0,1)")
    a("-m", "--memory", default=None, help="memory limit")
    a("--memory-swap", default=None, help="swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    a("--memory-reservation", default=None, help="memory soft limit")
    a("--memory-swappiness", type=int, default=None, help="tune container memory swappiness (0 to 100)")
    a("--kernel-memory", default=None, help=argparse.SUPPRESS)
    a("--oom-kill-disable", action="store_true", help="disable OOM Killer")
    a("--pids-limit", type=int, default=None, help="tune container pids limit (set -1 for unlimited)")
    a("--blkio-weight", type=int, default=0, help="block IO (relative weight), between 10 and 1000, or 0 to disable")
    a("--log-driver", default="", help="logging driver for the container")
    a("--log-opt", action="append", default=[], help="log driver options")
    a("-l", "--label", action="append", default=[], help="set meta data on a container")
    a("--label-file", action="append", default=[], help="read in a line delimited file of labels")
    a("--init", action="store_true", default=None, help="run an init inside the container")
    a("--restart", default="no", help="restart policy to apply when a container exits")
    a("-v", "--volume", action="append", default=[], help="bind mount a volume")
    a("--volumes-from", action="append", default=[], help="mount volumes from the specified container(s)")
    a("--mount", action="append", default=[], help="attach a filesystem mount to the container")
    a("-p", "--publish", action="append", default=[], help="publish a container's port(s) to the host")
    a("-P", "--publish-all", action="store_true", help="publish all exposed ports to random ports")
    a("--expose", action="append", default=[], help="expose a port or a range of ports")
    a("--dns", action="append", default=[], help="set custom DNS servers")
    a("--dns-search", action="append", default=[], help="set custom DNS search domains")
    a("--dns-option", action="append", default=[], help="set DNS options")
    a("--add-host", action="append", default=[], help="add a custom host-to-IP mapping (host:ip)")
    a("--device", action="append", default=[], help="add a host device to the container")
    a("--shm-size", default=None, help="size of /dev/shm")
    a("--sysctl", action="append", default=[], help="sysctl options")
    a("--runtime", default="", help="runtime to use for this container")
    a("--platform", default="", help="set platform if server is multi-platform capable")
    a("--pull", default="missing", choices=["always", "missing", "never"], help="pull image before running")
    a("-q", "--quiet", action="store_true", help="suppress the pull output")
    a("--health-cmd", default="", help="command to run to check health")
    a("--health-interval", default=None, help="time between running the check")
    a("--health-retries", type=int, default=0, help="consecutive failures needed to report unhealthy")
    a("--health-timeout", default=None, help="maximum time to allow one check to run")
    a("--health-start-period", default=None, help="start period for the container to initialize")
    a("--no-healthcheck", action="store_true", help="disable any container-specified HEALTHCHECK")
    a("image", metavar="IMAGE")
    a("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")


def parse_env_file(path: str) -> list[str]:
    """docker's env-file format: KEY=value lines, '#' comments, a bare KEY takes the caller's value."""
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise CLIError(f"open {path}: {e.strerror.lower() if e.strerror else e}") from None
    for line in lines:
        text = line.lstrip()
        if not text or text.startswith("#"):
            continue
        key, sep, _ = text.partition("=")
        if not key:
            raise CLIError(f"invalid environment variable: {text}")
        if " " in key.strip() or "\t" in key:
            raise CLIError(f"variable '{key}' contains whitespaces")
        if sep:
            out.append(text)
        elif key in os.environ:
            out.append(f"{key}={os.environ[key]}")
    return out


def _env_flag(items: list[str]) -> list[str]:
    out = []
    for item in items:
        key, sep, _ = item.partition("=")
        if not key:
            raise CLIError(f"invalid environment variable: {item}")
        if sep:
            out.append(item)
        elif key in os.environ:
            out.append(f"{key}={os.environ[key]}")
    return out


def _labels(a: argparse.Namespace) -> dict[str, str]:
    items: list[str] = []
    for path in a.label_file:
        try:
            with open(path, encoding="utf-8") as f:
                items += [x.strip() for x in f if x.strip() and not x.lstrip().startswith("#")]
        except OSError as e:
            raise CLIError(f"open {path}: {e.strerror}") from None
    items += a.label
    out = {}
    for item in items:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def _duration_ns(text: str | None, flag: str) -> int:
    if not text:
        return 0
    try:
        return int(units.go_duration(text) * 1e9)
    except ValueError:
        raise CLIError(f'invalid argument "{text}" for "--{flag}" flag: time: invalid duration "{text}"') from None


def _volumes(specs: list[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """-v: a lone container path is an anonymous volume (Config.Volumes), anything else a bind (Binds)."""
    volumes: dict[str, dict[str, Any]] = {}
    binds: list[str] = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) == 1:
            if not spec.startswith("/"):
                raise CLIError(f"invalid volume specification: '{spec}'")
            volumes[spec] = {}
        elif len(parts) in (2, 3):
            if not parts[1].startswith("/"):
                raise CLIError(f"invalid volume specification: '{spec}': invalid mount config for type \"bind\"")
            binds.append(spec)
        else:
            raise CLIError(f"invalid volume specification: '{spec}'")
    return volumes, binds


def create_body(a: argparse.Namespace, detach: bool) -> dict[str, Any]:
    """The JSON body of POST /containers/create for these flags."""
    attach = [s.lower() for s in a.attach]
    for s in attach:
        if s not in ("stdin", "stdout", "stderr"):
            raise CLIError(
                f'invalid argument "{s}" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR'
            )
    if detach:
        attach_stdin = attach_stdout = attach_stderr = False
    elif attach:
        attach_stdin, attach_stdout, attach_stderr = ("stdin" in attach, "stdout" in attach, "stderr" in attach)
    else:
        attach_stdin, attach_stdout, attach_stderr = a.interactive, True, True

    env: list[str] = []
    for path in a.env_file:
        env += parse_env_file(path)
    env += _env_flag(a.env)

    entrypoint: list[str] | None = None
    if a.entrypoint is not None:
        entrypoint = [a.entrypoint] if a.entrypoint else [""]

    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in a.publish:
        for port, binding in units.port_spec(spec):
            exposed[port] = {}
            bindings.setdefault(port, []).append(binding)
    for spec in a.expose:
        port, _, proto = spec.partition("/")
        exposed[f"{port}/{proto or 'tcp'}"] = {}
    volumes, binds = _volumes(a.volume)

    tmpfs: dict[str, str] = {}
    for spec in a.tmpfs:
        path, _, opts = spec.partition(":")
        tmpfs[path] = opts

    log_config: dict[str, Any] = {"Type": a.log_driver, "Config": {}}
    for opt in a.log_opt:
        k, sep, v = opt.partition("=")
        if not sep:
            raise CLIError(f"invalid key/value pair format in logging opts: {opt}")
        log_config["Config"][k] = v

    sysctls = {}
    for s in a.sysctl:
        k, _, v = s.partition("=")
        sysctls[k] = v

    devices = []
    for d in a.device:
        parts = d.split(":")
        src = parts[0]
        dst = parts[1] if len(parts) > 1 and parts[1].startswith("/") else src
        perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
        devices.append({"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms})

    config: dict[str, Any] = {
        "Hostname": a.hostname,
        "Domainname": a.domainname,
        "User": a.user,
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
        "Tty": a.tty,
        "OpenStdin": a.interactive,
        "StdinOnce": a.interactive and attach_stdin and not detach,
        "Env": env,
        "Cmd": a.command or None,
        "Image": a.image,
        "Volumes": volumes or None,
        "WorkingDir": a.workdir,
        "Entrypoint": entrypoint,
        "OnBuild": None,
        "Labels": _labels(a),
    }
    if exposed:
        config["ExposedPorts"] = exposed
    if a.stop_signal:
        config["StopSignal"] = a.stop_signal
    if a.stop_timeout is not None:
        config["StopTimeout"] = a.stop_timeout
    if a.no_healthcheck:
        config["Healthcheck"] = {"Test": ["NONE"]}
    elif a.health_cmd or a.health_interval or a.health_timeout or a.health_start_period or a.health_retries:
        config["Healthcheck"] = {
            "Test": ["CMD-SHELL", a.health_cmd] if a.health_cmd else None,
            "Interval": _duration_ns(a.health_interval, "health-interval"),
            "Timeout": _duration_ns(a.health_timeout, "health-timeout"),
            "StartPeriod": _duration_ns(a.health_start_period, "health-start-period"),
            "Retries": a.health_retries,
        }

    network = a.network
    host: dict[str, Any] = {
        "Binds": binds or None,
        "ContainerIDFile": "",
        "LogConfig": log_config,
        "NetworkMode": network,
        "PortBindings": bindings,
        "RestartPolicy": units.restart_policy(a.restart),
        "AutoRemove": bool(getattr(a, "rm", False)),
        "VolumeDriver": "",
        "VolumesFrom": a.volumes_from or None,
        "Mounts": [mountflag.parse(m) for m in a.mount] or None,
        "CapAdd": a.cap_add or None,
        "CapDrop": a.cap_drop or None,
        "CgroupnsMode": a.cgroupns,
        "Dns": a.dns,
        "DnsOptions": a.dns_option,
        "DnsSearch": a.dns_search,
        "ExtraHosts": a.add_host or None,
        "GroupAdd": None,
        "IpcMode": a.ipc,
        "Cgroup": "",
        "Links": a.link or None,
        "OomScoreAdj": 0,
        "PidMode": a.pid,
        "Privileged": a.privileged,
        "PublishAllPorts": a.publish_all,
        "ReadonlyRootfs": a.read_only,
        "SecurityOpt": a.security_opt or None,
        "UTSMode": a.uts,
        "UsernsMode": "",
        "ShmSize": units.ram_in_bytes(a.shm_size) if a.shm_size else 0,
        "ConsoleSize": [0, 0],
        "Isolation": "",
        "CpuShares": a.cpu_shares,
        "Memory": units.ram_in_bytes(a.memory) if a.memory else 0,
        "NanoCpus": units.nano_cpus(a.cpus) if a.cpus else 0,
        "CgroupParent": a.cgroup_parent,
        "BlkioWeight": a.blkio_weight,
        "CpuPeriod": a.cpu_period,
        "CpuQuota": a.cpu_quota,
        "CpusetCpus": a.cpuset_cpus,
        "CpusetMems": a.cpuset_mems,
        "Devices": devices,
        "MemoryReservation": units.ram_in_bytes(a.memory_reservation) if a.memory_reservation else 0,
        "MemorySwap": units.memory_swap(a.memory_swap) if a.memory_swap else 0,
        "MemorySwappiness": a.memory_swappiness,
        "OomKillDisable": a.oom_kill_disable,
        "PidsLimit": a.pids_limit,
        "Ulimits": [units.ulimit(u) for u in a.ulimit] or None,
        "Tmpfs": tmpfs or None,
        "Sysctls": sysctls or None,
        "Init": a.init,
    }
    if a.runtime:
        host["Runtime"] = a.runtime
    endpoints: dict[str, Any] = {}
    if network and network not in ("default", "bridge", "host", "none") and not network.startswith("container:"):
        endpoints[network] = {}
    if a.network_alias or a.ip:
        endpoint = endpoints.setdefault(network, {})
        endpoint["Aliases"] = a.network_alias or None
        if a.ip:
            endpoint["IPAMConfig"] = {"IPv4Address": a.ip}
    return {**config, "HostConfig": host, "NetworkingConfig": {"EndpointsConfig": endpoints}}


def create_params(a: argparse.Namespace) -> dict[str, str]:
    params = {"name": a.name}
    if a.platform:
        params["platform"] = a.platform
    return params


def describe(argv: list[str]) -> str:
    import shlex  # only here: not every command pays for it

    return " ".join(shlex.quote(x) for x in argv)
