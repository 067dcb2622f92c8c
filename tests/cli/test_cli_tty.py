"""`hull run -it`, `hull attach`, `hull start -ai` and the official docker CLI's `run -it` and
`attach` against hulld, driven through real pseudo-terminals (hull.testing.terminal) and tmux:
what the shell in the container sees (`stty size`), what the client's terminal is left with,
and what the daemon reports about the container afterwards."""

import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.testing.hulld import HullDaemon
from hull.testing.registry import LocalRegistry
from hull.testing.terminal import PtySession

HULL = str(Path(sys.executable).parent / "hull")
PROMPT = rb"/ # "



@pytest.fixture
def name(hulld: HullDaemon) -> Iterator[str]:
    n = "tty-" + uuid.uuid4().hex[:8]
    yield n
    hulld.cli("hull", "rm", "-f", n)


def state(hulld: HullDaemon, ref: str) -> dict[str, object]:
    status, info = hulld.request("GET", f"/containers/{ref}/json")
    assert status == 200, info
    return dict(info["State"])


def session(hulld: HullDaemon, *argv: str, rows: int = 24, cols: int = 80) -> PtySession:
    return PtySession([HULL if argv[0] == "hull" else argv[0], *argv[1:]], hulld.env, rows, cols)


@pytest.mark.parametrize("client", ["hull", "docker"])
def test_run_it_resize_detach_reattach_exit(hulld: HullDaemon, name: str, client: str) -> None:
    run = session(hulld, client, "run", "-it", "--name", name, "busybox", "sh", rows=24, cols=80)
    try:
        saved = run.terminal_attrs()
        run.wait_raw()  # while attached, the container's pty echoes and edits lines
        run.expect(PROMPT)
        run.send(b"echo hi\r")
        run.expect(rb"echo hi\r\nhi\r\n" + PROMPT)
        run.send(b"stty size\r")
        run.expect(rb"\r\n24 80\r\n")
        run.resize(30, 100)  # the kernel sends the client SIGWINCH
        time.sleep(0.2)
        run.send(b"stty size\r")
        run.expect(rb"\r\n30 100\r\n")
        run.send(b"\x10\x11")  # ctrl-p ctrl-q
        assert run.wait() == 0
        assert run.terminal_attrs() == saved  # the client's terminal is restored
    finally:
        run.close()
    assert state(hulld, name)["Running"] is True
    again = session(hulld, client, "attach", name, rows=30, cols=100)
    try:
        again.wait_raw()
        again.send(b"echo back\r")
        again.expect(rb"\r\nback\r\n")
        again.send(b"exit 3\r")
        assert again.wait() == 3
    finally:
        again.close()
    st = state(hulld, name)
    assert (st["Running"], st["ExitCode"]) == (False, 3)


def test_custom_detach_keys_and_held_prefix(hulld: HullDaemon, name: str) -> None:
    run = session(hulld, "hull", "run", "-it", "--detach-keys", "ctrl-x,x", "--name", name, "busybox", "sh")
    try:
        run.expect(PROMPT)
        run.send(b"\x10\x11")  # the default keys are typing now: ^P ^Q reach the shell
        run.send(b"echo ok\x18y\r")  # ctrl-x then not x: both go on (ctrl-x is nothing to busybox's sh)
        run.expect(rb"ok")
        run.send(b"\x18x")
        assert run.wait() == 0
    finally:
        run.close()
    assert state(hulld, name)["Running"] is True


def test_start_ai_and_attach_to_stopped(hulld: HullDaemon, name: str) -> None:
    created = hulld.cli("hull", "create", "-it", "--name", name, "busybox", "sh")
    assert created.returncode == 0, created.stderr
    refused = hulld.cli("hull", "attach", name)
    assert (refused.returncode, refused.stderr) == (1, "You cannot attach to a stopped container, start it first\n")
    run = session(hulld, "hull", "start", "-ai", name, rows=12, cols=40)
    try:
        run.expect(PROMPT)
        run.send(b"stty size; exit 4\r")
        run.expect(rb"12 40\r\n")
        assert run.wait() == 4
    finally:
        run.close()


