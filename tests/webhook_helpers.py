"""A backend's webhook endpoint on 127.0.0.1, for the webhook tests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import trio

__all__ = ["SECRET", "Receiver"]

SECRET = "a-webhook-secret-for-tests"


class Receiver:
    """A backend's webhook endpoint: records every request; ``fail`` answers 500 to the first
    that many requests of each event id."""

    def __init__(self, port: int = 0, fail: int = 0) -> None:
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.fail = fail
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with outer.lock:
                    seen = sum(1 for h, _, _ in outer.requests
                               if h["x-trionet-event-id"] == headers["x-trionet-event-id"])
                    status = 500 if seen < outer.fail else 200
                    outer.requests.append((headers, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def accepted(self) -> list[dict[str, Any]]:
        """The events answered 200, decoded."""
        with self.lock:
            return [json.loads(body) for _, body, status in self.requests if status == 200]

    async def wait_for(self, kind: str, count: int = 1,
                       seconds: float = 15) -> list[dict[str, Any]]:
        with trio.fail_after(seconds):
            while True:
                found = [e for e in self.accepted() if e["type"] == kind]
                if len(found) >= count:
                    return found
                await trio.sleep(0.02)
