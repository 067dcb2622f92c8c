"""Fixtures of the shim tests: `shim_env`, a ShimEnv over the `bundle` fixture, cleaned up whatever happens."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from shimtest import ShimEnv, standin_path


@pytest.fixture(scope="session")
def _jsonlog_standin(tmp_path_factory: pytest.TempPathFactory) -> str:
    return standin_path(tmp_path_factory.mktemp("standin"))


@pytest.fixture
def shim_env(tmp_path: Path, bundle: Path, _jsonlog_standin: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ShimEnv]:
    # The forkserver is a new interpreter: this is how it finds the stand-in (a no-op once the real module exists).
    monkeypatch.setenv("PYTHONPATH", _jsonlog_standin)
    env = ShimEnv(tmp_path, bundle)
    try:
        yield env
    finally:
        env.cleanup()
