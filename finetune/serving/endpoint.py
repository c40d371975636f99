"""A client for OpenAI-compatible chat completions (vLLM, `transformers serve`, OpenAI) on the `openai` package.

    client = Client("http://127.0.0.1:8000/v1", concurrency=4, timeout_s=60, max_retries=4, cache_dir="cache/")
    answers = client.complete([chat_body("models/merged", messages, temperature=0, max_tokens=96)], "evaluate")

The `openai` client does the HTTP: one connection pool shared by a bounded thread pool, the per-request timeout,
typed errors. Its own retries are off and the loop here retries instead, because the knobs mean what params.yaml
says: `backoff_s` is the first pause, doubled each time (openai's starts at a fixed 0.5 s and stops growing at 8 s);
a reply that is not a chat completion is asked again (openai returns it); every 4xx but 429 (a wrong model name,
key or URL) fails at once, since asking again cannot fix it (openai also retries 408 and 409). Retried: connection
refused or reset, timeout, HTTP 429 or 5xx, a malformed reply. A caller that can do without one answer (generate's
teacher) passes `refusals=True`: a request the server refuses as invalid (HTTP 400, 413, 422: a prompt over its
context, a field it lacks) then comes back as a `Refusal` with the server's reason instead of stopping the run.

Every answer is written to the cache the moment it arrives, one JSON file per request named by a hash of the request
body (model, messages, sampling parameters), so a rerun, or a run after a crash, asks only for what is missing. The
API key is read from the environment variable the params name, sent as a Bearer header and never written to the
cache, a log or an error. Refusals are cached too (see `Client.ask`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from finetune.io import Progress, log, write_json

RETRY_AFTER_CAP_S = 60.0  # a server asking for a longer pause than this is not coming back within one run
# The server judged the request itself invalid: too long for its context (vLLM, `transformers serve`, OpenAI answer
# 400; proxies 413), or a field it does not take (400, or 422 from FastAPI-based servers). The same body gets the
# same answer, so it is never retried.
REFUSED = (400, 413, 422)


class EndpointError(Exception):
    """A request that failed for good, as one line: the URL, the fault and what was tried.

    Not an InputError: the data is fine, the server is down, overloaded or refuses the key, model name or URL.
    `finetune` prints it as one `error: …` line all the same."""

    def __init__(self, url: str, message: str, status: int | None = None, reason: str = ""):
        # status: the HTTP status of a refused request (None for anything else), so a caller can tell a server that
        # rejects one field of the body (400/422) from one that is down; reason: the server's own words for it
        self.url, self.message, self.status, self.reason = url, message, status, reason
        super().__init__(f"{url}: {message}")


@dataclass(frozen=True)
class Answer:
    content: str
    latency_ms: float  # wall time of the request that succeeded, as this client saw it (queueing included)
    completion_tokens: int | None  # from the reply's `usage`, when the server sends it
    cached: bool


@dataclass(frozen=True)
class Refusal:
    """A request the server refused as invalid (HTTP 400, 413 or 422), asked with `refusals=True`."""

    status: int
    reason: str  # the server's message, one line, cut short
    cached: bool

    def size(self) -> tuple[int | None, int | None] | None:
        """(prompt tokens, the server's limit) when the server refused the request as too large, each None where its
        message does not give it; None when it refused it for another reason."""
        prompt, limit = _PROMPT_TOKENS.search(self.reason), _LIMIT_TOKENS.search(self.reason)
        if not (prompt or limit or self.status == 413 or _TOO_LARGE.search(self.reason)):
            return None
        return (int(prompt.group(1)) if prompt else None, int(limit.group(1)) if limit else None)


# How servers word "too large": `transformers serve` "The prompt has 1018 tokens, but the model takes at most 384";
# vLLM "maximum context length is 384 tokens. However, you requested 1018 tokens" (or "your request has 300 input
# tokens"); OpenAI "maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens".
_PROMPT_TOKENS = re.compile(r"(?:has|requested|resulted in|contains?)\s+(\d+)\s+(?:input\s+)?tokens", re.IGNORECASE)
_LIMIT_TOKENS = re.compile(
    r"(?:at most|maximum context length is|context length of|max_model_len(?: is| of|=)?)\s*(\d+)", re.IGNORECASE
)
_TOO_LARGE = re.compile(r"too (?:long|large)|context length|max_model_len|exceed", re.IGNORECASE)


class _Transient(Exception):
    """A fault worth another try; `retry_after` is the pause a 429/503 reply asked for, if any."""

    def __init__(self, what: str, retry_after: float | None = None):
        super().__init__(what)
        self.what, self.retry_after = what, retry_after


def chat_body(model: str, messages: list[dict], **sampling) -> dict:
    """The request body; sampling parameters left as None are not sent (the server's defaults apply)."""
    return {"model": model, "messages": messages, **{k: v for k, v in sampling.items() if v is not None}}


def cache_key(body: dict) -> str:
    # sort_keys: one request is one entry whatever its key order. The API key travels in a header, never here.
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def chat_url(url: str) -> str:
    """Accept the API root as servers print it (`…/v1`) or the full `…/v1/chat/completions`."""
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def reply_content(reply) -> str:
    """The answer text of a chat completion; KeyError/IndexError/TypeError when the reply is not one."""
    content = reply["choices"][0]["message"]["content"]
    if content is None:  # valid: e.g. a reasoning model that spent every token thinking
        return ""
    if not isinstance(content, str):
        raise TypeError(f"content is {type(content).__name__}")
    return content


class Client:
    def __init__(
        self,
        url: str,
        *,
        concurrency: int = 4,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        api_key_env: str | None = "OPENAI_API_KEY",
        cache_dir: str | os.PathLike | None = None,
        stage: str = "endpoint",
        section: str = "eval",
    ):
        self.url = chat_url(url)
        if urllib.parse.urlsplit(self.url).scheme not in ("http", "https"):
            raise EndpointError(url, "expected an http:// or https:// URL, such as http://127.0.0.1:8000/v1")
        self.concurrency, self.timeout_s = max(1, int(concurrency)), float(timeout_s)
        self.max_retries, self.backoff_s = max(0, int(max_retries)), float(backoff_s)
        self.api_key_env = api_key_env
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.stage, self.section = stage, section  # for log lines and for naming the params in error messages
        self._openai = None  # built on the first request: importing openai takes ~2 s, too long for --help
        self._lock = threading.Lock()

    @classmethod
    def from_params(cls, url: str, p, cache_dir, stage: str, section: str) -> Client:
        """From a params section holding concurrency, timeout_s, max_retries, backoff_s and api_key_env."""
        return cls(
            url,
            concurrency=p.concurrency,
            timeout_s=p.timeout_s,
            max_retries=p.max_retries,
            backoff_s=p.backoff_s,
            api_key_env=p.api_key_env,
            cache_dir=cache_dir,
            stage=stage,
            section=section,
        )

    # --- the cache ----------------------------------------------------------------------------------------------

    def _cache_path(self, key: str) -> Path | None:
        return self.cache_dir / f"{key}.json" if self.cache_dir is not None else None

    def cached(self, body: dict, refusals: bool = False) -> Answer | Refusal | None:
        """The cached answer to `body`; its cached refusal too with `refusals` (a caller that cannot take one asks
        again, and gets the error)."""
        path = self._cache_path(cache_key(body))
        if path is None or not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            if "refused" in entry:
                refused = entry["refused"]
                return Refusal(int(refused["status"]), str(refused["reason"]), True) if refusals else None
            answer = Answer(
                reply_content(entry["reply"]), float(entry["latency_ms"]), _completion_tokens(entry["reply"]), True
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            # Entries are written atomically, so this is a hand-edited or foreign file: ask again, overwrite it.
            log(self.stage, f"ignoring unreadable cache entry {path}")
            return None
        return answer

    # --- one request, with retries ------------------------------------------------------------------------------

    def _client(self):
        with self._lock:  # the worker threads share one client, hence one connection pool
            if self._openai is None:
                import openai

                root = self.url.removesuffix("/chat/completions")
                # api_key: a placeholder the client insists on; every request sets its own Authorization header.
                self._openai = openai.OpenAI(base_url=root, api_key="-", timeout=self.timeout_s, max_retries=0)
            return self._openai

    def _attempt(self, body: dict, secret: str | None) -> tuple[dict, float]:
        import httpx2
        import openai

        # The key is read per request and sent only when set: a local vLLM or `transformers serve` needs none.
        auth = {"Authorization": f"Bearer {secret}" if secret else openai.omit}
        t0 = time.perf_counter()
        try:
            # `post`, openai's documented way to any route: the body goes out exactly as cached (no typed
            # transform of the messages, ~3 ms a request), the raw reply comes back for the cache as the server
            # sent it, and a malformed one is ours to judge.
            response = self._client().post(
                "/chat/completions", body=body, cast_to=httpx2.Response, options={"headers": auth}
            )
            raw = response.content
        except openai.APIStatusError as e:
            what = f"HTTP {e.status_code} {e.response.reason_phrase}: {_snippet(e.response.content, secret)}"
            if e.status_code == 429 or e.status_code >= 500:
                raise _Transient(what, _retry_after(e.response.headers.get("Retry-After"))) from None
            hint = f" (is ${self.api_key_env} set to a valid key?)" if e.status_code in (401, 403) else ""
            raise EndpointError(
                self.url,
                f"{what}{hint}; not retried, asking again would not change it",
                e.status_code,
                _reason(e.response.content, secret),
            ) from None
        except openai.APITimeoutError:
            # The timeout bounds the connect and each read, not their sum, as httpx does.
            raise _Transient(f"no reply within timeout_s={self.timeout_s:g} s") from None
        except openai.APIConnectionError as e:
            raise _Transient(_describe(e)) from None
        latency_ms = (time.perf_counter() - t0) * 1000
        try:
            reply = json.loads(raw)
            reply_content(reply)
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Transient(f"malformed reply (not a chat completion): {_snippet(raw, secret)}") from None
        return reply, latency_ms

    def ask(self, body: dict, refusals: bool = False) -> Answer | Refusal:
        """One request: the cached answer if there is one, else the server's (retried), cached before returning.

        With `refusals`, a request the server refuses as invalid (REFUSED) is returned as a Refusal, and cached like
        an answer: the same body would be refused again, so a rerun stays free (and runs offline from a shared cache)
        and asks it again only once the request changes. A server whose limit was raised since gets it again once the
        entry is deleted (each holds "refused")."""
        if (hit := self.cached(body, refusals)) is not None:
            return hit
        secret = os.environ.get(self.api_key_env) if self.api_key_env else None
        faults: list[str] = []
        t0 = time.monotonic()
        for attempt in range(self.max_retries + 1):
            try:
                reply, latency_ms = self._attempt(body, secret)
            except EndpointError as e:
                if not refusals or e.status not in REFUSED:
                    raise
                if (path := self._cache_path(cache_key(body))) is not None:
                    write_json(path, {"request": body, "refused": {"status": e.status, "reason": e.reason}})
                return Refusal(e.status, e.reason, cached=False)
            except _Transient as e:
                faults.append(e.what)
                if attempt == self.max_retries:
                    break
                # 1, 2, 4, 8 … x backoff_s; the jitter keeps requests that failed together from retrying together.
                delay = self.backoff_s * 2**attempt * random.uniform(1.0, 1.25)
                if e.retry_after is not None:
                    delay = max(delay, min(e.retry_after, RETRY_AFTER_CAP_S))
                time.sleep(delay)
                continue
            if (path := self._cache_path(cache_key(body))) is not None:
                write_json(path, {"request": body, "reply": reply, "latency_ms": latency_ms})
            return Answer(reply_content(reply), latency_ms, _completion_tokens(reply), cached=False)
        distinct = list(dict.fromkeys(faults))
        raise EndpointError(
            self.url,
            f"{faults[-1]}; gave up after {len(faults)} attempts in {time.monotonic() - t0:.1f} s "
            f"(backoff from {self.backoff_s:g} s doubling, timeout {self.timeout_s:g} s"
            + (f"; faults seen: {' | '.join(distinct)}" if len(distinct) > 1 else "")
            + f"). Raise {self.section}.max_retries or {self.section}.timeout_s if the server is just slow; "
            "answers received so far are cached and will not be asked again",
        )

    # --- many requests ------------------------------------------------------------------------------------------

    def complete(self, bodies: list[dict], desc: str, refusals: bool = False) -> list[Answer | Refusal]:
        """Answers in the order of `bodies`; identical bodies are asked once. Raises EndpointError on a permanent
        failure, after the requests already in flight have finished (and been cached); with `refusals`, a refused
        request is a Refusal in the list instead (see `ask`)."""
        keys = [cache_key(b) for b in bodies]
        answers: dict[str, Answer] = {}
        for key, body in zip(keys, bodies, strict=True):
            if key not in answers and (hit := self.cached(body, refusals)) is not None:
                answers[key] = hit
        todo = {key: body for key, body in zip(keys, bodies, strict=True) if key not in answers}
        where = f", cache {self.cache_dir}" if self.cache_dir is not None else ""
        log(
            self.stage,
            f"{len(bodies)} requests to {self.url}: {len(answers)} answered from the cache{where}, "
            f"{len(todo)} to ask ({self.concurrency} at a time)",
        )
        if todo:
            t0 = time.perf_counter()
            pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="endpoint")
            try:
                futures = {pool.submit(self.ask, body, refusals): key for key, body in todo.items()}
                with Progress(self.stage, desc, len(futures), "request") as bar:
                    for future in as_completed(futures):
                        answers[futures[future]] = future.result()
                        bar.update()
            finally:
                # On a failure, drop what has not started; what is in flight finishes and lands in the cache.
                pool.shutdown(wait=True, cancel_futures=True)
            elapsed = max(time.perf_counter() - t0, 1e-9)
            log(self.stage, f"asked {len(todo)} in {elapsed:.1f} s: {len(todo) / elapsed:.2f} requests/s")
        return [answers[key] for key in keys]


def _describe(e: BaseException) -> str:
    """A connection failure in words: refused (no server), else the innermost cause (reset, DNS, TLS …)."""
    chain = [e]
    while (nxt := chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 10:
        chain.append(nxt)
    if any(isinstance(c, ConnectionRefusedError) for c in chain):
        return "connection refused (is the server running?)"
    root = chain[-1]
    return f"connection failed: {type(root).__name__}: {root}" if root is not e else f"connection failed: {e}"


def _completion_tokens(reply: dict) -> int | None:
    usage = reply.get("usage") or {}
    n = usage.get("completion_tokens")
    return int(n) if isinstance(n, (int, float)) else None


def _retry_after(value: str | None) -> float | None:
    # Seconds only; the HTTP-date form is rare from inference servers and falls back to the backoff.
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _reason(raw: bytes, secret: str | None, limit: int = 200) -> str:
    """The server's message in an error reply: `{"detail": …}` (FastAPI: `transformers serve`), `{"error":
    {"message": …}}` (OpenAI, vLLM), `{"error": …}`, `{"message": …}`, else the body as it came; as one line."""
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    for _ in range(2):  # {"error": {"message": …}} is two levels deep
        if isinstance(value, dict):
            value = next((value[k] for k in ("detail", "error", "message") if k in value), value)
    if isinstance(value, str):
        return _snippet(value.encode("utf-8"), secret, limit)
    return _snippet(raw, secret, limit)


def _snippet(raw: bytes, secret: str | None, limit: int = 200) -> str:
    """A reply body fit for a one-line message: whitespace collapsed, cut short, the API key blanked out (some
    servers echo a rejected key back)."""
    text = " ".join(raw.decode("utf-8", errors="replace").split())
    if secret:
        text = text.replace(secret, "***")
    return (text[: limit - 1] + "…" if len(text) > limit else text) or "(empty body)"
