"""Headless Chromium for the dashboard test: finding or installing it, and driving it.

`install_browser` installs Chromium and Debian's copies of the asv dashboard's JavaScript
libraries with apt-get (root or passwordless sudo), skipping the test with the reason where
that is impossible. `DevTools` speaks the Chrome DevTools Protocol over
`--remote-debugging-pipe`, so no browser-automation package is needed.
"""

import base64
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1400,1000",
)


# The dashboard's CDN dependencies (asv 0.6) -> Debian's copies. orderBars (bar charts of
# categorical parameters) has no Debian package and is not needed for these graphs: stubbed.
VENDOR = {
    "code.jquery.com/jquery-": "/usr/share/javascript/jquery/jquery.min.js",
    "/jquery.flot.min.js": "/usr/share/haskell-js-flot/jquery.flot.min.js",
    "/jquery.flot.time.min.js": "/usr/share/haskell-js-flot/jquery.flot.time.min.js",
    "/jquery.flot.selection.min.js": "/usr/share/haskell-js-flot/jquery.flot.selection.min.js",
    "/jquery.flot.categories.min.js": "/usr/share/haskell-js-flot/jquery.flot.categories.min.js",
    "/jquery.flot.orderBars.js": None,
    "/stupidtable.min.js": "/usr/share/javascript/jquery-stupidtable/stupidtable.min.js",
    "/md5.min.js": "/usr/share/javascript/blueimp-md5/md5.min.js",
    "/bootstrap.min.js": "/usr/share/javascript/bootstrap/js/bootstrap.min.js",
    "/bootstrap.min.css": "/usr/share/javascript/bootstrap/css/bootstrap.min.css",
}
APT_PACKAGES = (
    "chromium",
    "libjs-jquery",
    "libghc-js-flot-data",
    "libjs-jquery-stupidtable",
    "node-blueimp-md5",
    "libjs-bootstrap",
)


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def missing_vendor_files() -> list[str]:
    return [p for p in VENDOR.values() if p is not None and not Path(p).is_file()]


def install_browser() -> None:
    """`apt-get install chromium` and the dashboard's libraries, as root or through sudo."""
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.skip(
            "headless Chromium and Debian's copies of the dashboard's JavaScript libraries "
            f"({', '.join(APT_PACKAGES)}) are needed to check the asv dashboard, and there is "
            "no apt-get to install them"
        )
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None or subprocess.run([sudo, "-n", "true"], capture_output=True).returncode:
            pytest.skip(
                "headless Chromium and the dashboard's JavaScript libraries are needed to "
                "check the asv dashboard and are not installed; installing them with apt-get "
                "needs root or passwordless sudo"
            )
        prefix = [sudo, "-n"]
    # A Chrome/Chromium that is already there is used as is (e.g. GitHub's Ubuntu images,
    # where the `chromium` package would be a snap): only the libraries are installed then.
    packages = [p for p in APT_PACKAGES if p != "chromium" or find_chromium() is None]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args, timeout in (
        (["update", "-q"], 300),
        (["install", "-y", "-q", "--no-install-recommends", *packages], 900),
    ):
        proc = subprocess.run(
            [*prefix, apt, *args], env=env, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            # apt-get is there and we may use it: a failure is an error, not a reason to skip.
            pytest.fail(f"apt-get {' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr}")


class DevTools:
    """A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`.

    Chromium reads NUL-terminated JSON commands on fd 3 and writes responses and events on
    fd 4, so no websocket library is needed.
    """

    def __init__(self, binary: str, user_data_dir: Path):
        cmd_read, self._cmd_write = os.pipe()
        self._res_read, res_write = os.pipe()
        # The shell maps our pipe ends to the fds 3 and 4 that Chromium expects.
        script = f'exec "$0" "$@" 3<&{cmd_read} 4>&{res_write} {cmd_read}<&- {res_write}>&-'
        self.proc = subprocess.Popen(
            [
                "bash",
                "-c",
                script,
                binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={user_data_dir}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            pass_fds=(cmd_read, res_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(cmd_read)
        os.close(res_write)
        self._next_id = 0
        self._responses: dict[int, dict] = {}
        self._events: queue.Queue = queue.Queue()
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session: str | None = None

    def _read(self) -> None:
        buf = b""
        with open(self._res_read, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                buf += chunk
                *messages, buf = buf.split(b"\0")
                for raw in messages:
                    msg = json.loads(raw)
                    if "id" in msg:
                        with self._cond:
                            self._responses[msg["id"]] = msg
                            self._cond.notify_all()
                    else:
                        self._events.put(msg)
        with self._cond:
            self._cond.notify_all()

    def send(self, method: str, params: dict | None = None, *, timeout: float = 60.0) -> dict:
        self._next_id += 1
        msg: dict = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session is not None and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self._cmd_write, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._next_id not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    raise TimeoutError(f"no DevTools reply to {method} (Chromium exited?)")
                self._cond.wait(left)
            reply = self._responses.pop(self._next_id)
        if "error" in reply:
            raise RuntimeError(f"DevTools {method} failed: {reply['error']}")
        return reply.get("result", {})

    def events(self) -> list[dict]:
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def open_page(self) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluating {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.25)

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close", timeout=10)
                except (TimeoutError, RuntimeError, OSError):
                    pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        finally:
            os.close(self._cmd_write)
            self._reader.join(timeout=20)


def page_errors(events: list[dict]) -> list[str]:
    """Uncaught exceptions, console errors and failed loads among DevTools events."""
    errors = []
    for ev in events:
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            desc = details.get("exception", {}).get("description") or details.get("text")
            errors.append(f"uncaught exception: {desc}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            errors.append("console.error: " + " ".join(str(a.get("value")) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            errors.append(f"{entry['source']}: {entry['text']} ({entry.get('url', '')})")
    return errors
