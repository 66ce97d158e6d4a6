"""Fixtures for synth tests: a scripted backend, a small OpenAI-compatible server, config files."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from llm2vec_lite.synth.backends import Backend, register_backend, registered_backends


class ScriptedBackend(Backend):
    """Answers from a function of (prompt, seed): deterministic canned text instead of a model.

    ``ScriptedBackend.answer`` is set per test; ``fail_after`` calls raise KeyboardInterrupt (a
    simulated kill); every call is recorded in ``calls``.
    """

    answer: Callable[[str, int], str] = staticmethod(lambda prompt, seed: "")
    fail_after: int | None = None
    calls: list[list[str]] = []

    def generate(self, prompts, *, seed, stop_at_newline=False):
        cls = type(self)
        if cls.fail_after is not None and len(cls.calls) >= cls.fail_after:
            raise KeyboardInterrupt("simulated kill")
        cls.calls.append(list(prompts))
        return [cls.answer(p, seed + i) for i, p in enumerate(prompts)]


if "scripted" not in registered_backends():
    register_backend("scripted", ScriptedBackend)


@pytest.fixture
def scripted():
    """The scripted backend class, reset for this test."""
    ScriptedBackend.answer = staticmethod(lambda prompt, seed: "")
    ScriptedBackend.fail_after = None
    ScriptedBackend.calls = []
    return ScriptedBackend


def field_answer(prompt: str, seed: int) -> str:
    """A well-formed field-by-field answer that differs with the prompt (so nothing is a duplicate)."""
    import hashlib

    tag = hashlib.sha256(prompt.encode()).hexdigest()[:6]
    last = prompt.strip().split("\n")[-1]
    if last.startswith("Query"):
        return f"Query: how do people cook rice {tag}\nTask: more text the parser must cut"
    if last.startswith("Tasks"):
        return "1. Given a question about gardening, retrieve guides that answer it.\n2. Given a song title, retrieve its lyrics and the story of the song."
    return f"Sure, here it is:\nA passage about the topic of the request, written for the reader {tag} and {seed % 97}."


@pytest.fixture
def write_config(tmp_path) -> Callable[..., Path]:
    """``write_config(**fields)`` -> a synth.yaml in tmp_path (defaults: scripted backend, fields)."""

    def write(**fields) -> Path:
        data = {
            "generator": {"backend": "scripted", "model": "canned", "batch_size": 4},
            "families": [{"name": "retrieval", "tasks": 2, "examples_per_task": 3}, {"name": "sts", "examples_per_task": 4}],
            "format": "fields",
            "output": "out/synth.jsonl",
            "filters": {"language": None},
        }
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        path = tmp_path / "synth.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    return write


class _Handler(BaseHTTPRequestHandler):
    server: _OpenAIServer

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, code: int, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.server.count()
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "canned-model", "object": "model"}]})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):
        self.server.count()
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if self.server.require_key and self.headers.get("Authorization") != f"Bearer {self.server.require_key}":
            self._send(401, {"error": {"message": "bad key"}})
            return
        if body.get("model") != "canned-model":
            self._send(404, {"error": {"message": f"model {body.get('model')} not found"}})
            return
        if self.path.endswith("/chat/completions"):
            text = self.server.reply(body["messages"][-1]["content"], body.get("seed", 0))
            self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})
        elif self.path.endswith("/completions"):
            text = self.server.reply(body["prompt"], body.get("seed", 0))
            self._send(200, {"choices": [{"index": 0, "text": text}]})
        else:
            self._send(404, {"error": "not found"})


class _OpenAIServer(ThreadingHTTPServer):
    """A minimal OpenAI-compatible server on 127.0.0.1 that serves at most ``max_requests``."""

    daemon_threads = True

    def __init__(self, reply, max_requests: int, require_key: str | None = None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.reply, self.max_requests, self.require_key = reply, max_requests, require_key
        self.requests: list[dict] = []
        self._served = 0
        self._lock = threading.Lock()

    def count(self) -> None:
        with self._lock:
            self._served += 1
            if self._served >= self.max_requests:  # bounded: stops by itself after this one
                threading.Thread(target=self.shutdown, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def openai_server():
    """``openai_server(reply, max_requests=200, require_key=None)`` -> a running server (stopped after the test)."""
    servers: list[_OpenAIServer] = []

    def start(reply, max_requests: int = 200, require_key: str | None = None) -> _OpenAIServer:
        server = _OpenAIServer(reply, max_requests, require_key)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
