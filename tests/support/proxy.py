"""A TCP forwarder a test can cut and restore, to play a broker outage for one client.

    proxy = TcpProxy(5672)            # listens on 127.0.0.1:<ephemeral>, forwards to :5672
    proxy.start()
    ... point a client at proxy.port ...
    proxy.stop()                      # refuses new connections, drops every live one
    proxy.start()                     # listens again on the same port
    proxy.pause()                     # connections stay open but nothing gets through
    proxy.resume()                    # what was held back is delivered

Only the client behind the proxy loses the broker; the broker itself is never touched.
"""

import contextlib
import socket
import threading
from types import TracebackType
from typing import Self

_CHUNK = 65536


class TcpProxy:
    """Forward 127.0.0.1:`port` to `target_host`:`target_port`, one thread per direction."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()
        self._connections = 0
        self._flowing = threading.Event()
        self._flowing.set()

    @property
    def running(self) -> bool:
        return self._listener is not None

    @property
    def connections(self) -> int:
        """How many client connections were accepted since the proxy was created."""
        with self._lock:
            return self._connections

    def start(self) -> None:
        """Listen (again, on the same port once it has one) and forward what connects."""
        if self._listener is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._acceptor = threading.Thread(
            target=self._accept, args=(listener,), name=f"proxy-accept-{self.port}", daemon=True
        )
        self._acceptor.start()

    def pause(self) -> None:
        """Hold back every byte in both directions, leaving the connections open (a silent
        network: no reset, no close, just no answers)."""
        self._flowing.clear()

    def resume(self) -> None:
        """Deliver what was held back and forward again."""
        self._flowing.set()

    def stop(self) -> None:
        """Stop listening (new connections are refused) and cut every live connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
            self._acceptor = None
        with self._lock:
            live, self._sockets = self._sockets, set()
        for sock in live:
            _close(sock)
        self._flowing.set()  # lets paused pumps find their sockets closed and exit

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._listener is not listener:  # stopped while we were connecting
                    _close(client)
                    _close(upstream)
                    return
                self._sockets.update((client, upstream))
                self._connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump,
                    args=(source, sink),
                    name=f"proxy-pump-{self.port}",
                    daemon=True,
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                self._flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # Either side going away ends the whole connection, as a real network cut would.
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)
            _close(source)
            _close(sink)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
