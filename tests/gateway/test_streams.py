"""Event streams are bounded per API key and per gateway process, and every stream's slot comes
back: the limiter alone, then through a real gateway process."""

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.gateway.errors import TooManyStreams
from services.gateway.jobs.streams import StreamLimiter
from tests.conftest import api
from tests.support import environment
from tests.support.processes import Gateway, gateway_for_module

OTHER_KEY = "other-key"
PER_KEY = 2
TOTAL = 3

# --- the limiter alone -----------------------------------------------------------------------


def test_a_key_is_admitted_up_to_its_cap() -> None:
    limiter = StreamLimiter(max_streams=10, max_per_key=2, retry_after_s=7)
    with limiter.admit("a"), limiter.admit("a"):
        with pytest.raises(TooManyStreams) as refused, limiter.admit("a"):
            pass
        assert refused.value.headers == {"Retry-After": "7"}
        with limiter.admit("b"):
            assert limiter.open_streams() == 3
    assert limiter.open_streams() == 0


def test_the_limiter_holds_its_total_across_keys() -> None:
    limiter = StreamLimiter(max_streams=2, max_per_key=2, retry_after_s=1)
    with (
        limiter.admit("a"),
        limiter.admit("b"),
        pytest.raises(TooManyStreams, match="this gateway"),
        limiter.admit("c"),
    ):
        pass
    with limiter.admit("c"):
        assert limiter.open_streams() == 1


def test_a_refused_stream_takes_no_slot() -> None:
    limiter = StreamLimiter(max_streams=1, max_per_key=1, retry_after_s=1)
    with limiter.admit("a"):
        for _ in range(3):
            with pytest.raises(TooManyStreams), limiter.admit("a"):
                pass
    assert limiter.open_streams() == 0
    with limiter.admit("a"):
        pass


def test_a_slot_comes_back_when_the_stream_raises() -> None:
    limiter = StreamLimiter(max_streams=1, max_per_key=1, retry_after_s=1)
    with pytest.raises(RuntimeError), limiter.admit("a"):
        raise RuntimeError("the database went away")
    assert limiter.open_streams() == 0


async def test_a_slot_comes_back_when_the_stream_is_cancelled() -> None:
    limiter = StreamLimiter(max_streams=1, max_per_key=1, retry_after_s=1)
    admitted = asyncio.Event()

    async def stream() -> None:
        with limiter.admit("a"):
            admitted.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(stream())
    await admitted.wait()
    assert limiter.open_streams() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limiter.open_streams() == 0


# --- through a gateway -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(platform: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from gateway_for_module(
        tmp_path_factory,
        OFFLOAD_API_KEYS=f"{environment.API_KEY},{OTHER_KEY}",
        OFFLOAD_SSE_MAX_STREAMS_PER_KEY=str(PER_KEY),
        OFFLOAD_SSE_MAX_STREAMS=str(TOTAL),
        OFFLOAD_RETRY_AFTER_S="3",
    )


@pytest.fixture
def base_url(gateway: Gateway) -> str:
    """The gateway's URL once the streams of earlier tests have given their slots back."""
    deadline = time.monotonic() + 10
    while open_streams(gateway.base_url) > 0:
        assert time.monotonic() < deadline, "streams of an earlier test are still open"
        time.sleep(0.05)
    return gateway.base_url


def open_streams(base_url: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{base_url}/metrics").text):
        if family.name == "offload_sse_streams_open":
            return sum(sample.value for sample in family.samples)
    raise AssertionError("no offload_sse_streams_open in /metrics")


def queued_job(base_url: str) -> str:
    """A job that stays queued (no analyzer consumes the test queue here)."""
    with api(base_url) as client:
        blog = f"https://blog-{uuid.uuid4().hex[:12]}.example.com/"
        response = client.post("/v1/analyses", json={"blog_url": blog})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


class Stream:
    """An open event stream whose events are read one at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()

    def next_event(self) -> dict[str, Any]:
        for line in self.lines:
            if line.startswith("data: "):
                event: dict[str, Any] = json.loads(line.removeprefix("data: "))
                return event
        raise AssertionError("the stream ended without another event")


def open_stream(stack: ExitStack, client: httpx.Client, job_id: str) -> httpx.Response:
    return stack.enter_context(client.stream("GET", f"/v1/jobs/{job_id}/events"))


def admitted(stack: ExitStack, client: httpx.Client, job_id: str) -> Stream:
    response = open_stream(stack, client, job_id)
    assert response.status_code == 200, response.read()
    stream = Stream(response)
    assert stream.next_event()["status"] == "queued"
    return stream


def assert_refused(response: httpx.Response, message: str) -> None:
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.headers["content-type"] == "application/json"
    error = json.loads(response.read())["error"]
    assert error["code"] == "too_many_streams"
    assert message in error["message"]


@pytest.mark.integration
def test_streams_past_the_key_cap_are_429_while_admitted_ones_keep_streaming(
    base_url: str,
) -> None:
    job_id = queued_job(base_url)
    with ExitStack() as stack:
        client = stack.enter_context(api(base_url))
        streams = [admitted(stack, client, job_id) for _ in range(PER_KEY)]
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as refused:
            assert_refused(refused, "this API key")
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
        for stream in streams:  # still streaming: each sees the cancellation, then ends
            assert stream.next_event()["status"] == "cancelled"
            assert [line for line in stream.lines if line.startswith("data: ")] == []


@pytest.mark.integration
def test_a_closed_stream_gives_its_slot_back(base_url: str) -> None:
    job_id = queued_job(base_url)
    with ExitStack() as stack:
        client = stack.enter_context(api(base_url))
        first = open_stream(stack, client, job_id)
        second = admitted(stack, client, job_id)
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as refused:
            assert refused.status_code == 429
        first.close()  # the client goes away mid-stream
        deadline = time.monotonic() + 5
        while True:
            again = open_stream(stack, client, job_id)
            if again.status_code == 200:
                break
            again.close()
            assert time.monotonic() < deadline, "the closed stream's slot never came back"
            time.sleep(0.1)
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
        assert second.next_event()["status"] == "cancelled"
        assert [e["status"] for e in _events(again)] == ["queued", "cancelled"]


@pytest.mark.integration
def test_streams_that_end_give_their_slots_back(base_url: str) -> None:
    with api(base_url) as client:
        for _ in range(3 * PER_KEY):
            job_id = queued_job(base_url)
            assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
            with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
                assert stream.status_code == 200
                assert [e["status"] for e in _events(stream)] == ["cancelled"]


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    return [
        json.loads(line.removeprefix("data: "))
        for line in response.iter_lines()
        if line.startswith("data: ")
    ]


@pytest.mark.integration
def test_the_total_cap_holds_across_keys(base_url: str) -> None:
    job_id = queued_job(base_url)
    with ExitStack() as stack:
        client = stack.enter_context(api(base_url))
        other = stack.enter_context(api(base_url, OTHER_KEY))
        # Streams are kept referenced: a dropped httpx line iterator closes its connection.
        streams = [admitted(stack, client, job_id) for _ in range(PER_KEY)]
        streams.append(admitted(stack, other, job_id))  # the other key has room of its own
        with other.stream("GET", f"/v1/jobs/{job_id}/events") as refused:
            assert_refused(refused, "this gateway")
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
        assert [stream.next_event()["status"] for stream in streams] == ["cancelled"] * TOTAL
