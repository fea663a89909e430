"""Headless Chromium for tests: render a local HTML file, return the DOM after its scripts ran, take a screenshot.

Debian's `chromium` (scripts/install_browser.sh). The flags keep it off the network, which this machine does not
have anyway: without them it retries Google's hosts at every start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
WINDOW = (1280, 2000)


def chromium_path() -> str | None:
    """The browser to use: $EXPLAINFACE_CHROMIUM when set (only it), else the usual names; None when there is none."""
    env = os.environ.get("EXPLAINFACE_CHROMIUM")
    for name in (env,) if env else CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    exe = chromium_path()
    if exe is None:
        raise RuntimeError("no Chromium found (run scripts/install_browser.sh or set EXPLAINFACE_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.run(
            [exe, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"chromium {args[:-1]} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def render(html_path: str | Path, screenshot_png: str | Path, timeout: float = 60, budget_ms: int = 5000) -> str:
    """Load `html_path` in headless Chromium: return the DOM after load (scripts ran, virtual time `budget_ms`)
    and write a WINDOW-sized screenshot of the top of the page to `screenshot_png`."""
    url = Path(html_path).resolve().as_uri()
    png = Path(screenshot_png).resolve()
    png.unlink(missing_ok=True)
    dom = _run([f"--virtual-time-budget={budget_ms}", "--dump-dom", url], timeout).stdout
    _run(
        [f"--virtual-time-budget={budget_ms}", f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={png}", url],
        timeout,
    )
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return dom