def test_bad_detach_keys_create_nothing(hulld: HullDaemon, name: str) -> None:
    done = hulld.cli("hull", "run", "-it", "--detach-keys", "ctrl-", "--name", name, "busybox", "sh")
    assert (done.returncode, done.stderr) == (125, "Invalid detach keys (ctrl-) provided\n")
    assert hulld.request("GET", f"/containers/{name}/json")[0] == 404


def test_interactive_without_tty_streams_stdin_until_eof(hulld: HullDaemon) -> None:
    done = hulld.cli("hull", "run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo end", input=b"one\ntwo\n")
    assert (done.returncode, done.stdout) == (0, "one\ntwo\nend\n")


def test_sig_proxy_forwards_signals(hulld: HullDaemon, name: str) -> None:
    script = 'trap "echo got TERM; exit 7" TERM; echo ready; while true; do sleep 0.1; done'
    env = hulld.env
    proc = subprocess.Popen(
        [HULL, "run", "--name", name, "busybox", "sh", "-c", script], env=env, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 7
        assert proc.stdout.read() == b"got TERM\n"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_tmux_run_it(hulld: HullDaemon, name: str, tmp_path: Path) -> None:
    sock = str(tmp_path / "tmux.sock")
    tmux = ["tmux", "-S", sock]
    env = " ".join(f"{k}={v}" for k, v in hulld.env.items() if k in ("HULL_HOST", "DOCKER_HOST"))
    subprocess.run(
        [
            *tmux,
            "new-session",
            "-d",
            "-x",
            "90",
            "-y",
            "20",
            f"env {env} {HULL} run -it --name {name} busybox sh; echo CLIENT-EXIT=$?; sleep 30",
        ],
        check=True,
    )

    def screen_has(text: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True).stdout
            if text in shown or time.monotonic() > deadline:
                assert text in shown, shown
                return shown
            time.sleep(0.05)

    try:
        screen_has("/ #")
        subprocess.run([*tmux, "send-keys", "stty size", "Enter"], check=True)
        screen_has("20 90")
        subprocess.run([*tmux, "resize-window", "-x", "70", "-y", "15"], check=True)
        time.sleep(0.2)
        subprocess.run([*tmux, "send-keys", "stty size", "Enter"], check=True)
        screen_has("15 70")
        subprocess.run([*tmux, "send-keys", "C-p", "C-q"], check=True)
        screen_has("CLIENT-EXIT=0")
        assert state(hulld, name)["Running"] is True
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)


def test_pull_on_a_terminal_draws_a_bar_per_layer(hulld: HullDaemon, registry: LocalRegistry) -> None:
    name = f"{registry.domain}/tty/bb:1"
    made = hulld.cli("hull", "run", "--name", "tty-layer", "busybox", "sh", "-c", "head -c 300000 /dev/urandom > /blob")
    assert made.returncode == 0, made.stderr
    assert hulld.cli("hull", "commit", "tty-layer", name).returncode == 0
    hulld.cli("hull", "rm", "tty-layer")
    pushed = hulld.cli("hull", "push", name)
    assert pushed.returncode == 0, pushed.stderr
    assert hulld.cli("hull", "rmi", name).returncode == 0  # its own layer goes with it: the pull fetches it
    pull = session(hulld, "hull", "pull", name, cols=120)
    try:
        pull.expect(rb"1: Pulling from " + re.escape(name.rsplit(":", 1)[0].encode()))
        # A bar ("━") with the bytes so far, then the layer's last status.
        pull.expect("━".encode() + rb"[^\r\n]*/[^\r\n]*B", timeout=30)
        pull.expect(rb"Pull complete")
        pull.expect(rb"Status: Downloaded newer image for " + re.escape(name.encode()))
        assert pull.wait() == 0
    finally:
        pull.close()
    hulld.cli("hull", "rmi", name)
    # Not a terminal: docker's plain lines, no bar.
    plain = hulld.cli("hull", "pull", name)
    assert "━" not in plain.stdout and ": Pull complete" in plain.stdout, plain.stdout
    hulld.cli("hull", "rmi", name)
