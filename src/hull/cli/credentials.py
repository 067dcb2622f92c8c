"""Registry credentials as the docker CLI keeps them: `auths` in ~/.docker/config.json.

The file's shape is Docker's ({"auths": {"<registry>": {"auth": base64("user:password")}}},
Docker Hub under "https://index.docker.io/v1/"), so `docker login` and `hull login` share it.
The directory is $DOCKER_CONFIG, else ~/.docker; writes are atomic (temp file, rename) and
keep whatever else the file holds. Pull and push send the registry's entry to the daemon as
X-Registry-Auth: base64url JSON {"username", "password", "serveraddress"} ("{}" when none).
"""

from __future__ import annotations

import base64
import json
import os

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
ANONYMOUS = base64.urlsafe_b64encode(b"{}").decode()


def config_path() -> str:
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")


def server_key(registry: str) -> str:
    """The config's key for a registry domain (docker.io and friends → the legacy index URL)."""
    return DOCKER_HUB_KEY if registry in ("", "docker.io", "index.docker.io", "registry-1.docker.io") else registry


def _load() -> dict[str, object]:
    try:
        with open(config_path()) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def _save(data: dict[str, object]) -> None:
    path = config_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(data, f, indent="\t")
    os.replace(tmp, path)


def _auths(data: dict[str, object]) -> dict[str, dict[str, str]]:
    auths = data.get("auths")
    if not isinstance(auths, dict):
        auths = {}
        data["auths"] = auths
    return auths


def store(registry: str, username: str, password: str) -> None:
    data = _load()
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    _auths(data)[server_key(registry)] = {"auth": token}
    _save(data)


def erase(registry: str) -> bool:
    """Forget a registry's credentials; False when there were none."""
    data = _load()
    found = _auths(data).pop(server_key(registry), None) is not None
    if found:
        _save(data)
    return found


def auth_header(registry: str) -> str:
    """X-Registry-Auth for a registry: its stored credentials, or anonymous."""
    entry = _auths(_load()).get(server_key(registry))
    if not isinstance(entry, dict) or not entry.get("auth"):
        return ANONYMOUS
    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    payload = {"username": user, "password": password, "serveraddress": server_key(registry)}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def registry_of(reference: str) -> str:
    """The registry domain of an image reference, as Docker splits it (docker.io by default)."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"
