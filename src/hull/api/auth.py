"""`POST /auth`: check credentials against a registry, as `docker login` asks the daemon to."""

import aiohttp
from aiohttp import web

from hull.api import params, routing
from hull.distribution.registry import Credentials, Registry
from hull.errors import InvalidArgument
from hull.images.reference import DEFAULT_DOMAIN

# What the docker CLI sends for Docker Hub.
LEGACY_INDEX = "https://index.docker.io/v1/"


def registry_domain(server_address: str) -> str:
    """`https://host:port/v1/`, `host:port` or empty (Docker Hub) → the registry's domain."""
    if not server_address or server_address == LEGACY_INDEX:
        return DEFAULT_DOMAIN
    rest = server_address.split("://", 1)[-1]
    return rest.split("/", 1)[0]


async def login(request: web.Request) -> web.StreamResponse:
    body = await params.json_body(request, allow_empty=False)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise InvalidArgument("a username and a password are required")
    domain = registry_domain(str(body.get("serveraddress") or ""))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        await Registry(domain, session, credentials=Credentials(username, password)).check_login()
    return web.json_response({"Status": "Login Succeeded", "IdentityToken": ""})


def add_routes(router: web.UrlDispatcher) -> None:
    routing.add(router, "POST", "/auth", login)
