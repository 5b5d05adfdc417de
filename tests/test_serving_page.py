"""The page of serve.py in a real browser: Debian's headless Chromium, driven by Selenium,
with a fake microphone playing a recording (``--use-file-for-fake-audio-capture``). The
page reads the microphone track's frames (MediaStreamTrackProcessor), sends 16 kHz PCM to
/stream and draws the timeline; the test reads the segment labels off the page, checks
they are the labels stream.py prints for the same file, uploads the file through the
page's form, and saves a screenshot. The same check runs with the page's renderer process
stopped for half a second in the middle of the speech (what a busy machine does to it),
and on the page's fallback for browsers without MediaStreamTrackProcessor (an AudioWorklet),
rendered by an OfflineAudioContext: in real time that fallback's audio has gaps filled
with silence whenever the machine starves the audio graph.

Chromium and chromium-driver come from apt (``.ci/run`` installs them; no browser is
downloaded). Without them the tests skip and say why, except under CI (``CI=true``),
where a missing browser is a failure: a failed apt-get must not pass as a skip.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np

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


def renderers(driver) -> list[int]:
    """Process ids of the Chromium renderers under ``driver``'s chromedriver (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [driver.service.process.pid]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            if b"--type=renderer" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass
    return found


def stall(pids: list[int], seconds: float) -> None:
    """Stop the processes for ``seconds`` (SIGSTOP, then SIGCONT), as a busy machine does."""
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(seconds)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def shown_segments(driver) -> tuple[list[str], list[str]]:
    """The labels of the page's segment list and of its timeline's segment blocks."""
    shown = [li.get_attribute("data-label") for li in driver.find_elements("css selector", "#segments li.segment")]
    blocks = [b.get_attribute("data-label") for b in driver.find_elements("css selector", "#timeline .block.segment")]
    return shown, blocks


def check_page(driver, tmp_path: Path, name: str) -> None:
    """A screenshot is saved; the browser logged no error."""
    shot = tmp_path / f"page-{name}.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("SER_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["SER_SCREENSHOT_DIR"]) / shot.name)
    logs = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not logs, logs


@pytest.mark.parametrize("stalled", [False, True], ids=["microphone", "microphone-renderer-stalled"])
def test_the_page_shows_stream_py_labels_for_the_microphone(stalled, request, tmp_path):
    """The page reads the fake microphone's track (MediaStreamTrackProcessor, Chromium's
    44.1 kHz here), so its own windowed-sinc resampler makes the 16 kHz PCM.
    ``stalled``: the page's renderer processes are stopped for 0.5 s in the middle of the
    second clip (its frames queue in the browser meanwhile); the labels must not change.
    In the real-time audio graph (the old page, and the fallback) that stall fills 0.4 s of
    the clip with silence and splits its segment in two."""
    _need_browser()  # before the fixtures, which train a model: a skip costs nothing
    if stalled and not (sys.platform.startswith("linux") and hasattr(signal, "SIGSTOP")):
        pytest.skip("stopping the renderer needs Linux (/proc, SIGSTOP)")
    url, recording, fitted_ckpt = (request.getfixturevalue(name) for name in ("url", "recording", "fitted_ckpt"))
    segments = stream_py_segments(fitted_ckpt, recording)
    expected = [label for _, _, label in segments]
    assert len(expected) >= 3 and len(set(expected)) == len(expected), expected
    driver = browser(recording)
    try:
        driver.get(url + "/")
        wait(driver, lambda d: "Classes:" in d.find_element("id", "model").text, 20, "the model's description")
        driver.find_element("id", "start").click()
        wait(driver, lambda d: "listening" in d.find_element("id", "status").text, 20, "the microphone")
        listening = time.monotonic()
        if stalled:  # half a second in the middle of the second clip: well inside Chromium's capture buffer
            start, end, _ = segments[1]
            pids = renderers(driver)
            assert pids, "no Chromium renderer process found"
            time.sleep(max(0.0, listening + (start + end) / 2 - 0.25 - time.monotonic()))
            stall(pids, 0.5)
        seconds = sf.info(str(recording)).duration + 15  # it plays in real time; slack for a busy machine
        wait(driver, lambda d: len(d.find_elements("css selector", "#segments li.segment")) >= len(expected), seconds,
             f"{len(expected)} speech segments")
        driver.find_element("id", "stop").click()
        wait(driver, lambda d: "stopped" in d.find_element("id", "status").text, 20, "the end of the stream")
        shown, blocks = shown_segments(driver)
        assert shown == expected and blocks == expected
        if not stalled:  # the page's upload form: the file's label as predict.py gives it
            from ser_lightning.inference.predictor import Predictor

            want = Predictor.from_checkpoint(fitted_ckpt, device="cpu").predict(recording)[0]
            driver.find_element("id", "file").send_keys(str(recording))
            driver.find_element("css selector", "#upload button").click()
            result = wait(driver, lambda d: d.find_elements("css selector", "#files .file"), 30, "the upload's result")
            assert result[0].get_attribute("data-label") == want.label
            assert len(driver.find_elements("css selector", "#files .strip .block.window")) == len(want.windows)
        check_page(driver, tmp_path, request.node.callspec.id)
    finally:
        driver.quit()


#: Renders the recording (16 kHz int16, base64) through the page's fallback node
#: (workletNode, the code ``?worklet`` uses on a real-time AudioContext) in an
#: OfflineAudioContext at ``rate``, streaming with the page's openStream/send/stop/finish.
OFFLINE_WORKLET = """
const [b64, rate, done] = arguments;
(async () => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const pcm = new Int16Array(bytes.buffer);
  const ctx = new OfflineAudioContext(1, pcm.length, rate);
  const buffer = ctx.createBuffer(1, pcm.length, rate);
  const samples = buffer.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
  await openStream();
  state.node = await workletNode(ctx);
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(state.node);
  source.start();
  await ctx.startRendering();
  stop();  // the worklet sends what it holds, then 'flushed': the page sends end
  done('rendered');
})().catch((e) => done(String(e)));
"""


@pytest.mark.parametrize("rate", [16000, 48000], ids=["worklet-16kHz", "worklet-resampling"])
def test_the_page_fallback_worklet_gives_stream_py_labels(rate, request, tmp_path):
    """The AudioWorklet fallback, without the real-time clock: at 16 kHz the worklet passes
    samples through (the page asks browsers for a 16 kHz AudioContext); at 48 kHz (``?native``,
    or a browser that refuses 16 kHz) the page's resampler makes the 16 kHz PCM."""
    import soxr

    _need_browser()
    url, recording, fitted_ckpt = (request.getfixturevalue(name) for name in ("url", "recording", "fitted_ckpt"))
    expected = [label for _, _, label in stream_py_segments(fitted_ckpt, recording)]
    wave, sr = sf.read(str(recording), dtype="float32")
    wave = soxr.resample(wave, sr, rate, quality="HQ") if rate != sr else wave
    pcm = (np.clip(wave, -1, 1) * 32767).round().astype("<i2")
    driver = browser(recording)
    try:
        driver.get(url + "/?worklet")
        wait(driver, lambda d: "Classes:" in d.find_element("id", "model").text, 20, "the model's description")
        driver.set_script_timeout(60)
        assert driver.execute_async_script(OFFLINE_WORKLET, base64.b64encode(pcm.tobytes()).decode(), rate) == "rendered"
        wait(driver, lambda d: "stopped" in d.find_element("id", "status").text, 30, "the end of the stream")
        shown, blocks = shown_segments(driver)
        assert shown == expected and blocks == expected
        check_page(driver, tmp_path, request.node.callspec.id)
    finally:
        driver.quit()
