"""B4 in its own process: stream a large provider output into storage, report RSS growth.

python deploy/bench/stream_big.py --mib 1024
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from activities.providers.replicate_api import ReplicateClient
from storyreel.storage import LocalStorage

CHUNK = b"\x5a" * (1 << 20)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def output_server(mib: int) -> ThreadingHTTPServer:
    """A provider's output URL: ``mib`` MiB generated on the fly."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(mib << 20))
            self.end_headers()
            for _ in range(mib):
                self.wfile.write(CHUNK)

        def log_message(self, format: str, *args: object) -> None:  # noqa: ARG002
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def main(mib: int) -> dict[str, float]:
    server = output_server(mib)
    url = f"http://127.0.0.1:{server.server_address[1]}/output.mp4"
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        storage = LocalStorage(root / "media")
        before = peak_rss_mib()
        async with ReplicateClient("http://127.0.0.1:1", "bench") as client:
            written = await client.download(url, root / "output.mp4")
        storage.put_file("generations/bench/clips/001.mp4", root / "output.mp4")
        after = peak_rss_mib()
    server.shutdown()
    return {"bytes": written, "rss_growth_mib": round(after - before, 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    result = asyncio.run(main(parser.parse_args().mib))
    sys.stdout.write(json.dumps(result) + "\n")
