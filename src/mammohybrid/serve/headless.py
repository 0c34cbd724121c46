"""The page in a headless browser, for its test and the README's screenshot: the system's
Chromium (Debian: ``apt-get install chromium chromium-driver``) driven by Selenium, never a
browser downloaded by a tool, and started so that it makes no connection of its own (a
closed network refuses them, and the page's test counts every request)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")

# Headless, and none of the browser's own background traffic (updates, sync, QUIC probes).
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars")


def find_chromium() -> tuple[str | None, str | None]:
    """The paths of the system's Chromium and chromedriver (None for each one missing)."""
    browser = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    return browser, shutil.which("chromedriver")


def chromium_driver(profile: Path, width: int = 1400, height: int = 2200,
                    log_requests: bool = False, downloads: Path | None = None,
                    flags: Sequence[str] = ()) -> Any:
    """A Selenium driver of the system's headless Chromium with a fresh profile in
    ``profile``; ``log_requests`` keeps every request in the ``performance`` log;
    ``downloads``: the folder downloads are saved to, without asking; ``flags``: more
    command-line flags."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = find_chromium()
    if browser is None or driver is None:
        raise RuntimeError(f"no system Chromium and chromedriver (found {browser}, {driver})")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--window-size={width},{height}",
                 f"--user-data-dir={profile}", *flags):
        options.add_argument(flag)
    if log_requests:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    if downloads is not None:
        options.add_experimental_option("prefs", {
            "download.default_directory": str(downloads), "download.prompt_for_download": False})
    return webdriver.Chrome(service=Service(driver), options=options)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_serving(run_dir: Path, port: int, log: Path,
                  *options: str) -> subprocess.Popen[bytes]:
    """``mammohybrid serve RUN_DIR --port PORT [OPTIONS]`` in a child process, as a user
    starts it, its output going to ``log``."""
    with open(log, "wb") as output:
        return subprocess.Popen([sys.executable, "-c", "from mammohybrid.cli import main; main()",
                                 "serve", str(run_dir), "--port", str(port), *options],
                                stdout=output, stderr=subprocess.STDOUT)


def wait_until_serving(log: Path, alive: Any, timeout_s: float) -> str | None:
    """The address ``mammohybrid serve`` printed in ``log`` (its token included), once it
    answers; None if ``alive()`` turns false or ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while alive() and time.monotonic() < deadline:
        printed = re.search(r" at (http://\S+) \(Ctrl\+C stops\)", log.read_text(errors="replace"))
        if printed:
            try:
                with urllib.request.urlopen(printed[1], timeout=5):
                    return printed[1]
            except urllib.error.HTTPError:
                # It answered (urllib follows the address's redirect without its cookie).
                return printed[1]
            except (urllib.error.URLError, ConnectionError):
                pass
        time.sleep(0.5)
    return None
