"""Names for containers created without --name: `adjective_surname`, as Docker makes them.

The lists are hull's own (Docker's name generator has its own lists; only the shape is shared).
Names must match Docker's rule for user-chosen names as well: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
"""

import random
import re

NAME_PATTERN = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

ADJECTIVES = (
    "agile", "amber", "bold", "brave", "bright", "calm", "clever", "cosmic", "crisp", "curious",
    "daring", "eager", "earnest", "fervent", "fierce", "gentle", "glad", "golden", "happy", "hardy",
    "humble", "jolly", "keen", "kind", "lively", "lucid", "merry", "mighty", "nimble", "noble",
    "patient", "plucky", "proud", "quiet", "rapid", "serene", "sharp", "steady", "swift", "tender",
    "tidy", "vivid", "warm", "wise", "witty", "zealous",
)  # fmt: skip

SURNAMES = (
    "agnesi", "archimedes", "babbage", "bohr", "boole", "cantor", "curie", "darwin", "dijkstra",
    "einstein", "euclid", "euler", "faraday", "fermat", "feynman", "gauss", "germain", "hamilton",
    "hopper", "hypatia", "kepler", "knuth", "kovalevskaya", "lamarr", "leibniz", "lovelace",
    "maxwell", "meitner", "mendel", "newton", "noether", "pascal", "planck", "ramanujan", "riemann",
    "ritchie", "shannon", "somerville", "tesla", "thompson", "turing", "volta", "wozniak", "yalow",
)  # fmt: skip


def random_name(attempt: int = 0) -> str:
    """A fresh name; after a clash the caller retries with attempt > 0 and gets a digit appended."""
    name = f"{random.choice(ADJECTIVES)}_{random.choice(SURNAMES)}"
    return f"{name}{random.randint(0, 9)}" if attempt else name


def valid_name(name: str) -> bool:
    return bool(NAME_PATTERN.match(name))
