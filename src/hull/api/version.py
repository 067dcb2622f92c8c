"""API versions: the one place that says which Engine API versions hulld speaks.

Docker's clients negotiate: they read `Api-Version` from `/_ping` and use the lower of theirs
and ours. We advertise the highest version whose behaviour we implement; 1.42 is the first
where attach/exec/logs say in Content-Type whether the stream is multiplexed.
"""

from hull.errors import InvalidArgument

API_VERSION = "1.43"
MIN_API_VERSION = "1.24"
# What the daemon reports about itself in /version and the Server header.
ENGINE_VERSION = "24.0.0-hull"
SERVER_NAME = "hull"


def parse(version: str) -> tuple[int, int]:
    """'1.43' -> (1, 43); InvalidArgument for anything else."""
    major, sep, minor = version.partition(".")
    if not sep or not major.isdigit() or not minor.isdigit():
        raise InvalidArgument(f"invalid API version: {version!r}")
    return int(major), int(minor)


def check(version: str) -> None:
    """Refuse versions outside [MIN_API_VERSION, API_VERSION] with Docker's wording."""
    v = parse(version)
    if v < parse(MIN_API_VERSION):
        raise InvalidArgument(
            f"client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, "
            "please upgrade your client to a newer version"
        )
    if v > parse(API_VERSION):
        raise InvalidArgument(f"client version {version} is too new. Maximum supported API version is {API_VERSION}")


def at_least(version: str, than: str) -> bool:
    return parse(version) >= parse(than)
