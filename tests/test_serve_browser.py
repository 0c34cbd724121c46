"""``mammohybrid serve`` in a real browser: the command started on a free localhost port with a
run made by ``train``, the system's headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium uploads a synthetic DICOM, a PNG and a file that is no
image, and the page must show the probabilities ``mammohybrid predict`` gives, the error, every
image, a working opacity control, a sortable table and ``predict``'s CSV, without one request
leaving localhost (skipped, with the reason, where no browser or driver is installed). And the
command's ``--max-megapixels`` reaches OpenCV's header check."""

from __future__ import annotations

import base64
import json
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
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

# Generous bounds for a loaded 2-core machine; the test waits for events, not for time.
SERVER_START_S = 240
PREDICTION_S = 300
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
NETWORK_SCHEMES = {"http", "https", "ws", "wss", "ftp"}
MAX_MEGAPIXELS = 1


def _require_chromium() -> None:
    browser, driver = find_chromium()
    if browser is None or driver is None:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver "
                    f"(found browser={browser}, chromedriver={driver})")


@pytest.fixture(scope="module")
def server(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mammohybrid serve RUN_DIR --port P --max-megapixels 1`` as a user starts it; yields
    its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    process = start_serving(run_dir, port, log, "--max-megapixels", str(MAX_MEGAPIXELS))
    url = f"http://127.0.0.1:{port}/"
    try:
        if not wait_until_serving(url + "api/run", lambda: process.poll() is None,
                                  SERVER_START_S):
            pytest.fail(f"mammohybrid serve did not start:\n{log.read_text()}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[object]:
    _require_chromium()
    driver = chromium_driver(tmp_path / "profile", log_requests=True)
    try:
        yield driver
    finally:
        driver.quit()


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

    # The CSV the page offers is predict's, byte for byte.
    csv = browser.execute_async_script(
        "const done = arguments[0];"
        "fetch(document.getElementById('csv-download').href).then(r => r.text()).then(done);")
    assert csv == expected_csv

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
    assert any(url.startswith(server) for url in urls)
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
    response = httpx.post(server + "api/predict", files=[("files", ("bomb.png", bomb))],
                          timeout=PREDICTION_S)
    assert response.status_code == 200
    error = response.json()["results"][0]["error"]
    assert error.startswith("bomb.png:")
    assert f"over the {MAX_MEGAPIXELS:g} megapixel budget" in error
