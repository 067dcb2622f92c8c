"""The files a container gets from the daemon: /etc/hostname, /etc/hosts and /etc/resolv.conf.

They live in the container's directory (containers/<id>/) and are bind-mounted over the
init layer's placeholders, as Docker does, so `docker cp` and edits inside survive restarts.
"""

import os

from hull.containers.record import HOSTNAME_FILE, HOSTS_FILE, RESOLV_CONF_FILE
from hull.fsutil import atomic_write

HOST_RESOLV_CONF = "/etc/resolv.conf"
# Docker's fallback when the host's resolvers are all on loopback (unreachable from a netns).
DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")

HOSTS_BASE = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def hosts_content(extra: list[tuple[str, str]]) -> str:
    """The base entries, then `ip\\thostnames` lines (the container's own address, --add-host)."""
    return HOSTS_BASE + "".join(f"{ip}\t{names}\n" for ip, names in extra)


def resolv_conf_content(host_network: bool, dns: list[str], search: list[str], options: list[str]) -> str:
    """The host's resolv.conf, adapted as Docker adapts it.

    With the host's network the file is copied as it is. Otherwise loopback nameservers are
    dropped (they are unreachable from the container's namespace) and Docker's public
    defaults fill in if none remain; --dns/--dns-search/--dns-option replace their kind.
    """
    try:
        with open(HOST_RESOLV_CONF) as f:
            host = f.read()
    except OSError:
        host = ""
    if host_network and not (dns or search or options):
        return host
    servers, searches, opts, other = [], [], [], []
    for line in host.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            searches = words[1:]
        elif words[0] == "options":
            opts = words[1:]
        else:
            other.append(line)
    if not host_network:
        servers = [s for s in servers if not (s.startswith("127.") or s == "::1")] or list(DEFAULT_NAMESERVERS)
    servers = dns or servers
    searches = search or searches
    opts = options or opts
    out = [f"nameserver {s}" for s in servers]
    if searches:
        out.append("search " + " ".join(searches))
    if opts:
        out.append("options " + " ".join(opts))
    return "\n".join(other + out) + "\n"


def write_container_files(directory: str, hostname: str, hosts: str, resolv_conf: str) -> None:
    atomic_write(os.path.join(directory, HOSTNAME_FILE), (hostname + "\n").encode(), fsync=False)
    atomic_write(os.path.join(directory, HOSTS_FILE), hosts.encode(), fsync=False)
    atomic_write(os.path.join(directory, RESOLV_CONF_FILE), resolv_conf.encode(), fsync=False)
