"""deploy/prometheus and deploy/grafana checked with promtool and against the ops contract.

Static checks: the configuration loads with its rules where docker-compose.yml mounts them,
the rules load and pass their unit tests, every alert is documented and tested both ways, and
every dashboard is well-formed Grafana JSON whose queries parse. Whether the queries return
data is tests/ops/test_observability_live.py's job.
"""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import observability
from tests.support.observability import (
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    MOUNTED_RULES_DIR,
    OPERATIONS_DOC,
    PROMETHEUS_CONFIG,
    ROOT,
    RULE_TESTS_DIR,
)

PROMTOOL = "/usr/bin/promtool"
POOLS = ["analyzer", "pusher-bulk", "pusher-urgent", "pdfgen"]
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SEVERITIES = {"critical", "warning"}
DASHBOARD_FILES = {
    "offload-overview.json",
    "offload-pusher.json",
    "offload-pdfgen.json",
    "offload-analyzer.json",
    "rabbitmq-overview.json",
}
GRAFANA_DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def deployed_config() -> dict[str, Any]:
    config: dict[str, Any] = observability.load_yaml(PROMETHEUS_CONFIG)
    return config


def test_the_compose_config_loads_with_its_rules_where_compose_mounts_them(
    tmp_path: Path,
) -> None:
    config = deployed_config()
    assert config["rule_files"] == [f"{MOUNTED_RULES_DIR}/*.yml"]
    # The same file, with the rules directory where this test put the mounted copy.
    shutil.copytree(observability.RULES_DIR, tmp_path / "rules")
    config["rule_files"] = [str(tmp_path / "rules" / "*.yml")]
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(yaml.safe_dump(config, sort_keys=False))

    checked = promtool("check", "config", str(rendered))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules_found = sum(len(group["rules"]) for group in _groups())
    assert f"SUCCESS: {rules_found} rules found" in checked.stdout, checked.stdout


def test_compose_mounts_the_files_where_the_configs_expect_them() -> None:
    services = observability.load_yaml(ROOT / "docker-compose.yml")["services"]
    prometheus = services["prometheus"]
    assert (
        "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in (prometheus["volumes"])
    )
    assert f"./deploy/prometheus/rules:{MOUNTED_RULES_DIR}:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    grafana = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert f"./deploy/grafana/dashboards:{GRAFANA_DASHBOARDS_MOUNT}:ro" in grafana


def test_scrape_jobs_are_the_contract() -> None:
    config = deployed_config()
    assert config["global"]["scrape_interval"] == "15s"
    assert config["global"]["evaluation_interval"] == "15s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert list(jobs) == [
        "gateway",
        "analyzer",
        "pusher-bulk",
        "pusher-urgent",
        "pdfgen",
        "exporter",
        "rabbitmq",
        "rabbitmq-queues",
        "flower",
    ]
    # Every replica of a pool is its own target: one A record each in the compose DNS.
    for pool in POOLS:
        assert jobs[pool]["dns_sd_configs"] == [
            {"names": [pool], "type": "A", "port": 9100, "refresh_interval": "15s"}
        ]
        assert "static_configs" not in jobs[pool]
    static = {
        "gateway": "gateway:8000",
        "exporter": "exporter:9100",
        "rabbitmq": "rabbitmq:15692",
        "rabbitmq-queues": "rabbitmq:15692",
        "flower": "flower:5555",
    }
    for name, target in static.items():
        assert jobs[name]["static_configs"] == [{"targets": [target]}], name
    assert jobs["rabbitmq"].get("metrics_path", "/metrics") == "/metrics"
    queues = jobs["rabbitmq-queues"]
    assert queues["metrics_path"] == "/metrics/detailed"
    assert queues["params"] == {
        "vhost": ["offload"],
        "family": ["queue_coarse_metrics", "queue_consumer_count"],
    }


