"""The gateway's HTTP metrics keep a bounded set of series whatever clients send."""

import contextlib
import http
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Route

from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from tests.conftest import api
from tests.support.processes import gateway_for_module

pytestmark = pytest.mark.integration

Series = frozenset[tuple[str, str]]
METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
_APP = create_app(GatewaySettings(environment="test", api_keys="k"))
# Every route template: those in the schema, the docs' own, and /metrics (left out of the schema).
ROUTES = set(_APP.openapi()["paths"]) | {r.path for r in _APP.routes if isinstance(r, Route)}
ROUTES.add("/metrics")
# Methods a client may send; the HTTP parser refuses unknown ones (e.g. FOO) before the app.
ODD_METHODS = ["PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH"]
ODD_METHODS += ["REPORT", "PURGE", "MKCALENDAR", "LINK", "UNLINK", "FOO", "get", "X-" * 40]


@pytest.fixture(scope="module")
def base_url(platform: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for running in gateway_for_module(tmp_path_factory):
        yield running.base_url


def series(base_url: str) -> set[Series]:
    """The label sets of offload_http_requests_total in the gateway's /metrics."""
    text = httpx.get(f"{base_url}/metrics").text
    return {
        frozenset(sample.labels.items())
        for family in text_string_to_metric_families(text)
        if family.name == "offload_http_requests"
        for sample in family.samples
        if sample.name == "offload_http_requests_total"
    }


def test_random_paths_and_odd_methods_leave_the_series_bounded(base_url: str) -> None:
    before = series(base_url)
    with api(base_url) as client, api(base_url, key=None) as anonymous:
        for n in range(200):
            client.get(f"/v1/jobs/{uuid.uuid4()}/x")
            anonymous.get(f"/random-{n}")
            client.get(f"/v1/jobs/{uuid.uuid4()}")  # a route: its template, not the path
        for method in ODD_METHODS:
            for path in ("/v1/jobs", f"/v1/jobs/{uuid.uuid4()}", "/healthz", f"/odd-{method}"):
                # A connection the server dropped is as good as an answer here.
                with contextlib.suppress(httpx.HTTPError):
                    client.request(method, path)
    after = series(base_url)
    new = after - before
    print(f"\n{len(new)} new series: {sorted(sorted(s) for s in new)}")
    assert len(new) <= 12, "label values follow what clients send"
    for labels in map(dict, after):
        assert labels["method"] in METHODS | {"other"}, labels
        assert labels["route"] in ROUTES | {"unmatched"}, labels
        assert re.fullmatch(r"[1-5]\d\d|other", labels["status"]), labels


def test_status_labels_are_bounded() -> None:
    from services.gateway.middleware import status_label

    assert {status_label(s) for s in http.HTTPStatus} == {str(int(s)) for s in http.HTTPStatus}
    assert status_label(299) == "2xx"
    assert status_label(0) == status_label(1000) == status_label(-5) == "other"
