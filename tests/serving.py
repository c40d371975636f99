"""Servers the endpoint tests talk to, as real processes and sockets on 127.0.0.1.

FaultServer: OpenAI-style chat completions in a thread that misbehave on cue (429, 500, slow, malformed, reset,
down, 401) and count requests per prompt. transformers_serve: a `transformers serve` subprocess on a free port.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

FAULTS = ("429", "500", "slow", "malformed", "reset", "down", "401", "400")


def free_port() -> int:
    """A port nothing listens on right now (bind to 0, read it, close): also the 'connection refused' address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FaultServer:
    """Chat completions whose answer is `answer(prompt)`, prompt being the last user message.

    `faults[prompt]` lists faults the first requests for that prompt get, in order; later ones succeed, except
    after "down", which fails every request from then on (HTTP 500). "slow" sleeps `slow_s` then answers, for a
    client timeout shorter than that; "401" rejects the key and echoes it, as some APIs do; "400" refuses the request
    in OpenAI's words (`{"error": {"message": …}}`). Every request takes at
    least `delay_s`. A body holding one of `reject_fields` gets HTTP 400 naming it, as vLLM answers a field it does
    not support. With `context`, a request whose messages hold `context` words or more is refused as too long with
    `refuse_status`: 400 or 422 in `transformers serve`'s words (a word standing for a token), 413 with a proxy's
    bare "Request Entity Too Large". `counts[prompt]` is how many requests each prompt got, `max_in_flight` the most
    at once.
    """

    def __init__(
        self,
        answer: Callable[[str], str] = lambda p: f"answer to {p}",
        port: int = 0,
        slow_s: float = 1.0,
        delay_s: float = 0.0,
        reject_fields: tuple[str, ...] = (),
        context: int | None = None,
        refuse_status: int = 400,
    ):
        self.answer, self.slow_s, self.delay_s, self.reject_fields = answer, slow_s, delay_s, reject_fields
        self.context, self.refuse_status = context, refuse_status
        self.in_flight = self.max_in_flight = 0
        self.faults: dict[str, list[str]] = {}
        self.counts: Counter[str] = Counter()
        self.authorization: list[str | None] = []
        self.bodies: list[dict] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._httpd.daemon_threads = True
        # poll_interval: how long shutdown() may wait for the loop to notice; the 0.5 s default adds up in tests.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _fault_for(self, prompt: str) -> str | None:
        with self._lock:
            self.counts[prompt] += 1
            planned = self.faults.get(prompt, [])
            n = self.counts[prompt]
            if "down" in planned[:n]:
                return "down"
            return planned[n - 1] if n <= len(planned) else None

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, payload: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                # Out of flight before the body leaves: a client may send its next request the moment it has this
                # one's answer, before this thread would get back to count it done (max_in_flight one too many).
                self._done()
                self.wfile.write(payload)

            def _done(self) -> None:
                with server._lock:
                    if self._counted:
                        server.in_flight -= 1
                        self._counted = False

            def do_POST(self):
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    self._counted = True
                try:
                    self._answer()
                finally:
                    self._done()

            def _answer(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
                with server._lock:
                    server.authorization.append(self.headers.get("Authorization"))
                    server.bodies.append(body)
                fault = server._fault_for(prompt)
                time.sleep(server.delay_s)
                if rejected := [f for f in server.reject_fields if f in body]:
                    return self._send(400, json.dumps({"error": f"unsupported field: {rejected[0]}"}).encode())
                words = sum(len(m["content"].split()) for m in body["messages"])
                if server.context is not None and words >= server.context:
                    if server.refuse_status == 413:
                        return self._send(413, b"Request Entity Too Large")
                    detail = f"The prompt has {words} tokens, but the model takes at most {server.context}."
                    return self._send(server.refuse_status, json.dumps({"detail": detail}).encode())
                if fault == "reset":
                    self.close_connection = True  # no status line at all: the client sees the connection drop
                    return
                if fault == "401":
                    key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                    return self._send(401, json.dumps({"error": f"Incorrect API key provided: {key}"}).encode())
                if fault == "400":
                    refusal = {"error": {"message": "Invalid request: the content was flagged", "type": "invalid"}}
                    return self._send(400, json.dumps(refusal).encode())
                if fault == "429":
                    return self._send(429, b'{"error": "rate limited"}', {"Retry-After": "0"})
                if fault in ("500", "down"):
                    return self._send(500, b'{"error": "internal error"}')
                if fault == "malformed":
                    return self._send(200, b'{"choices": [{"message": ')
                if fault == "slow":
                    time.sleep(server.slow_s)
                content = server.answer(prompt)
                reply = {
                    "id": "test",
                    "object": "chat.completion",
                    "model": body.get("model"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
                    "usage": {"completion_tokens": len(content.split())},
                }
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a slow reply's client has gone
                    self._send(200, json.dumps(reply).encode())

        return Handler


def _get(url: str, timeout: float = 1.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status


@contextlib.contextmanager
def transformers_serve(model_dir: Path, log_path: Path, startup_s: float = 120.0) -> Iterator[str]:
    """`transformers serve MODEL_DIR` on 127.0.0.1 and a free port, offline; yields the API root URL.

    The model is preloaded (it is the server's forced model), so /health answering means requests can go. The
    server answers only to the model name it was started with: clients must send `str(model_dir)`.
    """
    port = free_port()
    exe = Path(sys.executable).with_name("transformers")  # the venv's console script, whatever PATH says
    cmd = [str(exe), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"transformers serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            with contextlib.suppress(OSError):
                if _get(f"http://127.0.0.1:{port}/health") == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"transformers serve not healthy in {startup_s} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