def test_rule_files_load() -> None:
    for path in observability.rule_files():
        checked = promtool("check", "rules", str(path))
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rule_unit_tests_pass() -> None:
    files = sorted(RULE_TESTS_DIR.glob("*.yml"))
    assert files
    tested = promtool("test", "rules", *[path.name for path in files], cwd=RULE_TESTS_DIR)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == len(files), tested.stdout


def _groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in observability.rule_files():
        groups += observability.load_yaml(path)["groups"]
    return groups


def _alert_cases() -> dict[str, list[list[Any]]]:
    """For each alert name, the expected alert lists of every promtool case that names it."""
    cases: dict[str, list[list[Any]]] = {}
    for path in sorted(RULE_TESTS_DIR.glob("*.yml")):
        test_file = observability.load_yaml(path)
        assert test_file["rule_files"] == ["../rules/offload.yml"], path
        for test in test_file["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    return cases


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = _alert_cases()
    names = [rule["alert"] for rule in observability.alert_rules()]
    assert len(names) == len(set(names)), "alert names must be unique"
    untested = [name for name in names if name not in cases]
    never_fires = [name for name in names if not any(cases.get(name, []))]
    never_quiet = [name for name in names if all(cases.get(name, [[]]))]
    assert (untested, never_fires, never_quiet) == ([], [], [])
    assert set(cases) <= set(names), f"tests of unknown alerts: {set(cases) - set(names)}"


def test_every_alert_has_a_severity_a_summary_a_description_and_its_runbook() -> None:
    problems = []
    for rule in observability.alert_rules():
        name = rule["alert"]
        if rule.get("labels", {}).get("severity") not in SEVERITIES:
            problems.append(f"{name}: severity must be one of {sorted(SEVERITIES)}")
        annotations = rule.get("annotations", {})
        for key in ("summary", "description"):
            if not annotations.get(key, "").strip():
                problems.append(f"{name}: no {key}")
        expected = f"docs/operations.md#alert-{name.lower()}"
        if annotations.get("runbook_url") != expected:
            problems.append(f"{name}: runbook_url should be {expected}")
    assert problems == [], "\n".join(problems)


def test_every_runbook_anchor_exists_in_the_operations_doc() -> None:
    """docs/operations.md has a heading "Alert: <AlertName>" (any level) for every alert."""
    assert OPERATIONS_DOC.exists(), f"{OPERATIONS_DOC.relative_to(ROOT)} is missing"
    anchors = observability.doc_anchors(OPERATIONS_DOC)
    missing = [
        f"## Alert: {rule['alert']}"
        for rule in observability.alert_rules()
        if rule["annotations"]["runbook_url"].partition("#")[2] not in anchors
    ]
    assert missing == [], "headings missing from docs/operations.md:\n" + "\n".join(missing)


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards() -> None:
    datasources = observability.load_yaml(DATASOURCES)["datasources"]
    assert len(datasources) == 1
    source = datasources[0]
    assert (source["uid"], source["type"], source["url"]) == (
        "prometheus",
        "prometheus",
        "http://prometheus:9090",
    )
    assert source["jsonData"]["timeInterval"] == deployed_config()["global"]["scrape_interval"]
    providers = observability.load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert [(p["type"], p["options"]["path"]) for p in providers] == [
        ("file", GRAFANA_DASHBOARDS_MOUNT)
    ]


def test_the_dashboards_are_there() -> None:
    assert set(observability.dashboards()) == DASHBOARD_FILES


@pytest.mark.parametrize("file_name", sorted(DASHBOARD_FILES))
def test_dashboard_is_well_formed(file_name: str) -> None:
    dashboard = observability.dashboards()[file_name]
    problems = _dashboard_problems(dashboard)
    assert problems == [], "\n".join(problems)


def test_dashboard_uids_and_titles_are_unique() -> None:
    boards = list(observability.dashboards().values())
    assert len({b["uid"] for b in boards}) == len({b["title"] for b in boards}) == len(boards)


def _dashboard_problems(dashboard: dict[str, Any]) -> list[str]:
    problems = []
    if not 36 <= dashboard.get("schemaVersion", 0) <= 39:
        problems.append(f"schemaVersion {dashboard.get('schemaVersion')}, want 36-39")
    if dashboard.get("id") is not None:
        problems.append("a provisioned dashboard has no id (Grafana assigns it)")
    if not dashboard.get("uid") or not dashboard.get("title"):
        problems.append("uid and title are required")
    variables = {v["name"]: v for v in observability.variables(dashboard)}
    for name, variable in variables.items():
        if variable["type"] == "query":
            if variable.get("datasource") != DATASOURCE:
                problems.append(f"${name}: datasource {variable.get('datasource')}")
            observability.parse_label_values(observability.variable_query(variable))
    known = set(variables) | set(observability.GRAFANA_BUILTINS)
    ids = [panel.get("id") for panel in observability.panels(dashboard)]
    if len(ids) != len(set(ids)) or None in ids:
        problems.append(f"panel ids must be present and unique: {ids}")
    areas: list[tuple[str, dict[str, int]]] = []
    for panel in observability.panels(dashboard):
        title = panel.get("title", "?")
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in "hwxy") or grid["x"] + grid["w"] > 24:
            problems.append(f"{title!r}: gridPos {grid}")
            continue
        areas.append((title, grid))
        if panel["type"] == "row":
            continue
        if panel.get("datasource") != DATASOURCE:
            problems.append(f"{title!r}: datasource {panel.get('datasource')}")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{title!r}: no targets")
        ref_ids = [target.get("refId") for target in targets]
        if len(ref_ids) != len(set(ref_ids)):
            problems.append(f"{title!r}: refIds {ref_ids}")
        for target in targets:
            expr = target.get("expr", "")
            where = f"{title!r} {target.get('refId')}"
            if not expr.strip():
                problems.append(f"{where}: no expr")
            if target.get("datasource", DATASOURCE) != DATASOURCE:
                problems.append(f"{where}: datasource {target['datasource']}")
            if unknown := observability.variable_references(expr) - known:
                problems.append(f"{where}: undefined variables {sorted(unknown)}")
            for function, window in re.findall(r"\b(i?rate|increase)\([^\[]*\[([^\]]*)\]", expr):
                # increase() over the dashboard's range gives a total for the range shown.
                allowed = {"$__rate_interval"} | ({"$__range"} if function == "increase" else set())
                if window not in allowed:
                    problems.append(f"{where}: {function}() over [{window}]")
    problems += _overlaps(areas)
    return problems


