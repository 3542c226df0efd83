"""Where the tests' RabbitMQ, Redis and Postgres come from (tests/support/containers.py).

There is no Docker engine here: the container path is checked by its selection and by starting
a fake container class in its place; the real classes are checked to take the same arguments.
"""

import importlib
import inspect
import os
from collections.abc import Callable
from functools import partial
from typing import Any, NoReturn

import pytest
import yaml

from tests.support import containers, environment
from tests.support.containers import (
    POSTGRES,
    RABBITMQ,
    REDIS,
    SERVERS,
    NoServer,
    Server,
    choose_source,
    provided,
    start_container,
)
from tests.support.deployment import COMPOSE_FILE
from tests.support.processes import free_port

# --- the rule ------------------------------------------------------------------------------------


@pytest.mark.parametrize("local", [True, False])
@pytest.mark.parametrize("docker", [True, False])
def test_a_url_given_outright_is_used_whatever_else_answers(local: bool, docker: bool) -> None:
    assert choose_source("amqp://elsewhere:5672/x", local, docker) == "env"


@pytest.mark.parametrize("docker", [True, False])
def test_without_a_url_the_local_server_comes_first(docker: bool) -> None:
    assert choose_source(None, True, docker) == "local"


def test_without_a_url_or_a_local_server_a_container_is_started() -> None:
    assert choose_source(None, False, True) == "container"


def test_an_empty_url_counts_as_none() -> None:
    assert choose_source("", False, True) == "container"


def test_with_nothing_there_is_no_server() -> None:
    with pytest.raises(NoServer):
        choose_source(None, False, False)


# --- applying it for a session -------------------------------------------------------------------


class FakeContainer:
    """Stands in for a testcontainers class: records what it was made with and told."""

    def __init__(self, made: list["FakeContainer"], image: str, **options: Any) -> None:
        self.image, self.options = image, options
        self.started = self.stopped = False
        made.append(self)

    def start(self) -> "FakeContainer":
        self.started = True
        return self

    def stop(self) -> None:
        self.stopped = True

    def get_container_host_ip(self) -> str:
        return "docker-host"

    def get_exposed_port(self, port: int) -> int:
        return 30000 + port


def fake_start(made: list[FakeContainer]) -> Callable[[Server], containers.Running]:
    return partial(start_container, container_class=partial(FakeContainer, made))


def never(*_: Any) -> NoReturn:
    raise AssertionError("not to be asked")


def test_containers_stand_in_where_nothing_else_answers() -> None:
    made: list[FakeContainer] = []
    before = {s.attribute: getattr(environment, s.attribute) for s in SERVERS}
    before_env = {s.variable: os.environ.get(s.variable) for s in SERVERS}
    with provided(
        environ={}, reachable=lambda _: False, docker=lambda: True, start=fake_start(made)
    ) as sources:
        assert sources == {"RabbitMQ": "container", "Redis": "container", "Postgres": "container"}
        vhost, db = environment.AMQP_VHOST, POSTGRES.options["dbname"]
        redis_db = environment.LOCAL_REDIS_URL.rsplit("/", 1)[1]
        expected = {
            "AMQP_URL": f"amqp://guest:guest@docker-host:35672/{vhost}",
            "REDIS_URL": f"redis://docker-host:36379/{redis_db}",
            "DATABASE_URL": f"postgresql://postgres:offload-test@docker-host:35432/{db}",
        }
        for server in SERVERS:
            assert getattr(environment, server.attribute) == expected[server.attribute]
            # processes that import the environment anew (multiprocessing spawn) see it too
            assert os.environ[server.variable] == expected[server.attribute]
        assert [(c.image, c.started, c.stopped) for c in made] == [
            ("rabbitmq:4.3-management", True, False),
            ("redis:7", True, False),
            ("postgres:15", True, False),
        ]
        assert made[0].options["vhost"] == vhost
        assert made[2].options["driver"] is None  # a plain postgresql:// URL, for psycopg 3
    assert all(c.stopped for c in made)
    assert {s.attribute: getattr(environment, s.attribute) for s in SERVERS} == before
    assert {s.variable: os.environ.get(s.variable) for s in SERVERS} == before_env


def test_each_server_is_taken_from_its_own_source() -> None:
    made: list[FakeContainer] = []
    url = "redis://elsewhere:6379/3"
    unchanged = (environment.AMQP_URL, environment.REDIS_URL)  # read from their variables
    with provided(
        environ={REDIS.variable: url},
        reachable=lambda server: server is RABBITMQ,
        docker=lambda: True,
        start=fake_start(made),
    ) as sources:
        assert sources == {"RabbitMQ": "local", "Redis": "env", "Postgres": "container"}
        assert [c.image for c in made] == ["postgres:15"]
        assert unchanged == (environment.AMQP_URL, environment.REDIS_URL)


def test_local_servers_need_no_docker() -> None:
    with provided(environ={}, reachable=lambda _: True, docker=never, start=never) as sources:
        assert set(sources.values()) == {"local"}


def test_with_no_source_the_error_names_the_server_and_every_way_out() -> None:
    asked: list[bool] = []

    def docker() -> bool:
        asked.append(True)
        return False

    with (
        pytest.raises(NoServer) as missing,
        provided([REDIS, POSTGRES], environ={}, reachable=lambda _: False, docker=docker),
    ):
        pass
    message = str(missing.value)
    assert message.startswith("Redis for the tests: OFFLOAD_TEST_REDIS_URL is not set")
    assert "127.0.0.1:6379" in message and "make services" in message
    assert "Docker" in message and "DOCKER_HOST" in message
    assert asked == [True]


def test_containers_started_are_stopped_if_a_later_one_fails() -> None:
    made: list[FakeContainer] = []

    def start(server: Server) -> containers.Running:
        if server is POSTGRES:
            raise RuntimeError("image pull failed")
        return fake_start(made)(server)

    with (
        pytest.raises(RuntimeError, match="image pull failed"),
        provided(
            [REDIS, POSTGRES],
            environ={},
            reachable=lambda _: False,
            docker=lambda: True,
            start=start,
        ),
    ):
        pass
    assert [(c.image, c.stopped) for c in made] == [("redis:7", True)]


def test_a_container_that_fails_to_start_is_stopped() -> None:
    made: list[FakeContainer] = []

    class Broken(FakeContainer):
        def get_exposed_port(self, port: int) -> int:
            raise ConnectionError("no port mapping")

    with pytest.raises(ConnectionError):
        start_container(REDIS, partial(Broken, made))
    assert made[0].stopped


# --- what the real classes and images are --------------------------------------------------------


@pytest.mark.parametrize("server", SERVERS, ids=lambda s: s.name)
def test_the_testcontainers_class_takes_these_arguments(server: Server) -> None:
    module, _, name = server.container_class.partition(":")
    cls = getattr(importlib.import_module(module), name)
    inspect.signature(cls).bind(server.image, **server.options)


def test_the_containers_run_the_images_docker_compose_runs() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert {s.name: s.image for s in SERVERS} == {
        "RabbitMQ": compose["rabbitmq"]["image"],
        "Redis": compose["redis"]["image"],
        "Postgres": compose["postgres"]["image"],
    }


def test_an_engine_that_does_not_answer_is_no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    assert containers.docker_available(timeout=2) is False
