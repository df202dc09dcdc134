"""Shared pytest fixtures.

``browser``: a real headless Chromium (Debian's ``/usr/bin/chromium``, installed by the
Makefile's ``browser`` step) driven over the Chrome DevTools Protocol through
``--remote-debugging-pipe`` (requests on the child's fd 3, replies and events on fd 4,
each a JSON message ended by a NUL byte), so no Python browser package is needed.

``browser.check(path)`` loads a local HTML file and returns a :class:`PageCheck`: the
console errors (``console.error`` calls, uncaught exceptions, and browser log entries of
level error such as a resource that failed to load), the JavaScript dialogs opened (an
``alert`` means injected script ran), every figure's rendered and natural size (``img``,
``svg``, ``canvas`` elements), the page title and a full-page PNG screenshot saved next
to the test's temporary files. The test is skipped, with the reason, only when
``/usr/bin/chromium`` is absent.
"""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--disable-component-update", "--disable-sync", "--remote-debugging-pipe", "--window-size=1280,1024",
)
TIMEOUT_S = 60.0

_FIGURES_JS = """JSON.stringify(Array.from(document.querySelectorAll('img, svg, canvas')).filter(
  e => !(e.tagName.toLowerCase() === 'svg' && e.parentElement && e.parentElement.closest('svg'))).map(e => {
    const r = e.getBoundingClientRect();
    return {tag: e.tagName.toLowerCase(), id: (e.closest('[id]') || {}).id || '',
            width: r.width, height: r.height,
            natural_width: e.naturalWidth === undefined ? null : e.naturalWidth,
            natural_height: e.naturalHeight === undefined ? null : e.naturalHeight,
            complete: e.complete === undefined ? true : e.complete};
  }))"""


@dataclass
class PageCheck:
    """What a headless Chromium saw when loading one page."""

    console_errors: list[str]
    dialogs: list[str]
    figures: list[dict[str, Any]]
    title: str
    screenshot: Path
    text: str = field(repr=False, default="")


class _DevToolsPipe:
    """A minimal CDP client over the pipe of one Chromium process."""

    def __init__(self, process: subprocess.Popen, to_browser: int, from_browser: int):
        self.process = process
        self.to_browser = to_browser
        self.from_browser = from_browser
        self.buffer = b""
        self.events: list[dict] = []
        self.next_id = 0

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        request_id = self.next_id
        message = {"id": request_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._write(message)
        reply = self._read_until(lambda m: m.get("id") == request_id)
        if "error" in reply:
            raise RuntimeError(f"CDP {method} failed: {reply['error']}")
        return reply.get("result", {})

    def _write(self, message: dict) -> None:
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")

    def _dismiss_dialog(self, event: dict) -> None:
        """Close an alert/confirm at once (it would block the page), keeping the event as evidence."""
        self.next_id += 1
        self._write({"id": self.next_id, "method": "Page.handleJavaScriptDialog", "params": {"accept": True},
                     "sessionId": event.get("sessionId")})

    def wait_event(self, method: str) -> dict:
        for event in self.events:
            if event.get("method") == method:
                return event
        return self._read_until(lambda m: m.get("method") == method)

    def _read_until(self, wanted) -> dict:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                    if message["method"] == "Page.javascriptDialogOpening":
                        self._dismiss_dialog(message)
                if wanted(message):
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.process.poll() is not None:
                raise RuntimeError("Chromium did not answer over the DevTools pipe in time")
            ready, _, _ = select.select([self.from_browser], [], [], remaining)
            if ready:
                chunk = os.read(self.from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self.buffer += chunk


def _console_errors(events: list[dict]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())
    return errors


class Browser:
    """Loads local HTML files in a fresh headless Chromium each time."""

    def __init__(self, workdir: Path):
        self.workdir = workdir

    def check(self, page: str | Path, *, screenshot_name: str | None = None) -> PageCheck:
        """Load ``page`` (a local file) and report what the browser saw (see the module docstring)."""
        page = Path(page).resolve()
        profile = self.workdir / f"chromium-profile-{time.monotonic_ns()}"
        to_child_read, to_child_write = os.pipe()
        from_child_read, from_child_write = os.pipe()

        def wire_pipes() -> None:  # runs in the child before exec: DevTools expects fds 3 and 4
            # Move both ends above 4 first, so that placing one cannot overwrite the other.
            command_end, reply_end = os.dup(to_child_read) + 10, os.dup(from_child_write) + 10
            os.dup2(to_child_read, command_end)
            os.dup2(from_child_write, reply_end)
            os.dup2(command_end, 3)
            os.dup2(reply_end, 4)

        process = subprocess.Popen(
            [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire_pipes, pass_fds=(3, 4),
        )
        os.close(to_child_read)
        os.close(from_child_write)
        pipe = _DevToolsPipe(process, to_child_write, from_child_read)
        try:
            return self._inspect(pipe, page, self.workdir / (screenshot_name or f"{page.stem}.png"))
        finally:
            try:
                pipe.send("Browser.close")
            except (RuntimeError, OSError):
                pass
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            os.close(to_child_write)
            os.close(from_child_read)

    @staticmethod
    def _inspect(pipe: _DevToolsPipe, page: Path, screenshot: Path) -> PageCheck:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Page.navigate", {"url": page.as_uri()}, session=session)
        pipe.wait_event("Page.loadEventFired")

        def evaluate(expression: str) -> Any:
            result = pipe.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
            return result["result"].get("value")

        figures = json.loads(evaluate(_FIGURES_JS))
        title = evaluate("document.title")
        text = evaluate("document.body ? document.body.innerText : ''")
        metrics = pipe.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        shot = pipe.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": metrics["width"], "height": metrics["height"], "scale": 1},
        }, session=session)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        dialogs = [e["params"].get("message", "") for e in pipe.events if e.get("method") == "Page.javascriptDialogOpening"]
        return PageCheck(console_errors=_console_errors(pipe.events), dialogs=dialogs, figures=figures,
                         title=title, screenshot=screenshot, text=text)


@pytest.fixture
def browser(tmp_path: Path) -> Browser:
    """A headless Chromium page checker; fails when /usr/bin/chromium is absent (`make test` installs it)."""
    if not CHROMIUM.exists():
        pytest.fail("browser test needs Debian's chromium at /usr/bin/chromium (run `make browser` to install it)")
    return Browser(tmp_path)
