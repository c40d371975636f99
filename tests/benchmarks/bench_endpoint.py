"""Endpoint-client benchmark, a script (pytest collects only test_*.py, so never this):

    python tests/benchmarks/bench_endpoint.py                    # 400 requests, concurrency 4, 3 rounds
    python tests/benchmarks/bench_endpoint.py --requests 1000 --delay-ms 20 --keep-alive

Requests/s of the endpoint client on the `openai` package (finetune.serving.endpoint) against the one it replaced
(hand-written over urllib, read from git at --old-rev), both against tests/serving.py's FaultServer with no faults,
no cache, the same bodies and concurrency. The server runs in a process of its own, as a real one would, so the
clients' threads do not compete with it for the GIL. It answers at once unless --delay-ms, so the figure is the
client's own overhead per request; with a delay like a real model's, both approach concurrency / delay. FaultServer
speaks HTTP/1.0 (a connection per request); --keep-alive makes it HTTP/1.1 as vLLM and `transformers serve` are,
where a client that keeps connections open saves the connect. Rounds alternate old/new so a busy machine slows both
alike. Figures, not a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from finetune.serving import endpoint as new_endpoint
from tests.serving import FaultServer, free_port

OLD_REV = "206e1ad"  # the last commit with the urllib client


def load_old(rev: str):
    source = subprocess.run(
        ["git", "show", f"{rev}:finetune/serving/endpoint.py"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "endpoint_urllib.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("endpoint_urllib", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def serve(port: int, delay_s: float, keep_alive: bool, stop) -> None:
    with FaultServer(port=port, delay_s=delay_s) as server:
        if keep_alive:  # BaseHTTPRequestHandler keeps the connection open from HTTP/1.1 on
            handler = server._httpd.RequestHandlerClass
            handler.protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: with Nagle on, a kept connection waits for the client's
            # delayed ACK (40 ms) between them. Real servers (uvicorn) set TCP_NODELAY too.
            handler.disable_nagle_algorithm = True
        stop.wait()


def wait_for(port: int, timeout_s: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def rate(module, url: str, n: int, concurrency: int, tag: str) -> float:
    client = module.Client(url, concurrency=concurrency, timeout_s=30, max_retries=0, cache_dir=None, stage=tag)
    # A distinct prompt per request (identical bodies are asked once); the round tag keeps rounds apart.
    bodies = [module.chat_body("m", [{"role": "user", "content": f"{tag} q{i}"}], temperature=0) for i in range(n)]
    t0 = time.perf_counter()
    answers = client.complete(bodies, tag)
    elapsed = time.perf_counter() - t0
    assert [a.content for a in answers] == [f"answer to {tag} q{i}" for i in range(n)]
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--delay-ms", type=float, default=0.0, help="server time per request (0: answer at once)")
    ap.add_argument("--keep-alive", action="store_true", help="the server speaks HTTP/1.1 and keeps connections")
    ap.add_argument("--old-rev", default=OLD_REV, help="git revision holding the old urllib client")
    args = ap.parse_args()

    clients = {"old (urllib)": load_old(args.old_rev), "new (openai)": new_endpoint}
    rates: dict[str, list[float]] = {name: [] for name in clients}
    port, stop = free_port(), multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(port, args.delay_ms / 1000, args.keep_alive, stop))
    server.start()
    try:
        wait_for(port)
        url = f"http://127.0.0.1:{port}/v1"
        rate(new_endpoint, url, 8, args.concurrency, "warm-up")  # imports openai, starts the pool
        for r in range(args.rounds):
            for name, module in clients.items():
                rates[name].append(rate(module, url, args.requests, args.concurrency, f"r{r}-{name[:3]}"))
    finally:
        stop.set()
        server.join()
    print(
        f"{args.requests} requests x {args.rounds} rounds, concurrency {args.concurrency}, "
        f"server delay {args.delay_ms:g} ms, {'HTTP/1.1 keep-alive' if args.keep_alive else 'HTTP/1.0'} "
        "(FaultServer in its own process, no faults)"
    )
    for name, values in rates.items():
        print(
            f"  {name:13s} median {statistics.median(values):7.1f} requests/s  "
            f"(rounds: {', '.join(f'{v:.1f}' for v in values)})"
        )


if __name__ == "__main__":
    main()
