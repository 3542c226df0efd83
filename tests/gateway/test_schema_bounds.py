"""Every list and string a gateway body takes is bounded: one over its bound is a 422."""

from collections.abc import Iterator
from typing import Any

import pytest

from services.common.contracts.reports import (
    CELL_MAX_CHARS,
    COLUMN_KEY_MAX_CHARS,
    COLUMN_LABEL_MAX_CHARS,
    COLUMNS_MAX,
    INLINE_ROWS_MAX,
    TITLE_MAX_CHARS,
)
from services.gateway.analyses.schemas import BLOG_URL_MAX_CHARS
from services.gateway.devices.schemas import TOPIC_MAX_CHARS, TOPICS_MAX, USER_ID_MAX_CHARS
from tests.conftest import api
from tests.support.processes import gateway_for_module

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def base_url(platform: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for running in gateway_for_module(tmp_path_factory):
        yield running.base_url


def report(**change: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "title": "t",
        "columns": [{"key": "a", "label": "A"}],
        "rows": [{"a": 1}],
    }
    return spec | change


def device(**change: Any) -> dict[str, Any]:
    return {"token": "t", "platform": "ios"} | change


def columns(count: int) -> list[dict[str, str]]:
    return [{"key": f"c{i}", "label": f"C{i}"} for i in range(count)]


LONG_KEY = "k" * (COLUMN_KEY_MAX_CHARS + 1)
CASES = [
    ("/v1/analyses", {"blog_url": "https://b.example/" + "p" * BLOG_URL_MAX_CHARS}, "blog_url"),
    # Duplicate topics are dropped, but only after the list is bounded.
    ("/v1/devices", device(topics=["n"] * (TOPICS_MAX + 1)), "topics"),
    ("/v1/devices", device(topics=["n" * (TOPIC_MAX_CHARS + 1)]), "topics"),
    ("/v1/devices", device(user_id="u" * (USER_ID_MAX_CHARS + 1)), "user_id"),
    ("/v1/reports", report(title="t" * (TITLE_MAX_CHARS + 1)), "title"),
    ("/v1/reports", report(columns=columns(COLUMNS_MAX + 1)), "columns"),
    ("/v1/reports", report(columns=[{"key": LONG_KEY, "label": "K"}]), "key"),
    (
        "/v1/reports",
        report(columns=[{"key": "a", "label": "L" * (COLUMN_LABEL_MAX_CHARS + 1)}]),
        "label",
    ),
    ("/v1/reports", report(group_by=LONG_KEY), "group_by"),
    ("/v1/reports", report(rows=[{"a": 1}] * (INLINE_ROWS_MAX + 1)), "rows"),
    ("/v1/reports", report(rows=[{"a": "x" * (CELL_MAX_CHARS + 1)}]), "rows"),
    ("/v1/reports", report(rows=[{f"c{i}": i for i in range(COLUMNS_MAX + 1)}]), "rows"),
    ("/v1/reports", report(rows=[{LONG_KEY: 1}]), "rows"),
]


@pytest.mark.parametrize(("path", "body", "field"), CASES)
def test_one_over_a_bound_is_422_naming_the_field(
    base_url: str, path: str, body: dict[str, Any], field: str
) -> None:
    with api(base_url) as client:
        response = client.post(path, json=body)
    assert response.status_code == 422, response.text[:500]
    locations = {str(part) for error in response.json()["detail"] for part in error["loc"]}
    assert field in locations, response.text[:500]


def test_a_cell_at_its_bound_is_accepted_by_the_schema(base_url: str) -> None:
    spec = report(rows=[{"a": "x" * CELL_MAX_CHARS}], group_by="nope")
    with api(base_url) as client:
        response = client.post("/v1/reports", json=spec)
    assert response.status_code == 422  # only for the unknown group_by: nothing is queued
    assert "group_by names an unknown column key" in response.text
