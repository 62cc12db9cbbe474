"""A local OpenAI-compatible provider whose answers follow rules on the request (`rules.py`).

`RuleProvider` serves `POST /v1/chat/completions` (non-streamed) on 127.0.0.1 and a free
port, so `promptreg eval` and the real `openai` SDK talk to it as to any provider. It
counts requests per model, and a model can be told to fail: `provider.fail("gpt-4o",
500)` answers 500 to every request for it (`times=N` for the next N only).

For people: run it, then point `promptreg eval` at it —

    python -m tests.evals.provider --port 8089 &
    promptreg eval --provider http://127.0.0.1:8089/v1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

try:  # as a package module (tests) or run as `python -m tests.evals.provider`
    from . import rules
except ImportError:  # pragma: no cover - run as a plain script
    import rules  # type: ignore[no-redef]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class RuleProvider:
    """The provider, serving in a thread from construction until `close()`."""

    def __init__(self, port: int = 0) -> None:
        self.requests: Counter[str] = Counter()  # model -> requests received
        self.bodies: list[dict[str, Any]] = []
        self._failures: dict[str, tuple[int, int | None]] = {}  # model -> (status, times left)
        self.delay = 0.0  # seconds each answer takes: a provider slower than any lookup
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave at once: no 40 ms stalls

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                # Acknowledge the headers now: a client that sends its body in a second
                # segment would otherwise wait for our delayed ACK (up to 200 ms on Linux).
                if hasattr(socket, "TCP_QUICKACK"):
                    self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                length = int(self.headers.get("content-length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = None
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    owner.handle(self, body)

        self.server = _Server(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.base_url = f"{self.url}/v1"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def total(self) -> int:
        """Requests received, all models together."""
        with self._lock:
            return sum(self.requests.values())

    def fail(self, model: str, status: int = 500, *, times: int | None = None) -> None:
        """Answer `status` to requests for `model` (every one, or the next `times`)."""
        with self._lock:
            self._failures[model] = (status, times)

    def _failure(self, model: str) -> int | None:
        with self._lock:
            status, left = self._failures.get(model, (0, 0))
            if not status or left == 0:
                return None
            if left is not None:
                self._failures[model] = (status, left - 1)
            return status

    def handle(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        """Answer one request."""
        if handler.path.rstrip("/") != "/v1/chat/completions":
            return _send(handler, 404, {"error": {"message": "not found", "type": "not_found"}})
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _send(handler, 400, {"error": {"message": "bad request", "type": "invalid"}})
        model = str(body.get("model"))
        with self._lock:
            self.requests[model] += 1
            self.bodies.append(body)
        status = self._failure(model)
        if status is not None:
            error = {"message": f"{model} is failing (scripted)", "type": "server_error"}
            return _send(handler, status, {"error": error})
        if body.get("stream"):
            error = {"message": "this provider does not stream", "type": "invalid_request_error"}
            return _send(handler, 400, {"error": error})
        try:
            text = rules.answer(body["messages"])
        except Exception as exc:  # a rule's bug shows as this provider's 500, with the cause
            error = {"message": f"rule failed: {exc!r}", "type": "server_error"}
            return _send(handler, 500, {"error": error})
        if self.delay:
            time.sleep(self.delay)
        prompt = sum(rules.count_tokens(str(m.get("content", ""))) for m in body["messages"])
        completion = rules.count_tokens(text)
        return _send(
            handler,
            200,
            {
                "id": f"chatcmpl-{self.total}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            },
        )

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> RuleProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _send(handler: BaseHTTPRequestHandler, status: int, data: Any) -> None:
    raw = json.dumps(data).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(raw)))
    handler.end_headers()
    handler.wfile.write(raw)
    handler.wfile.flush()


def main() -> None:
    """Serve until interrupted: `python -m tests.evals.provider [--port 8089]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument(
        "--fail", action="append", default=[], metavar="MODEL", help="answer 500 for MODEL"
    )
    args = parser.parse_args()
    provider = RuleProvider(args.port)
    for model in args.fail:
        provider.fail(model)
    print(f"rule-based provider on {provider.base_url} (Ctrl-C stops it)", flush=True)
    try:
        provider.thread.join()
    except KeyboardInterrupt:
        provider.close()


if __name__ == "__main__":
    main()
