"""A headless Chromium driven over the DevTools protocol, for pages that load their data after the load event.

``chromium --screenshot`` shoots at the load event; a web app that fetches its data afterwards (embedding-atlas
queries its server for the points) needs a browser that stays open while the test waits for what it should
see. :class:`Browser` starts Debian's ``chromium`` headless with a DevTools port and speaks the protocol over a
websocket (the ``websockets`` client that the explore extra brings).
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--no-first-run", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--enable-unsafe-webgpu"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """``with Browser(binary, profile) as b: b.open(url); b.wait_for(js); b.screenshot(path)``."""

    def __init__(self, binary: str, profile: Path, size: tuple[int, int] = (1400, 900)) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([binary, *FLAGS, f"--remote-debugging-port={self.port}",
                                      f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                                      "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ws = None
        self._id = 0

    def __enter__(self) -> "Browser":
        from websockets.sync.client import connect

        deadline = time.monotonic() + 60
        while True:
            try:
                targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=5))
                page = next(t for t in targets if t["type"] == "page")
                break
            except (OSError, StopIteration, ValueError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("chromium did not open its DevTools port") from None
                time.sleep(0.2)
        self._conn = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        self.ws = self._conn.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.ws is not None:
            self._conn.__exit__(None, None, None)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one protocol command and return its result (events received meanwhile are dropped)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=120))
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def open(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 120.0) -> Any:
        """Poll ``expression`` until it is truthy; its value, or ``TimeoutError`` naming the page's text."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(1.0)
        text = self.evaluate("document.body ? document.body.innerText.slice(0, 500) : ''")
        raise TimeoutError(f"waited {timeout:.0f}s for {expression!r}; the page shows: {text!r}")

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path
