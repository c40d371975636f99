"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`): no websocket client,
no driver download, only Debian's `chromium` package (the README's set-up installs it).

`render(page)` opens a local HTML file with the network cut off three ways (a proxy that refuses, a host resolver
that resolves nothing, the DevTools "offline" switch), records every request the page makes and every Content
Security Policy refusal, measures each `svg.chart` and `img`, and takes a full-page screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

WIDTH = 1280


def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@dataclass
class Rendered:
    screenshot: bytes  # PNG, the whole page at 1 CSS px per pixel
    requests: list[str]  # every URL the page asked for, the page itself included
    violations: list[str]  # URLs blocked by the page's Content-Security-Policy
    errors: list[str]  # console errors and uncaught exceptions
    charts: list[dict] = field(default_factory=list)  # {title, x, y, width, height, marks} in page pixels
    images: list[dict] = field(default_factory=list)  # {src, loaded}
    height: int = 0


def colours(png: bytes, box: tuple[int, int, int, int] | None = None) -> set[tuple[int, int, int]]:
    """The distinct colours of a screenshot, or of the (left, top, right, bottom) box in it."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    if box is not None:
        image = image.crop(box)
    return {c for _, c in image.getcolors(maxcolors=1 << 24)}


def chart_drew(png: bytes, chart: dict) -> bool:
    """True when the chart's box in the screenshot holds its first series' colour (the marks were painted), not
    only the white background and the grey of axes and text."""
    from finetune.evaluation.svg import COLOURS

    box = (
        round(chart["x"]),
        round(chart["y"]),
        round(chart["x"] + chart["width"]),
        round(chart["y"] + chart["height"]),
    )
    first = tuple(int(COLOURS[0][i : i + 2], 16) for i in (1, 3, 5))
    return first in colours(png, box)


class _Pipe:
    """Newline-free JSON messages separated by NUL bytes, as Chromium speaks them on fds 3 (in) and 4 (out)."""

    def __init__(self, write_fd: int, read_fd: int, proc: subprocess.Popen):
        self.w, self.r, self.proc = write_fd, read_fd, proc
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.r, 1 << 16)
            if not chunk:
                raise RuntimeError(f"chromium closed the pipe (exit status {self.proc.poll()})")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: str | None = None, timeout: float = 60, **params) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        while True:
            e = self._read_message(deadline)
            if e.get("method") == method:
                return e
            self.events.append(e)


MEASURE = """(() => {
  const abs = r => ({x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height});
  return JSON.stringify({
    charts: [...document.querySelectorAll('svg.chart')].map(s => ({
      title: (s.querySelector('title') || {}).textContent || '', marks: s.querySelectorAll('.mark').length,
      ...abs(s.getBoundingClientRect())})),
    images: [...document.images].map(i => ({src: i.src.slice(0, 80), loaded: i.complete && i.naturalWidth > 0})),
    height: Math.ceil(document.documentElement.scrollHeight),
    violations: window.__violations || [],
  });
})()"""

# Installed before the page's own content runs, so no refusal happens before anyone listens.
LISTEN = (
    "window.__violations = []; document.addEventListener('securitypolicyviolation', e => "
    "window.__violations.push(e.blockedURI + ' (' + e.violatedDirective + ')'));"
)


def render(page: Path, timeout: float = 90) -> Rendered:
    exe = chromium()
    if exe is None:
        raise RuntimeError("no chromium binary: install it with `apt-get install -y chromium` (README set-up)")
    url = page.resolve().as_uri()
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()
    # The child's ends go above 10, so putting them on 3 and 4 can neither overwrite nor close one of them.
    child_r, child_w = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    args = [
        exe,
        "--headless",
        "--no-sandbox",  # tests run as root in CI containers, where the sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--mute-audio",
        f"--user-data-dir={profile}",
        # The network is gone: every host resolves to nothing and every request goes to a proxy that is not there.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=http://127.0.0.1:9",
        "--remote-debugging-pipe",
        "about:blank",
    ]

    # The shell puts our pipe ends on the child's fds 3 (it reads commands) and 4 (it writes replies), then becomes
    # Chromium: no preexec_fn, which is unsafe while the test process runs threads (the endpoint test servers).
    wire = f'exec "$@" 3<&{child_r} 4>&{child_w} {child_r}<&- {child_w}>&-'
    proc = subprocess.Popen(
        ["bash", "-c", wire, "bash", *args],  # bash: dash takes one-digit fds only
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(child_r, child_w),
    )
    os.close(child_r)
    os.close(child_w)
    pipe = _Pipe(to_chrome_w, from_chrome_r, proc)
    try:
        target = next(t for t in pipe.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        session = pipe.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            pipe.call(f"{domain}.enable", session)
        pipe.call(
            "Network.emulateNetworkConditions",
            session,
            offline=True,
            latency=0,
            downloadThroughput=-1,
            uploadThroughput=-1,
        )
        pipe.call(
            "Emulation.setDeviceMetricsOverride", session, width=WIDTH, height=900, deviceScaleFactor=1, mobile=False
        )
        pipe.call("Page.addScriptToEvaluateOnNewDocument", session, source=LISTEN)
        pipe.call("Page.navigate", session, url=url)
        pipe.wait_for("Page.loadEventFired", timeout)
        value = pipe.call("Runtime.evaluate", session, expression=MEASURE, returnByValue=True)["result"]["value"]
        measured = json.loads(value)
        shot = pipe.call(
            "Page.captureScreenshot",
            session,
            timeout=timeout,
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": WIDTH, "height": measured["height"], "scale": 1},
        )
        events = pipe.events
        requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
        errors = [
            e["params"]["entry"]["text"]
            for e in events
            if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
        ]
        errors += [
            e["params"]["exceptionDetails"]["text"] for e in events if e.get("method") == "Runtime.exceptionThrown"
        ]
        return Rendered(
            screenshot=base64.b64decode(shot["data"]),
            requests=requests,
            violations=measured["violations"],
            errors=errors,
            charts=measured["charts"],
            images=measured["images"],
            height=measured["height"],
        )
    finally:
        try:
            pipe.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(to_chrome_w)
        os.close(from_chrome_r)
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    # python -m tests.browser reports/heating/index.html docs/report.png: the README's screenshot of a real run's report
    import io
    import sys

    from PIL import Image

    shot = render(Path(sys.argv[1]))
    # 128 colours: a third of the size for a page of flat colours and text, and no visible loss.
    Image.open(io.BytesIO(shot.screenshot)).quantize(colors=128).save(sys.argv[2], optimize=True)
    print(f"{sys.argv[2]}: {len(shot.charts)} charts, {shot.height} px high, requests {shot.requests}")
