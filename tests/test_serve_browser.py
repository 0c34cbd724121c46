"""``mammohybrid serve`` in a real browser: the command started on a free localhost port with a
run made by ``train``, the system's headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium uploads a synthetic DICOM, a PNG and a file that is no
image, and the page must show the probabilities ``mammohybrid predict`` gives, the error, every
image, a working opacity control, a sortable table and ``predict``'s CSV, without one request
leaving localhost (skipped, with the reason, where no browser or driver is installed). And the
command's ``--max-megapixels`` reaches OpenCV's header check."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
from test_serve_api import png_declaring, predict_command_csv

from mammohybrid.data.synth import render_roi_crop
from mammohybrid.imaging import write_dicom, write_png
from mammohybrid.serve.headless import (
    chromium_driver,
    find_chromium,
    free_port,
    start_serving,
    wait_until_serving,
)

pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                                 "(pip install -e '.[test]')")
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

# Generous bounds for a loaded 2-core machine; the test waits for events, not for time.
SERVER_START_S = 240
PREDICTION_S = 300
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
NETWORK_SCHEMES = {"http", "https", "ws", "wss", "ftp"}
MAX_MEGAPIXELS = 1
REBOUND_NAME = "rebind.attacker.example"
# Another site's page: it asks for the server's run panel and posts an image to it, with the
# user's cookie where the browser sends it ("no-cors", as an <img> or a form would: the answer
# is opaque to the page, but the browser's log has its status). Its title says when both
# requests are over.
ATTACKER_PAGE = """<!DOCTYPE html><html><head><title>waiting</title></head><body><script>
const target = "TARGET";
const form = new FormData();
form.append("files", new Blob([new Uint8Array(64)], {type: "image/png"}), "stolen.png");
Promise.allSettled([
  fetch(target + "/api/run", {mode: "no-cors", credentials: "include"}),
  fetch(target + "/api/predict", {method: "POST", body: form, mode: "no-cors",
                                  credentials: "include"}),
]).then(() => { document.title = "done"; });
</script></body></html>"""


def _require_chromium() -> None:
    browser, driver = find_chromium()
    if browser is None or driver is None:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver "
                    f"(found browser={browser}, chromedriver={driver})")


@pytest.fixture(scope="module")
def server(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mammohybrid serve RUN_DIR --port P --max-megapixels 1`` as a user starts it; yields
    the address it printed (with its access token)."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    process = start_serving(run_dir, port, log, "--max-megapixels", str(MAX_MEGAPIXELS))
    try:
        address = wait_until_serving(log, lambda: process.poll() is None, SERVER_START_S)
        if address is None:
            pytest.fail(f"mammohybrid serve did not start:\n{log.read_text()}")
        assert address.startswith(f"http://127.0.0.1:{port}/?token=")
        yield address
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[object]:
    _require_chromium()
    # A re-pointed domain, as DNS rebinding makes it: its name, this machine's address.
    driver = chromium_driver(tmp_path / "profile", log_requests=True,
                             downloads=tmp_path / "downloads",
                             flags=[f"--host-resolver-rules=MAP {REBOUND_NAME} 127.0.0.1"])
    try:
        yield driver
    finally:
        driver.quit()


def _statuses(driver, prefix: str) -> dict[str, int]:
    """The HTTP status of every answer to a URL starting with ``prefix`` in the performance
    log, by path."""
    found = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived":
            response = message["params"]["response"]
            if response["url"].startswith(prefix):
                found[urlsplit(response["url"]).path] = response["status"]
    return found


@contextlib.contextmanager
def _attacker_site(target: str) -> Iterator[str]:
    """A web site of its own (another origin on this machine) serving ``ATTACKER_PAGE``
    against ``target``; yields its address."""
    page = ATTACKER_PAGE.replace("TARGET", target).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the http.server interface
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_port}/"
    finally:
        site.shutdown()
        site.server_close()


def _origin(address: str) -> str:
    """``http://host:port`` of an address."""
    parts = urlsplit(address)
    return f"{parts.scheme}://{parts.netloc}"


def _requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


