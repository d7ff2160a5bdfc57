"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that keeps what it was sent
and answers from a script (then its default), in its own thread; stopped on exit."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    url: str
    script: list[tuple[int, dict[str, str]]]
    default: int = 200
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> tuple[int, dict[str, str]]:
        with self.lock:
            return self.script.pop(0) if self.script else (self.default, {})

    async def wait_for(self, count: int, timeout: float = 120.0) -> list[Hit]:
        """The first ``count`` hits, once there are that many (a condition, not a sleep)."""
        deadline = time.monotonic() + timeout
        while len(self.hits) < count:
            assert time.monotonic() < deadline, f"{len(self.hits)} of {count} hits: {self.hits}"
            await asyncio.sleep(0.1)
        return self.hits[:count]


@contextmanager
def receiver(*script: int | tuple[int, dict[str, str]], default: int = 200) -> Iterator[Receiver]:
    """A receiver answering ``script`` in order (a status, or a status and headers)."""
    answers = [(item, {}) if isinstance(item, int) else item for item in script]
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            status, headers = box[0].answer()
            box[0].hits.append(Hit(self.path, dict(self.headers.items()), body, status))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(f"http://127.0.0.1:{server.server_port}/hook", answers, default))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
