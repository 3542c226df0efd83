"""Where the suite's RabbitMQ, Redis and Postgres come from, each on its own.

Its OFFLOAD_TEST_*_URL if set; else the local server (environment.LOCAL_*_URL) if it answers;
else, if a Docker engine answers, a throwaway container that testcontainers starts for the
session, from the image docker-compose.yml runs. With none of these the tests that need it fail
(tests/conftest.py), never skip. `choose_source` is the whole rule; `provided` applies it.
"""

import contextlib
import functools
import importlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support import environment
from tests.support.processes import port_open

Source = Literal["env", "local", "container"]


class NoServer(RuntimeError):
    """No URL is set, the local server does not answer and no Docker engine does."""


def choose_source(env_url: str | None, local_reachable: bool, docker_available: bool) -> Source:
    """The URL given outright, else the local server, else a container; else NoServer."""
    if env_url:
        return "env"
    if local_reachable:
        return "local"
    if docker_available:
        return "container"
    raise NoServer("no URL is set, the local server does not answer and no Docker engine does")


class Container(Protocol):
    """The part of a testcontainers container used here."""

    def start(self) -> Any: ...
    def stop(self) -> None: ...
    def get_container_host_ip(self) -> str: ...
    def get_exposed_port(self, port: int) -> int | str: ...


@dataclass(frozen=True)
class Server:
    name: str
    variable: str  # the variable that gives its URL outright
    attribute: str  # the attribute of tests.support.environment the suite reads it from
    local_url: str  # the local server; a container's URL keeps its path (vhost, database)
    image: str  # as docker-compose.yml runs it
    container_class: str  # "module:Class" in testcontainers, imported only when needed
    port: int  # the server's port, locally and in the container
    options: Mapping[str, Any] = field(default_factory=dict)  # the class's keyword arguments

    def local_reachable(self) -> bool:
        parts = urlsplit(self.local_url)
        return port_open(parts.port or self.port, parts.hostname or "127.0.0.1")()

    def unavailable(self) -> str:
        local = urlsplit(self.local_url).netloc.rpartition("@")[2]
        return (
            f"{self.name} for the tests: {self.variable} is not set, nothing answers at {local} "
            "(the local server: `make services` starts it), and no Docker engine answers for a "
            "testcontainers fallback (DOCKER_HOST, else /var/run/docker.sock; testcontainers "
            "comes with `make install`)"
        )


RABBITMQ = Server(
    "RabbitMQ",
    "OFFLOAD_TEST_AMQP_URL",
    "AMQP_URL",
    environment.LOCAL_AMQP_URL,
    image="rabbitmq:4.3-management",
    container_class="testcontainers.rabbitmq:RabbitMqContainer",
    port=5672,
    options={"username": "guest", "password": "guest", "vhost": environment.AMQP_VHOST},
)
REDIS = Server(
    "Redis",
    "OFFLOAD_TEST_REDIS_URL",
    "REDIS_URL",
    environment.LOCAL_REDIS_URL,
    image="redis:7",
    container_class="testcontainers.redis:RedisContainer",
    port=6379,
)
POSTGRES = Server(
    "Postgres",
    "OFFLOAD_TEST_DATABASE_URL",
    "DATABASE_URL",
    environment.LOCAL_DATABASE_URL,
    image="postgres:15",
    container_class="testcontainers.postgres:PostgresContainer",
    port=5432,
    options={
        "username": "postgres",
        "password": "offload-test",
        "dbname": urlsplit(environment.LOCAL_DATABASE_URL).path.lstrip("/"),
        "driver": None,
    },
)
SERVERS = (RABBITMQ, REDIS, POSTGRES)


def docker_available(timeout: float = 5) -> bool:
    """A Docker engine answers where testcontainers looks for one: DOCKER_HOST (or tc.host in
    ~/.testcontainers.properties), else the default socket."""
    try:
        from testcontainers.core.docker_client import DockerClient

        return bool(DockerClient(timeout=timeout).client.ping())
    except Exception:  # not installed, no engine, no permission: no fallback
        return False


@dataclass(frozen=True)
class Running:
    url: str
    stop: Callable[[], None]


def start_container(
    server: Server, container_class: Callable[..., Container] | None = None
) -> Running:
    """Start the server's container, ready (testcontainers waits for it), and its URL."""
    if container_class is None:
        module, _, name = server.container_class.partition(":")
        container_class = getattr(importlib.import_module(module), name)
    container = container_class(server.image, **server.options)
    try:
        container.start()
        host, port = container.get_container_host_ip(), container.get_exposed_port(server.port)
    except BaseException:
        with contextlib.suppress(Exception):
            container.stop()
        raise
    user, password = server.options.get("username"), server.options.get("password")
    netloc = f"{user}:{password}@{host}:{port}" if user else f"{host}:{port}"
    return Running(urlunsplit(urlsplit(server.local_url)._replace(netloc=netloc)), container.stop)


@contextlib.contextmanager
def provided(
    servers: Sequence[Server] = SERVERS,
    *,
    environ: Mapping[str, str] = os.environ,
    reachable: Callable[[Server], bool] = Server.local_reachable,
    docker: Callable[[], bool] = docker_available,
    start: Callable[[Server], Running] = start_container,
) -> Iterator[dict[str, Source]]:
    """Each server from its source while open (NoServer, naming it, if it has none). For a
    container, tests.support.environment and the URL variable (for processes that import it
    anew) point at it; both are restored and the container stopped on leaving."""
    docker = functools.cache(docker)  # asked once at most, and only if a server needs it
    with contextlib.ExitStack() as stack:
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        sources: dict[str, Source] = {}
        for server in servers:
            env_url = environ.get(server.variable)
            local = not env_url and reachable(server)
            try:
                source = choose_source(env_url, local, not env_url and not local and docker())
            except NoServer:
                raise NoServer(server.unavailable()) from None
            if source == "container":
                running = start(server)
                stack.callback(running.stop)
                patch.setattr(environment, server.attribute, running.url)
                patch.setenv(server.variable, running.url)
            sources[server.name] = source
        yield sources