@pytest.mark.slow
def test_the_page_in_chromium(server, browser, run_dir, tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(21)
    crops = tmp_path / "crops"
    files = [write_dicom(crops / "mass.dcm", render_roi_crop(rng, 90, malignant=True),
                         bits_stored=12),
             write_png(crops / "round.png", render_roi_crop(rng, 70, malignant=False))]
    not_an_image = crops / "notes.png"
    not_an_image.write_text("not an image")

    _requested_urls(browser)  # drop what the browser loaded before the page (its new tab)
    browser.get(server)
    wait = WebDriverWait(browser, PREDICTION_S)
    wait.until(lambda d: d.find_element(By.ID, "threshold-value").text)
    browser.find_element(By.ID, "file-input").send_keys(
        "\n".join(str(p) for p in [*files, not_an_image]))
    wait.until(lambda d: d.find_element(By.ID, "status").get_attribute("data-state")
               in ("done", "failed"))
    assert browser.find_element(By.ID, "status").get_attribute("data-state") == "done", \
        browser.find_element(By.ID, "status").text

    expected_csv = predict_command_csv(run_dir, [*files, not_an_image], tmp_path, monkeypatch)
    expected = pd.read_csv(tmp_path / "predict.csv", keep_default_na=False).set_index("path")
    # As predict's users read it: the probability rounded to 4 decimals.
    rounded = {p.name: f"{float(expected.loc[p.name, 'probability']):.4f}" for p in files}
    for path in files:
        card = browser.find_element(By.CSS_SELECTOR, f'article.result[data-name="{path.name}"]')
        shown = card.find_element(By.CSS_SELECTOR, ".probability").text
        assert shown == rounded[path.name]
        assert card.find_element(By.CSS_SELECTOR, ".label").text == \
            expected.loc[path.name, "prediction"]
        assert len(card.find_elements(By.CSS_SELECTOR, ".strip img")) == 6
        assert len(card.find_elements(By.CSS_SELECTOR, ".cams .heat")) == 2  # branch, combined
    error = browser.find_element(By.CSS_SELECTOR, 'article.result[data-name="notes.png"] .error')
    assert error.text == expected.loc["notes.png", "error"] != ""

    # Every image decoded and drawn.
    images = browser.execute_script(
        "return [...document.images].map(i => i.complete && i.naturalWidth > 0)")
    assert len(images) >= 2 * (6 + 4) and all(images)

    # The opacity control moves every overlay.
    slider = browser.find_element(By.ID, "opacity")
    slider.send_keys(Keys.ARROW_LEFT, Keys.ARROW_LEFT)
    opacities = browser.execute_script(
        "return [...document.querySelectorAll('.heat')].map(i => getComputedStyle(i).opacity)")
    assert set(opacities) == {"0.5"}

    # The table sorts by probability, failed files last.
    browser.find_element(By.CSS_SELECTOR, '#batch-table th[data-key="probability"]').click()
    column = [cell.text for cell in
              browser.find_elements(By.CSS_SELECTOR, "#batch-table tbody td:nth-child(2)")]
    assert column == [*sorted(rounded.values()), ""]

    # The CSV the page offers, downloaded, is predict's, byte for byte.
    browser.find_element(By.ID, "csv-download").click()
    downloaded = tmp_path / "downloads" / "predictions.csv"
    wait.until(lambda d: downloaded.is_file())
    assert downloaded.read_text(encoding="utf-8") == expected_csv

    # Dropping a file on the page works as choosing it (a drop built in the page: a driver
    # cannot drag from the desktop).
    png = files[1]
    browser.execute_script(
        "const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));"
        "const transfer = new DataTransfer();"
        "transfer.items.add(new File([bytes], arguments[1], {type: 'image/png'}));"
        "document.getElementById('status').dataset.state = 'idle';"
        "document.getElementById('drop').dispatchEvent("
        "  new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));",
        base64.b64encode(png.read_bytes()).decode(), png.name)
    wait.until(lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "done")
    cards = browser.find_elements(By.CSS_SELECTOR, "article.result")
    assert [card.get_attribute("data-name") for card in cards] == [png.name]
    assert cards[0].find_element(By.CSS_SELECTOR, ".probability").text == rounded[png.name]

    browser.save_screenshot(str(tmp_path / "serve_page.png"))
    assert (tmp_path / "serve_page.png").stat().st_size > 10_000

    urls = _requested_urls(browser)
    assert any(url.startswith(_origin(server)) for url in urls)
    # chrome:// (the browser's own new-tab page), data: and blob: never reach a network.
    outside = [url for url in urls if urlsplit(url).scheme in NETWORK_SCHEMES
               and urlsplit(url).hostname not in LOCAL_HOSTS]
    assert outside == []


@pytest.mark.slow
def test_the_command_refuses_a_bomb_from_its_header(server) -> None:
    """``--max-megapixels`` reaches the read budget: a PNG declaring 400 million pixels is
    refused from its header, before decoding, at the server's own limit."""
    import httpx

    bomb = png_declaring(20_000, 20_000)
    token = server.split("?token=")[1]
    response = httpx.post(_origin(server) + "/api/predict", files=[("files", ("bomb.png", bomb))],
                          headers={"Authorization": f"Bearer {token}"}, timeout=PREDICTION_S)
    assert response.status_code == 200
    error = response.json()["results"][0]["error"]
    assert error.startswith("bomb.png:")
    assert f"over the {MAX_MEGAPIXELS:g} megapixel budget" in error


@pytest.mark.slow
def test_only_the_page_from_the_printed_address_is_answered(server, browser) -> None:
    """In the browser: without the token the page is refused; with it (its cookie set) the
    page works, but another site's page on this machine (same site for cookies: only the
    port differs) gets 403 from the API, and so does the server under a re-pointed name."""
    wait = WebDriverWait(browser, PREDICTION_S)
    origin = _origin(server)
    browser.get(origin + "/")
    assert "missing or wrong access token" in browser.find_element(By.TAG_NAME, "body").text
    browser.get(server)
    wait.until(lambda d: d.find_element(By.ID, "threshold-value").text)
    assert urlsplit(browser.current_url).query == ""  # the token left the address bar
    _statuses(browser, origin)  # drop the page's own requests

    with _attacker_site(origin) as attacker:
        browser.get(attacker)
        wait.until(lambda d: d.title == "done")
    assert _statuses(browser, origin) == {"/api/run": 403, "/api/predict": 403}

    rebound = f"http://{REBOUND_NAME}:{urlsplit(origin).port}"
    browser.get(rebound + "/")
    assert "does not answer to the host name" in browser.find_element(By.TAG_NAME, "body").text
    assert _statuses(browser, rebound) == {"/": 403}
    with _attacker_site(rebound) as attacker:
        browser.get(attacker)
        wait.until(lambda d: d.title == "done")
    assert _statuses(browser, rebound) == {"/api/run": 403, "/api/predict": 403}
