"""docker-compose.yml: resolved by docker-compose itself (no engine needed), then checked for
what `docker compose up` would only reveal at run time: a missing secret, a dependency that
starts too early, a command or health check naming nothing, a setting nobody reads."""

import importlib.util
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from services.common import topology
from services.ops import healthcheck
from services.ops.cli import cli
from tests.support.deployment import (
    CONTRACT_SERVICES,
    DOCKERFILE,
    ENV_EXAMPLE,
    FOREIGN_VARIABLES,
    POOLS,
    REPO,
    ROLES,
    VERSION,
    cli_variables,
    command,
    deployed,
    docker_compose,
    dockerfile_stages,
    duration_s,
    env_names,
    environment,
    load_settings,
    raw_compose,
    required_fields,
    resolved_compose,
)

COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
# `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")
NETWORK_SCHEMES = frozenset({"amqp", "http", "https", "postgresql", "redis"})
ONE_SHOTS = frozenset({"migrate", "minio-init"})
HEALTHY, COMPLETED = "service_healthy", "service_completed_successfully"
# The port each HTTP health check must probe: the one the service listens on.
LISTENS_ON = {"gateway": 8000, "exporter": 9100, "fcm-sandbox": 9099}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    services: dict[str, Any] = resolved_compose()["services"]
    return services


def _required_variables() -> dict[str, set[str]]:
    """Each `${VAR:?message}` variable with the messages it is given."""
    found: dict[str, set[str]] = {}
    for name, operator, argument in INTERPOLATION.findall(COMPOSE_TEXT):
        if operator.endswith("?"):
            found.setdefault(name, set()).add(argument)
    return found


def _defaults() -> dict[str, set[str]]:
    """Each `${VAR:-default}` variable with the defaults it is given."""
    found: dict[str, set[str]] = {}
    for name, operator, argument in INTERPOLATION.findall(COMPOSE_TEXT):
        if operator.endswith("-"):
            found.setdefault(name, set()).add(argument)
    return found


