"""Registry verbs: login, logout (credentials in ~/.docker/config.json, checked by the daemon)."""

from __future__ import annotations

import argparse
import sys

from hull.cli import credentials
from hull.cli.client import CLIError
from hull.cli.context import Context


def args_login(p: argparse.ArgumentParser) -> None:
    p.add_argument("-u", "--username", default="", help="username")
    p.add_argument("-p", "--password", default="", help="password")
    p.add_argument("--password-stdin", action="store_true", help="take the password from stdin")
    p.add_argument("server", nargs="?", default="", metavar="SERVER")


def cmd_login(ctx: Context, a: argparse.Namespace) -> int:
    password = a.password
    if a.password_stdin:
        if a.password:
            raise CLIError("--password and --password-stdin are mutually exclusive")
        password = sys.stdin.read().rstrip("\r\n")
    if not a.username or not password:
        raise CLIError("hull login needs --username and --password (or --password-stdin): no terminal prompts")
    server = a.server or "docker.io"
    body = {"username": a.username, "password": password, "serveraddress": credentials.server_key(server)}
    answer = ctx.client.post("/auth", None, body) or {}
    credentials.store(server, a.username, password)
    print(answer.get("Status") or "Login Succeeded")
    return 0


def args_logout(p: argparse.ArgumentParser) -> None:
    p.add_argument("server", nargs="?", default="", metavar="SERVER")


def cmd_logout(ctx: Context, a: argparse.Namespace) -> int:
    server = a.server or "docker.io"
    key = credentials.server_key(server)
    if credentials.erase(server):
        print(f"Removing login credentials for {key}")
    else:
        print(f"Not logged in to {key}")
    return 0
