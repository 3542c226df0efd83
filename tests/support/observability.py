"""The deployed observability files (deploy/prometheus, deploy/grafana) as data for tests."""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "offload.yml"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
# Where docker-compose.yml mounts deploy/prometheus/rules in the Prometheus container.
MOUNTED_RULES_DIR = "/etc/prometheus/rules"
# What Grafana puts in for its built-in variables on a dashboard showing the last minutes.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rules() -> list[dict[str, Any]]:
    """Every recording and alert rule of every rule file, each with its group's name."""
    found = []
    for path in rule_files():
        for group in load_yaml(path)["groups"]:
            found += [{**rule, "group": group["name"]} for rule in group["rules"]]
    return found


def alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "record" in rule]


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON by file name."""
    paths = sorted(DASHBOARDS_DIR.glob("*.json"))
    return {path.name: json.loads(path.read_text()) for path in paths}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included (rows themselves too)."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def query_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The panels that show data (everything but rows)."""
    return (panel for panel in panels(dashboard) if panel["type"] != "row")


def variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    variables: list[dict[str, Any]] = dashboard.get("templating", {}).get("list", [])
    return variables


def variable_query(variable: dict[str, Any]) -> str:
    """The query of a `query` variable, in either of the shapes Grafana saves."""
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


@dataclass(frozen=True)
class LabelValues:
    """A `label_values(metric_selector, label)` variable query."""

    selector: str
    label: str


def parse_label_values(query: str) -> LabelValues:
    match = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query, re.S)
    if match is None:
        raise ValueError(f"not a label_values(metric, label) query: {query!r}")
    return LabelValues(match.group(1).strip(), match.group(2))


def substitute(expr: str, values: dict[str, str]) -> str:
    """The query Grafana would send: every $var, ${var} and [[var]] replaced."""

    def value(match: re.Match[str]) -> str:
        return values[next(group for group in match.groups() if group)]

    # Longest names first, so $__rate_interval is not read as $__range + "te_interval".
    names = "|".join(sorted(map(re.escape, values), key=len, reverse=True))
    pattern = rf"\$\{{({names})(?::\w+)?\}}|\$({names})\b|\[\[({names})\]\]"
    return re.sub(pattern, value, expr)


def variable_references(expr: str) -> set[str]:
    """Names of the template variables an expression uses ($var, ${var}, [[var]])."""
    return {
        next(group for group in match.groups() if group)
        for match in re.finditer(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", expr)
    }


def regex_alternation(values: list[str]) -> str:
    """Several values as Grafana writes them into a regex matcher: (a|b), specials escaped."""
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", v) for v in values]
    return "(" + "|".join(escaped) + ")"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading ("## Alert: OffloadX" -> "alert-offloadx")."""
    text = heading.strip().lstrip("#").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def doc_anchors(path: Path) -> set[str]:
    """Anchors of every heading in a Markdown document."""
    lines = path.read_text().splitlines()
    return {github_anchor(line) for line in lines if re.match(r"#{1,6} ", line)}


_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords and labels left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call is None and name.lower() not in _KEYWORDS:
            names.add(name)
    return names
