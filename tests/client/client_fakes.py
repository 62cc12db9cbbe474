"""Real parts for client tests: a scripted OpenAI-compatible provider, a usage collector,
and the files of a small registry repository.

`FakeProvider` speaks the chat-completions wire format on 127.0.0.1 (JSON, and SSE over
chunked HTTP/1.1 for streams), so the real `openai` SDK talks to it through the
client's adapter. Each model follows a script of behaviours, one per request (the last
one repeats): answer, fail with a status (and `Retry-After`), answer too slowly, cut a
stream half-way by dropping the connection, or answer without `usage`. Every request is
logged, so a test can assert that nothing reached the provider.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# -- the provider ------------------------------------------------------------------------


@dataclass(frozen=True)
class Behaviour:
    """What the provider does with one request."""

    status: int = 200
    text: str | None = None  # default: "answer from MODEL"
    usage: bool = True
    delay_s: float = 0.0
    retry_after: str | None = None
    cut_after: int | None = None  # stream: drop the connection after this many chunks
    clean: bool = False  # with cut_after: end the body properly instead (no finish, no DONE)


def answer(text: str | None = None, *, usage: bool = True) -> Behaviour:
    return Behaviour(text=text, usage=usage)


def fail(status: int = 500, *, retry_after: str | None = None) -> Behaviour:
    return Behaviour(status=status, retry_after=retry_after)


def slow(delay_s: float) -> Behaviour:
    return Behaviour(delay_s=delay_s)


def cut(after: int = 2, text: str | None = None, *, clean: bool = False) -> Behaviour:
    return Behaviour(cut_after=after, text=text, clean=clean)


@dataclass
class Logged:
    """One request the provider received."""

    model: str
    stream: bool
    body: dict[str, Any]
    at: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class _Base:
    """An HTTP server on 127.0.0.1 in a thread, with a stop event for slow handlers."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                owner.get(self)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                # the client may have given up (a timeout): nothing left to answer
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    owner.post(self, body)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def get(self, handler: BaseHTTPRequestHandler) -> None:
        send_json(handler, 404, {"detail": "not here"})

    def post(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        send_json(handler, 404, {"detail": "not here"})

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    data: Any,
    headers: dict[str, str] | None = None,
) -> None:
    raw = json.dumps(data).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(raw)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(raw)
    handler.wfile.flush()


class FakeProvider(_Base):
    """An OpenAI-compatible chat-completions server, scripted per model."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Behaviour]] = {}
        self.requests: list[Logged] = []
        self._lock = threading.Lock()
        super().__init__()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def script(self, model: str, *behaviours: Behaviour) -> None:
        """`model` answers requests with these behaviours in order; the last one repeats."""
        self.scripts[model] = list(behaviours)

    def models_called(self) -> list[str]:
        return [r.model for r in self.requests]

    def _next(self, model: str) -> Behaviour:
        with self._lock:
            script = self.scripts.get(model) or [answer()]
            return script.pop(0) if len(script) > 1 else script[0]

    def post(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        model = str(body.get("model"))
        stream = bool(body.get("stream"))
        with self._lock:
            self.requests.append(Logged(model, stream, body, time.monotonic()))
        act = self._next(model)
        if act.delay_s and self.stopping.wait(act.delay_s):
            return
        if act.status != 200:
            headers = {"retry-after": act.retry_after} if act.retry_after else {}
            error = {"error": {"message": f"{model} failed", "type": "server_error"}}
            send_json(handler, act.status, error, headers)
            return
        text = act.text or f"answer from {model}"
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        if not stream:
            data: dict[str, Any] = {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
            }
            if act.usage:
                data["usage"] = usage
            send_json(handler, 200, data)
            return
        self._stream(handler, model, text, act, usage)

    def _stream(
        self,
        handler: BaseHTTPRequestHandler,
        model: str,
        text: str,
        act: Behaviour,
        usage: dict[str, int],
    ) -> None:
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()

        def event(data: Any) -> None:
            raw = f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
            handler.wfile.flush()

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [choice],
            }

        words = [w + " " for w in text.split(" ")]
        words[-1] = words[-1].rstrip()
        for i, word in enumerate(words):
            if act.cut_after is not None and i >= act.cut_after:
                if act.clean:
                    handler.wfile.write(b"0\r\n\r\n")
                    handler.wfile.flush()
                    return
                # Drop the line: shutdown sends FIN after the chunks already written, so
                # the client reads them all, then meets the end of a body that is not done.
                handler.connection.shutdown(socket.SHUT_RDWR)
                handler.close_connection = True
                return
            event(chunk({"content": word}))
        event(chunk({}, "stop"))
        if act.usage:
            event({**chunk({}), "choices": [], "usage": usage})
        event("[DONE]")
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()


class FakeCollector(_Base):
    """A usage sink speaking `POST /v1/usage` (deduplicating by id, as the server does);
    every other route answers 503, like a registry that is down."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.batches = 0
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        super().__init__()

    def get(self, handler: BaseHTTPRequestHandler) -> None:
        send_json(handler, 503, {"detail": "registry down"})

    def post(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        if handler.path != "/v1/usage":
            send_json(handler, 503, {"detail": "registry down"})
            return
        accepted = 0
        with self._lock:
            self.batches += 1
            for event in body["events"]:
                if event.get("id") not in self._seen:
                    self._seen.add(event.get("id"))
                    self.events.append(event)
                    accepted += 1
        send_json(handler, 202, {"accepted": accepted, "rejected": []})


# -- a registry repository ----------------------------------------------------------------

MODELS = """\
models:
  fake-a: {input_usd_per_mtok: 1.0, output_usd_per_mtok: 2.0, context_window: 32000,
           max_output_tokens: 4096, tokenizer: gpt-4o}
  fake-b: {input_usd_per_mtok: 0.5, output_usd_per_mtok: 1.0, context_window: 32000,
           max_output_tokens: 4096, tokenizer: gpt-4o}
"""
DEFAULTS = """\
max_output_tokens: 50
budget: {max_request_tokens: 400}
circuit_breaker: {failure_rate_pct: 50, min_requests: 4, cooldown_s: 60}
degraded_message: The assistant is unavailable right now.
"""
ANSWER_POLICY = """\
models:
  - {model: fake-a, timeout_s: 1.0, max_retries: 1}
  - {model: fake-b, timeout_s: 1.0}
params: {temperature: 0.2}
deadline_s: 10
"""
PATIENT_POLICY = """\
prompt: demo/answer
models:
  - {model: fake-a, timeout_s: 1.0, max_retries: 10}
  - {model: fake-b, timeout_s: 1.0, max_retries: 10}
deadline_s: 1.2
circuit_breaker: {min_requests: 100}
"""
ANSWER_PROMPT = """\
---
inputs:
  question: {type: string, max_length: 200000}
sample: {question: How do I reset my password?}
---
system:
You answer questions about Acme briefly.
{% include "partials/style.jinja" %}
user:
{{ question }}
"""
FILES = {
    "policies/_models.yaml": MODELS,
    "policies/_defaults.yaml": DEFAULTS,
    "policies/demo/answer.yaml": ANSWER_POLICY,
    "policies/demo/patient.yaml": PATIENT_POLICY,
    "prompts/demo/answer.jinja": ANSWER_PROMPT,
    "prompts/partials/style.jinja": "Be kind and precise.\n",
}