def _overlaps(areas: list[tuple[str, dict[str, int]]]) -> list[str]:
    found = []
    for i, (first, a) in enumerate(areas):
        for second, b in areas[i + 1 :]:
            if (
                a["x"] < b["x"] + b["w"]
                and b["x"] < a["x"] + a["w"]
                and a["y"] < b["y"] + b["h"]
                and b["y"] < a["y"] + a["h"]
            ):
                found.append(f"{first!r} and {second!r} overlap")
    return found


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """Each query, its variables filled in, checked by promtool as a recording rule would be."""
    exprs = []
    for dashboard in observability.dashboards().values():
        values = dict(observability.GRAFANA_BUILTINS)
        values.update({v["name"]: ".+" for v in observability.variables(dashboard)})
        queries = []
        for variable in observability.variables(dashboard):
            query = observability.parse_label_values(observability.variable_query(variable))
            queries.append(f"group by ({query.label}) ({query.selector})")
        for panel in observability.query_panels(dashboard):
            queries += [target["expr"] for target in panel["targets"]]
        exprs += [observability.substitute(query, values) for query in queries]
    # Distinct names: promtool refuses one name recorded by several rules.
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(exprs)]
    path = tmp_path / "dashboards.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))

    checked = promtool("check", "rules", str(path))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout
