"""What the network tests serve and how they fetch it (imported by them as `webcheck`, as tests/runtime's `rt`)."""

import time
import urllib.request

# busybox httpd in a container, answering with its hostname.
SERVE = "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


def fetch(url: str, deadline: float = 10) -> str:
    """GET `url` from the host, retrying until `deadline` seconds pass (the server may be starting)."""
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return str(resp.read().decode())
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)