def _pass_through_variables() -> set[str]:
    """Environment keys written without a value: compose copies them from .env or the shell."""
    found = set()
    for service in raw_compose()["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if value is None:
                found.add(key)
    return found


def _env_example() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """.env.example's set variables, commented-out ones (name -> value), and each one's comment."""
    assigned: dict[str, str] = {}
    commented: dict[str, str] = {}
    comments: dict[str, str] = {}
    previous = ""
    for line in ENV_EXAMPLE.read_text().splitlines():
        stripped = line.strip()
        if match := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", stripped):
            assigned[match[1]] = match[2]
            comments[match[1]] = previous
        elif match := re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=(.*)", stripped):
            commented[match[1]] = match[2]
            comments[match[1]] = previous
        previous = stripped if stripped.startswith("#") and "=" not in stripped else ""
    return assigned, commented, comments


def test_compose_resolves_with_the_example_env(services: dict[str, Any]) -> None:
    assert set(services) == CONTRACT_SERVICES


@pytest.mark.parametrize("variable", sorted(_required_variables()))
def test_a_missing_secret_stops_compose_with_its_message(tmp_path: Path, variable: str) -> None:
    messages = _required_variables()[variable]
    assert len(messages) == 1, f"{variable} has different messages: {messages}"
    env_file = tmp_path / ".env"
    env_file.write_text(
        "".join(
            line + "\n"
            for line in ENV_EXAMPLE.read_text().splitlines()
            if not line.startswith(f"{variable}=")
        )
    )
    done = docker_compose(env_file, "config")
    assert done.returncode != 0, f"compose resolved without {variable}"
    assert messages.pop() in done.stderr


def test_env_example_documents_every_variable_compose_reads() -> None:
    assigned, commented, comments = _env_example()
    required, defaults = _required_variables(), _defaults()
    read = {name for name, _, _ in INTERPOLATION.findall(COMPOSE_TEXT)} | _pass_through_variables()
    assert set(assigned) | set(commented) == read
    assert not set(assigned) & set(commented)
    for name in read:
        assert comments[name], f"{name} has no comment in .env.example"
    # Required values are set (to placeholders); optional ones are shown with their default.
    assert set(assigned) == set(required)
    for name, value in commented.items():
        if name in defaults:
            assert len(defaults[name]) == 1, f"{name} has different defaults: {defaults[name]}"
            assert {value} == defaults[name], f"{name}: .env.example says {value!r}"
        else:
            assert value == "", f"{name} has no default in compose; .env.example says {value!r}"
    for name, value in assigned.items():
        if re.search(r"PASSWORD|SECRET|API_KEYS", name):
            assert "change-me" in value, f"{name} in .env.example is not an obvious placeholder"


def test_every_service_has_a_healthcheck_restart_policy_and_grace_period(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        assert "stop_grace_period" in service, name
        assert duration_s(service["stop_grace_period"]) > 0, name
        test = service["healthcheck"]["test"]
        if name in ONE_SHOTS:
            # A one-shot has no health to report: its dependents wait for it to finish.
            assert test == ["NONE"], name
            assert service["restart"] == "no", name
        else:
            assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
            assert service["restart"] in ("unless-stopped", "always"), name


def test_every_dependency_waits_for_health_or_completion(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dependency, how in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            expected = COMPLETED if dependency in ONE_SHOTS else HEALTHY
            assert how == {"condition": expected}, f"{name} -> {dependency}: {how}"


def _waits_for(services: dict[str, Any], name: str) -> set[str]:
    """Every service `name` is started after, directly or not."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        for dependency in services[todo.pop()].get("depends_on") or {}:
            if dependency not in seen:
                seen.add(dependency)
                todo.append(dependency)
    return seen


def test_our_services_start_after_migrations_and_the_servers_they_use(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        if name in ROLES and name not in ("migrate", "fcm-sandbox"):
            assert "migrate" in _waits_for(services, name), name
        # Every URL a service is given names a compose service it waits for.
        for key, value in environment(service).items():
            url = urlsplit(value)
            if url.scheme not in NETWORK_SCHEMES or not url.hostname:
                continue
            host = url.hostname
            if host not in ("0.0.0.0", "127.0.0.1"):
                assert host in services, f"{name}: {key} names unknown host {host}"
                assert host in _waits_for(services, name), f"{name} starts before {host}"


def _published(port: Any) -> tuple[str, int]:
    """(host address, host port) of a published port in either of compose's notations."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), int(port["published"])
    mapping = str(port).split("/")[0].split(":")
    assert len(mapping) == 3, f"port {port} is published on every interface"
    return mapping[0], int(mapping[1])


def test_pools_scale_and_only_the_gateway_is_published_beyond_loopback(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        assert "container_name" not in service, f"{name}: a fixed name prevents --scale"
        if name in POOLS:
            assert not service.get("ports"), f"{name}: a host port prevents --scale"
        for port in service.get("ports") or []:
            if name == "gateway":
                assert _published(port)[1] == 8000
            else:
                assert _published(port)[0] == "127.0.0.1", f"{name} publishes {port}"
    assert services["pdfgen"]["mem_limit"] == "512m"


def test_images_are_built_from_the_dockerfile_with_their_image_argument(
    services: dict[str, Any],
) -> None:
    stages = dockerfile_stages()
    for name, role in ROLES.items():
        service = services[name]
        assert service["image"] == f"{role.image}:{VERSION}", name
        build = service["build"]
        assert Path(build["context"]) == REPO, name
        assert REPO / build["dockerfile"] == DOCKERFILE, name
        # IMAGE alone picks the lock file and the image's stage (the last one is FROM ${IMAGE}):
        # no --target, no other argument that could disagree with it.
        assert build.get("args") == {"IMAGE": role.build_arg}, name
        assert "target" not in build, name
        assert role.build_arg in stages, f"{name}: the Dockerfile has no stage {role.build_arg}"


def _module_runs(module: str) -> bool:
    """`python -m module` would start something: a package with __main__, or a module that
    checks for __main__."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        return False
    if spec.submodule_search_locations is not None:
        return importlib.util.find_spec(f"{module}.__main__") is not None
    assert spec.origin is not None
    return 'if __name__ == "__main__"' in Path(spec.origin).read_text()


def _option(argv: list[str], name: str) -> str | None:
    for index, arg in enumerate(argv):
        if arg == name:
            return argv[index + 1]
        if arg.startswith(f"{name}="):
            return arg.partition("=")[2]
    return None


def test_our_commands_run_real_modules_and_consume_real_queues(
    services: dict[str, Any],
) -> None:
    queue_names = {q.name for q in topology.QUEUES}
    for name in ROLES:
        argv = command(services[name])
        if argv[:2] == ["sh", "-c"]:
            continue  # the CLI: test_migrate_runs_real_cli_commands
        assert argv[:2] == ["python", "-m"], name
        assert _module_runs(argv[2]), f"{name}: python -m {argv[2]} runs nothing"
        if name in POOLS:
            assert int(_option(argv, "--concurrency") or 0) >= 1, name
            assert _option(argv, "--hostname") == f"{name}@%h", name
            queues = _option(argv, "--queues")
            if queues is not None:
                assert set(queues.split(",")) <= queue_names, name
    assert _option(command(services["pusher-bulk"]), "--queues") == "pusher.bulk"
    assert _option(command(services["pusher-urgent"]), "--queues") == "pusher.urgent"


def test_migrate_runs_real_cli_commands(services: dict[str, Any]) -> None:
    argv = command(services["migrate"])
    assert argv[:2] == ["sh", "-c"]
    steps = [shlex.split(step) for step in argv[2].split("&&")]
    assert [step[:3] for step in steps] == [
        ["offload", "db", "upgrade"],
        ["offload", "topology", "declare"],
    ]
    runner = CliRunner()
    for step in steps:
        result = runner.invoke(cli, [*step[1:], "--help"])
        assert result.exit_code == 0, result.output


def test_health_checks_name_real_modes(services: dict[str, Any]) -> None:
    for name in ROLES:
        test = services[name]["healthcheck"]["test"]
        if name in ONE_SHOTS:
            continue
        assert test[:4] == ["CMD", "python", "-m", "services.ops.healthcheck"], name
        args = healthcheck.parser().parse_args(test[4:])
        if name in POOLS:
            assert args.mode == "worker", name
        elif name == "beat":
            assert args.mode == "beat"
        else:
            assert args.mode == "http", name
            url = urlsplit(args.url)
            assert (url.hostname, url.port) == ("127.0.0.1", LISTENS_ON[name]), name


def test_pool_grace_periods_outlast_their_longest_task(services: dict[str, Any]) -> None:
    for name in POOLS:
        settings = load_settings(ROLES[name].settings, deployed(environment(services[name])))
        grace = duration_s(services[name]["stop_grace_period"])
        assert grace >= settings.task_time_limit_s + 10, name


def test_each_service_sets_only_settings_it_reads_and_they_validate(
    services: dict[str, Any],
) -> None:
    for name, role in ROLES.items():
        env = environment(services[name])
        readable = set(env_names(role.settings).values())
        if role.uses_cli:
            readable |= cli_variables()
        for variable in env:
            if variable.startswith("OFFLOAD_"):
                assert variable in readable, f"{name} sets {variable}, which it never reads"
            else:
                assert variable in FOREIGN_VARIABLES, f"{name} sets unexpected {variable}"
        for field in required_fields(role.settings):
            assert env_names(role.settings)[field] in env, f"{name} lacks {field}"
        # The settings class accepts this environment once its placeholders are replaced
        # (production rules included); the placeholders themselves are refused (below).
        load_settings(role.settings, deployed(env))


def test_production_refuses_the_example_api_key_as_it_stands(services: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        load_settings(ROLES["gateway"].settings, environment(services["gateway"]))


def test_pushers_send_to_the_sandbox_only_with_the_consent_compose_gives(
    services: dict[str, Any],
) -> None:
    for name in ("pusher-bulk", "pusher-urgent"):
        env = deployed(environment(services[name]))
        assert env["OFFLOAD_FCM_SANDBOX"] == "true", name
        without = {k: v for k, v in env.items() if k != "OFFLOAD_FCM_SANDBOX"}
        with pytest.raises(ValidationError, match="FCM"):
            load_settings(ROLES[name].settings, without)


def test_processes_listen_where_they_are_reached(services: dict[str, Any]) -> None:
    def settings(name: str) -> Any:
        return load_settings(ROLES[name].settings, deployed(environment(services[name])))

    gateway = settings("gateway")
    assert (gateway.gateway_host, gateway.gateway_port) == ("0.0.0.0", 8000)
    assert gateway.environment == "production"
    sandbox = settings("fcm-sandbox")
    assert (sandbox.sandbox_host, sandbox.sandbox_port) == ("0.0.0.0", 9099)
    for name in (*POOLS, "exporter"):
        pool = settings(name)
        assert (pool.metrics_bind, pool.metrics_port) == ("0.0.0.0", 9100), name
    for name in ("pusher-bulk", "pusher-urgent"):
        pusher = settings(name)
        assert pusher.uses_sandbox
        assert pusher.fcm_base_url() == "http://fcm-sandbox:9099", name


def test_services_share_one_broker_account_and_the_deploy_vhost(
    services: dict[str, Any],
) -> None:
    broker = environment(services["rabbitmq"])
    for name in ROLES:
        url = environment(services[name]).get("OFFLOAD_AMQP_URL")
        if name == "fcm-sandbox":
            assert url is None  # the sandbox holds no secret
            continue
        assert url is not None, name
        parts = urlsplit(url)
        assert (parts.username, parts.password) == (
            broker["RABBITMQ_USER"],
            broker["RABBITMQ_PASSWORD"],
        )
        assert parts.path == f"/{topology.DEPLOY_VHOST}", name
    flower = environment(services["flower"])
    assert urlsplit(flower["CELERY_BROKER_URL"]).path == f"/{topology.DEPLOY_VHOST}"


def test_storage_uses_the_bucket_and_user_minio_init_creates(services: dict[str, Any]) -> None:
    init = environment(services["minio-init"])
    script = command(services["minio-init"])[-1]
    assert 'mc mb --ignore-existing "offload/$S3_BUCKET"' in script
    assert 'mc admin user add offload "$S3_ACCESS_KEY" "$S3_SECRET_KEY"' in script
    for name in ("gateway", "pdfgen"):
        env = environment(services[name])
        assert urlsplit(env["OFFLOAD_STORAGE_URL"]).netloc == init["S3_BUCKET"], name
        assert env["AWS_ACCESS_KEY_ID"] == init["S3_ACCESS_KEY"], name
        assert env["AWS_SECRET_ACCESS_KEY"] == init["S3_SECRET_KEY"], name


def _bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((Path(volume["source"]), str(volume["target"])))
            continue
        source, target = str(volume).split(":")[:2]
        if source.startswith("/"):
            mounts.append((Path(source), target))
    return mounts


def test_every_file_mounted_from_the_repository_exists(services: dict[str, Any]) -> None:
    mounting = set()
    for name, service in services.items():
        for source, target in _bind_mounts(service):
            assert source.is_relative_to(REPO), f"{name} mounts {source} from outside the repo"
            assert source.exists(), f"{name} mounts missing {source.relative_to(REPO)}"
            if Path(target).suffix:
                assert source.is_file(), f"{name}: {source} should be a file"
            mounting.add(name)
    assert mounting == {"rabbitmq", "prometheus", "grafana"}


def _mount_target(services: dict[str, Any], service: str, source: Path) -> str:
    """Where `service` sees the repository path `source`."""
    for mounted, target in _bind_mounts(services[service]):
        if source.is_relative_to(mounted):
            return str(PurePosixPath(target) / source.relative_to(mounted).as_posix())
    raise AssertionError(f"{service} does not mount {source}")


def test_prometheus_and_grafana_configs_point_inside_their_mounts(
    services: dict[str, Any],
) -> None:
    prometheus = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    rules_dir = _mount_target(services, "prometheus", REPO / "deploy/prometheus/rules")
    assert prometheus.get("rule_files"), "prometheus.yml loads no rules"
    for pattern in prometheus["rule_files"]:
        assert pattern.startswith(rules_dir + "/"), f"rule_files {pattern} is not in {rules_dir}"
    for job in prometheus["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                assert target.rsplit(":", 1)[0] in services, f"{job['job_name']}: {target}"
        for dns in job.get("dns_sd_configs", []):
            for record in dns["names"]:
                assert record in services, f"{job['job_name']}: {record}"

    provisioning = REPO / "deploy/grafana/provisioning"
    dashboards_dir = _mount_target(services, "grafana", REPO / "deploy/grafana/dashboards")
    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.y*ml"))
        for provider in yaml.safe_load(path.read_text())["providers"]
    ]
    assert providers, "grafana provisions no dashboards"
    for provider in providers:
        assert provider["options"]["path"].startswith(dashboards_dir), provider
    sources = [
        source
        for path in sorted((provisioning / "datasources").glob("*.y*ml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
    ]
    assert {urlsplit(source["url"]).hostname for source in sources} == {"prometheus"}
