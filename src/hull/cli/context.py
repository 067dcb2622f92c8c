"""What every verb gets: the host, and a client created (and the daemon auto-started) on first use."""

from __future__ import annotations

import sys

from hull.cli.client import APIClient, ConnectError


class Context:
    def __init__(self, host: str, explicit: bool, debug: bool = False) -> None:
        self.host = host
        self.explicit = explicit
        self.debug = debug
        self._client: APIClient | None = None

    @property
    def client(self) -> APIClient:
        """The API client, its version negotiated; starts hulld when the default socket does not answer."""
        if self._client is None:
            client = APIClient(self.host)
            try:
                _ = client.version
            except ConnectError:
                if self.explicit:
                    raise
                from hull.cli import autostart

                if not autostart.start_daemon(client):
                    raise
                _ = client.version
            self._client = client
        return self._client

    @staticmethod
    def err(message: str) -> None:
        sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()
