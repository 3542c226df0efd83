"""A loopback HTTP server for the test blogs, with latency, failure injection and counters."""

import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from tests.support.blogs import Blog, Post, Response, WordPressBlog, default_blogs


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    hits: Counter[str] = field(default_factory=Counter)
    failures: dict[str, list[int]] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0


class BlogServer:
    """Serves blogs on 127.0.0.1 (ephemeral port) from a background thread."""

    def __init__(
        self, blogs: Sequence[Blog] | None = None, *, count: int = 0, latency_s: float = 0.0
    ) -> None:
        chosen = list(default_blogs() if blogs is None else blogs)
        chosen += [WordPressBlog(f"wp{i}", seed=i) for i in range(count)]
        self.blogs = {blog.name: blog for blog in chosen}
        self.latency_s = latency_s
        self._state = _State()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Bind an ephemeral port and serve in a daemon thread."""
        handler = type("Handler", (_Handler,), {"owner": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        httpd.request_queue_size = 256
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd, self._thread = None, None

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>"""
        assert self._httpd is not None, "BlogServer is not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, name: str) -> str:
        """The URL of a blog's home, as a user would type it."""
        assert name in self.blogs, f"no blog named {name!r}"
        return f"{self.base_url}/{name}"

    def blog(self, name: str) -> Blog:
        """The blog object, for its posts and expected_metrics()."""
        return self.blogs[name]

    def post_url(self, name: str, post: Post) -> str:
        """The absolute URL of a post page."""
        return f"{self.url(name)}{self.blogs[name].post_path(post)}"

    def fail_next(self, path: str, status: int, times: int = 1) -> None:
        """Answer the next `times` requests for path (with its query, as sent) with status."""
        with self._state.lock:
            self._state.failures.setdefault(path, []).extend([status] * times)

    def hits(self, path: str) -> int:
        """How many requests arrived for path (with its query, as sent)."""
        with self._state.lock:
            return self._state.hits[path]

    def total_hits(self) -> int:
        """How many requests arrived in all."""
        with self._state.lock:
            return sum(self._state.hits.values())

    @property
    def max_in_flight(self) -> int:
        """The most requests that were being handled at the same time."""
        with self._state.lock:
            return self._state.max_in_flight

    def reset_stats(self) -> None:
        """Forget hits, in-flight peaks and pending failures."""
        with self._state.lock:
            self._state.hits.clear()
            self._state.failures.clear()
            self._state.max_in_flight = 0

    def _arrive(self, target: str) -> int | None:
        """Count a request as it arrives; return the injected status to answer with, if any."""
        state = self._state
        with state.lock:
            state.hits[target] += 1
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            pending = state.failures.get(target)
            return pending.pop(0) if pending else None

    def _leave(self) -> None:
        with self._state.lock:
            self._state.in_flight -= 1

    def _respond(self, target: str, failure: int | None) -> Response:
        if failure is not None:
            return Response(failure, f"injected {failure}".encode(), "text/plain")
        parts = urlsplit(target)
        name, _, rest = parts.path.lstrip("/").partition("/")
        blog = self.blogs.get(name)
        if blog is None:
            return Response(404, b"no such blog", "text/plain")
        if not rest and not parts.path.endswith("/"):
            return Response(301, headers=(("Location", f"/{name}/"),))
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        return blog.handle("/" + rest, query, f"{self.base_url}/{name}")


class _Handler(BaseHTTPRequestHandler):
    owner: BlogServer
    protocol_version = "HTTP/1.1"
    timeout = 10

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle's algorithm and the
        # client's delayed ACK stall every keep-alive response by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        failure = self.owner._arrive(self.path)
        try:
            if self.owner.latency_s:
                time.sleep(self.owner.latency_s)
            response = self.owner._respond(self.path, failure)
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for key, value in response.headers:
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout fired)
        finally:
            self.owner._leave()

    def log_message(self, format: str, *args: Any) -> None:
        pass
