"""What the deployment tests share: docker-compose.yml resolved by docker-compose itself, the
roles Offload's images play in it, the Dockerfile's stages, and the environment variables each
settings class reads."""

import functools
import os
import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import typer
import yaml
from dockerfile_parse import DockerfileParser
from pydantic_settings import BaseSettings

from services.analyzer.config import AnalyzerSettings
from services.common.config import ServiceSettings
from services.gateway.config import GatewaySettings
from services.ops import cli
from services.ops.client_cli import ClientSettings
from services.ops.exporter import ExporterSettings
from services.pdfgen.config import PdfgenSettings
from services.pusher.config import PusherSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
# Every image is built from this one file: `--build-arg IMAGE=<name>` (see its header).
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
K8S = REPO / "deploy/k8s"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


@dataclass(frozen=True)
class Role:
    """One of Offload's processes: the image it runs from and the settings it reads."""

    image: str
    settings: type[ServiceSettings]
    # The `offload` CLI reads a few variables through typer options, not settings.
    uses_cli: bool = False

    @property
    def build_arg(self) -> str:
        """The Dockerfile's IMAGE build argument for this image: `offload/pdfgen` -> `pdfgen`."""
        return self.image.removeprefix("offload/")


ROLES: dict[str, Role] = {
    "gateway": Role("offload/gateway", GatewaySettings),
    "analyzer": Role("offload/analyzer", AnalyzerSettings),
    "pusher-bulk": Role("offload/pusher", PusherSettings),
    "pusher-urgent": Role("offload/pusher", PusherSettings),
    "fcm-sandbox": Role("offload/pusher", PusherSettings),
    "pdfgen": Role("offload/pdfgen", PdfgenSettings),
    "beat": Role("offload/platform", ServiceSettings),
    "exporter": Role("offload/platform", ExporterSettings),
    "migrate": Role("offload/platform", ServiceSettings, True),
}
# The compose services the operations contract names ("Compose service names").
CONTRACT_SERVICES = frozenset(
    {
        *("rabbitmq", "redis", "postgres", "minio", "minio-init", "migrate", "gateway"),
        *("analyzer", "pusher-bulk", "pusher-urgent", "pdfgen", "beat", "exporter", "flower"),
        *("fcm-sandbox", "prometheus", "grafana"),
    }
)
# Celery worker pools: scaled with `--scale` in compose and by KEDA in Kubernetes.
POOLS = ("analyzer", "pusher-bulk", "pusher-urgent", "pdfgen")
# The environment variables our containers may set that are not Offload settings.
FOREIGN_VARIABLES = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"})


def dockerfile_stages() -> list[str | None]:
    """The Dockerfile's stages in order, by name (`FROM ... AS name`; None for an unnamed one)."""
    names: list[str | None] = []
    for instruction in DockerfileParser(path=str(DOCKERFILE)).structure:
        if instruction["instruction"] == "FROM":
            words = instruction["value"].split()
            named = len(words) == 3 and words[1].lower() == "as"
            names.append(words[2].lower() if named else None)
    return names


def docker_compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f docker-compose.yml --env-file <env_file> <args>`, run with nothing
    from this process's environment but PATH, so only the env file feeds the interpolation."""
    return subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "--env-file", str(env_file), *args],
        cwd=REPO,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@functools.cache
def resolved_compose() -> dict[str, Any]:
    """docker-compose.yml as docker-compose resolves it with .env.example."""
    done = docker_compose(ENV_EXAMPLE, "config")
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def raw_compose() -> dict[str, Any]:
    """docker-compose.yml as written (anchors merged by YAML, nothing interpolated)."""
    raw: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return raw


def unescape(text: str) -> str:
    """A resolved compose string as the container sees it (`$$` is a literal `$`)."""
    return text.replace("$$", "$")


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A resolved service's environment; pass-through variables that are unset are absent."""
    return {
        k: unescape(str(v)) for k, v in (service.get("environment") or {}).items() if v is not None
    }


def command(service: Mapping[str, Any]) -> list[str]:
    """A resolved service's command as an argv list."""
    value = service["command"]
    argv = shlex.split(value) if isinstance(value, str) else [str(part) for part in value]
    return [unescape(part) for part in argv]


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}


def duration_s(value: str | int) -> float:
    """Seconds in a compose duration such as `1m30s` or `690s`."""
    if isinstance(value, int):
        return float(value)
    parts = _DURATION.findall(value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a duration: {value!r}"
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def env_names(settings: type[BaseSettings]) -> dict[str, str]:
    """The environment variable each field of a settings class is read from, by field name."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = {}
    for name, field in settings.model_fields.items():
        alias = field.validation_alias or field.alias
        names[name] = str(alias) if isinstance(alias, str) else f"{prefix}{name}".upper()
    return names


def required_fields(settings: type[BaseSettings]) -> list[str]:
    """Fields without a default: the environment must provide them."""
    return [name for name, field in settings.model_fields.items() if field.is_required()]


def cli_variables() -> frozenset[str]:
    """Variables the `offload` CLI reads through typer options (`envvar=`)."""
    command = typer.main.get_command(cli.cli)
    found: set[str] = set()

    # Typer may ship its own click, so commands are walked by shape, not by class.
    def walk(node: Any) -> None:
        for param in node.params:
            envvar = getattr(param, "envvar", None)
            if isinstance(envvar, str):
                found.add(envvar)
            elif envvar:
                found.update(envvar)
        for child in getattr(node, "commands", {}).values():
            walk(child)

    walk(command)
    return frozenset(found)


def all_setting_variables() -> frozenset[str]:
    """Every variable any Offload settings class or the CLI reads."""
    classes: set[type[BaseSettings]] = {role.settings for role in ROLES.values()}
    classes.add(ClientSettings)
    names = {name for cls in classes for name in env_names(cls).values()}
    return frozenset(names) | cli_variables()


@contextmanager
def only_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Run with exactly `env` as the process environment (settings read os.environ)."""
    with mock.patch.dict(os.environ, env, clear=True):
        yield


PLACEHOLDER = re.compile(r"change-me[a-z0-9_-]*", re.IGNORECASE)
# What an operator puts where the examples say change-me: long and random enough for production.
DEPLOYED_SECRET = "s3cr3t-9f2c41d7e0b84a6c8e1f5a3b7d9c0e24"


def deployed(env: Mapping[str, str]) -> dict[str, str]:
    """An example environment as deployed: every change-me placeholder replaced by a real
    secret (production refuses the placeholders themselves, see the tests that say so)."""
    return {name: PLACEHOLDER.sub(DEPLOYED_SECRET, value) for name, value in env.items()}


def load_settings(settings: type[ServiceSettings], env: Mapping[str, str]) -> ServiceSettings:
    """The settings a process started with exactly `env` would read."""
    with only_environment(env):
        return settings()


def k8s_documents() -> list[tuple[Path, dict[str, Any]]]:
    """Every YAML document under deploy/k8s with the file it came from."""
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                documents.append((path, document))
    return documents
