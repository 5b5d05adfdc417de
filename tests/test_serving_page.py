"""The page of serve.py in a real browser: Debian's headless Chromium, driven by Selenium,
with a fake microphone playing a recording (``--use-file-for-fake-audio-capture``). The
page's AudioWorklet sends 16 kHz PCM to /stream and draws the timeline; the test reads the
segment labels off the page, checks they are the labels stream.py prints for the same
file, uploads the file through the page's form, and saves a screenshot.

Chromium and chromium-driver come from apt (``.ci/run`` installs them; no browser is
downloaded). Without them the tests skip and say why, except under CI (``CI=true``),
where a missing browser is a failure: a failed apt-get must not pass as a skip.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the serving tests need the serve extra: pip install -e '.[serve]'")
pytest.importorskip("selenium", reason="the page tests need selenium: pip install -e '.[serve]'")

from ser_lightning.serving.app import Scorer, create_app  # noqa: E402
from ser_lightning.serving.limits import ServeSettings  # noqa: E402
from ser_lightning.serving.server import ServerThread  # noqa: E402
from tests.helpers.serving import confident_clips, conversation, stream_py_segments  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def _need_browser() -> None:
    if CHROMIUM and DRIVER:
        return
    why = ("Chromium is not installed (sudo apt-get install chromium chromium-driver): "
           f"chromium={CHROMIUM}, chromedriver={DRIVER}")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def recording(data_dir, fitted_ckpt, tmp_path_factory) -> Path:
    """A clip of each class the model labels confidently, with 1-s pauses between them."""
    return conversation(data_dir, tmp_path_factory.mktemp("page") / "conversation.wav",
                        clips=confident_clips(fitted_ckpt, data_dir))


@pytest.fixture(scope="module")
def url(fitted_ckpt):
    from ser_lightning.inference.predictor import Predictor

    scorer = Scorer(Predictor.from_checkpoint(fitted_ckpt, device="cpu"), vad="energy")
    with ServerThread(create_app(scorer, ServeSettings(port=0))) as base:
        yield base


def browser(wav: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,1300",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}%noloop", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(DRIVER), options=options)  # Debian's driver: Selenium downloads nothing


def wait(driver, condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition(driver)
        if value:
            return value
        time.sleep(0.2)
    status = driver.find_element("id", "status").text
    raise AssertionError(f"timed out after {seconds} s waiting for {what} (page status: {status!r})")


@pytest.mark.parametrize("query", ["", "?native"], ids=["context-at-16kHz", "worklet-resampling"])
def test_the_page_shows_stream_py_labels_for_the_microphone(query, request, tmp_path):
    """``?native`` runs the AudioContext at the device's rate (48 kHz here), so the page's
    own windowed-sinc resampler in the AudioWorklet makes the 16 kHz PCM."""
    _need_browser()  # before the fixtures, which train a model: a skip costs nothing
    url, recording, fitted_ckpt = (request.getfixturevalue(name) for name in ("url", "recording", "fitted_ckpt"))
    expected = [label for _, _, label in stream_py_segments(fitted_ckpt, recording)]
    assert len(expected) >= 3 and len(set(expected)) == len(expected), expected
    driver = browser(recording)
    try:
        driver.get(url + "/" + query)
        wait(driver, lambda d: "Classes:" in d.find_element("id", "model").text, 20, "the model's description")
        driver.find_element("id", "start").click()
        wait(driver, lambda d: "listening" in d.find_element("id", "status").text, 20, "the microphone")
        seconds = sf.info(str(recording)).duration + 15  # it plays in real time; slack for a busy machine
        wait(driver, lambda d: len(d.find_elements("css selector", "#segments li.segment")) >= len(expected), seconds,
             f"{len(expected)} speech segments")
        driver.find_element("id", "stop").click()
        wait(driver, lambda d: "stopped" in d.find_element("id", "status").text, 20, "the end of the stream")
        shown = [li.get_attribute("data-label") for li in driver.find_elements("css selector", "#segments li.segment")]
        blocks = [b.get_attribute("data-label") for b in driver.find_elements("css selector", "#timeline .block.segment")]
        assert shown == expected and blocks == expected
        if not query:  # the page's upload form: the file's label as predict.py gives it
            from ser_lightning.inference.predictor import Predictor

            want = Predictor.from_checkpoint(fitted_ckpt, device="cpu").predict(recording)[0]
            driver.find_element("id", "file").send_keys(str(recording))
            driver.find_element("css selector", "#upload button").click()
            result = wait(driver, lambda d: d.find_elements("css selector", "#files .file"), 30, "the upload's result")
            assert result[0].get_attribute("data-label") == want.label
            assert len(driver.find_elements("css selector", "#files .strip .block.window")) == len(want.windows)
        shot = tmp_path / f"page{query.replace('?', '-')}.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        if os.environ.get("SER_SCREENSHOT_DIR"):
            shutil.copy(shot, Path(os.environ["SER_SCREENSHOT_DIR"]) / shot.name)
        logs = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert not logs, logs
    finally:
        driver.quit()
