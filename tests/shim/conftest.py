"""Fixtures of the shim tests: `shim_env`, a ShimEnv over the `bundle` fixture, cleaned up whatever happens."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from shimtest import ShimEnv


@pytest.fixture
def shim_env(tmp_path: Path, bundle: Path) -> Iterator[ShimEnv]:
    env = ShimEnv(tmp_path, bundle)
    try:
        yield env
    finally:
        env.cleanup()
