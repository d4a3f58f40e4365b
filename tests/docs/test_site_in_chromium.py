"""The built site renders in headless Chromium: the home page, an API page and the
tutorial each show their title, a code block and a figure, the screenshot is not blank,
and the browser reports no console error (failed requests included).

Needs the site built (`hatch run docs:build`; built here when missing) and Debian's
`chromium`. Chromium is driven through its DevTools protocol over a websocket."""

import base64
import functools
import http.server
import io
import itertools
import json
import pathlib
import shutil
import subprocess
import threading
import time
import urllib.request

import pytest
import websocket
from PIL import Image, ImageStat

ROOT = pathlib.Path(__file__).resolve().parents[2]
SITE = ROOT / "site"
PAGES = {
    "index.html": "zodiax",
    "api/zdx-base.html": "zdx-base API",
    "tutorial/optimisation_tutorial.html": "Tutorial",
}
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-allow-origins=*",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site_url():
    if not (SITE / "index.html").exists():
        subprocess.run(["mkdocs", "build", "--strict"], cwd=ROOT, check=True)
    handler = functools.partial(QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class Browser:
    """A headless Chromium with one page, spoken to over the DevTools protocol."""

    def __init__(self, profile: pathlib.Path):
        executable = shutil.which("chromium") or shutil.which("chromium-browser")
        assert executable, "Debian's `chromium` is not installed (.ci/run installs it)"
        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            assert self.process.poll() is None, "chromium exited at start"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
            targets = json.load(response)
        page = next(t for t in targets if t["type"] == "page")
        self.socket = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True
        )
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params):
        ident = next(self.ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == ident:
                assert "error" not in message, message
                return message["result"]
            self.events.append(message)

    def wait_for(self, method: str, seconds: float = 60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(e.get("method") == method for e in self.events):
                return
            self.events.append(json.loads(self.socket.recv()))
        raise AssertionError(f"no {method} within {seconds} s")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def errors(self) -> list[str]:
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(" ".join(str(a.get("value", a)) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                found.append(f"{entry['text']} {entry.get('url', '')}")
        return found

    def close(self):
        self.socket.close()
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


def open_page(browser: Browser, url: str):
    browser.events.clear()
    browser.call("Page.navigate", url=url)
    browser.wait_for("Page.loadEventFired")
    # let late requests (the search index, images) finish and report
    browser.evaluate("new Promise(r => setTimeout(r, 1000))")
    time.sleep(1.0)
    browser.evaluate("1")


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_with_title_code_figure_and_no_console_error(browser, site_url, page):
    open_page(browser, site_url + page)
    title = browser.evaluate("document.title")
    assert PAGES[page] in title, title
    code_blocks = browser.evaluate("document.querySelectorAll('article pre, .jp-Cell pre').length")
    assert code_blocks >= 1
    figures = browser.evaluate(
        "[...document.querySelectorAll('article img, .jp-RenderedImage img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).length"
    )
    assert figures >= 1
    shot = browser.call("Page.captureScreenshot", format="png")["data"]
    image = Image.open(io.BytesIO(base64.b64decode(shot))).convert("L")
    assert image.size[0] >= 800 and image.size[1] >= 600
    lo, hi = image.getextrema()
    assert hi - lo > 100, "the screenshot is blank"
    assert ImageStat.Stat(image).stddev[0] > 10, "the screenshot is nearly uniform"
    assert browser.errors() == [], browser.errors()
