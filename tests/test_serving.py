"""serve.py's API (src/ser_lightning/serving): POST /predict equals predict.py on the same
files, WebSocket /stream equals stream.py's segments, bad input and limits get their
status and one message (never a traceback), the API key, the bounded queue, the
private upload folder, and 32 concurrent clients with every answer matched to its request."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the serving tests need the serve extra: pip install -e '.[serve]'")
httpx = pytest.importorskip("httpx")
pytest.importorskip("websockets")

from ser_lightning.errors import ConfigError  # noqa: E402
from ser_lightning.serving.app import Scorer, create_app  # noqa: E402
from ser_lightning.serving.batching import BatchQueue  # noqa: E402
from ser_lightning.serving.limits import RequestRejected, ServeSettings  # noqa: E402
from ser_lightning.serving.server import ServerThread  # noqa: E402
from tests.conftest import corrupt_middle, write_tone  # noqa: E402
from tests.helpers.serving import conversation, pcm16, serve_config, stream_pcm, stream_py_segments  # noqa: E402

FILES = ["tess/OAF_angry/OAF_bar_angry.flac", "tess/YAF_sad/YAF_base_sad.flac", "tess/OAF_happy/OAF_bath_happy.flac",
         "tess/YAF_neutral/YAF_bath_neutral.flac", "tess/OAF_Fear/OAF_bar_fear.flac", "tess/YAF_disgust/YAF_base_disgust.flac"]


@pytest.fixture(scope="module")
def scorer(ckpt):
    from ser_lightning.cli.predict import enrol_from_config, predictor_from_config

    cfg = serve_config(ckpt, "vad=energy")
    return Scorer(enrol_from_config(predictor_from_config(cfg), cfg), vad="energy")


def serving(scorer, **limits):
    settings = ServeSettings(port=0, **limits)
    return ServerThread(create_app(scorer, settings), ws_max_size=settings.max_chunk_bytes + 1024)


@pytest.fixture(scope="module")
def url(scorer):
    with serving(scorer) as base:
        yield base


def post(url: str, paths: list[Path], names: list[str] | None = None, timeline: bool = False, headers=None):
    names = names or [p.name for p in paths]
    files = [("file", (n, p.read_bytes(), "application/octet-stream")) for p, n in zip(paths, names, strict=True)]
    return httpx.post(f"{url}/predict", params={"timeline": str(timeline).lower()}, files=files, headers=headers, timeout=120)


def test_health_and_the_page(url):
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and health["classes"] == ["neutral", "happy", "sad", "angry"]
    assert health["stream_sample_rate"] == 16000 and health["vad"] == "energy" and health["key_required"] is False
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="/static/app.js">' in page.text and "https://" not in page.text  # nothing from another site
    for name in ("app.js", "pcm-worklet.js", "style.css"):
        asset = httpx.get(f"{url}/static/{name}")
        assert asset.status_code == 200 and "http://" not in asset.text and "https://" not in asset.text, name
    assert httpx.get(f"{url}/nowhere").status_code == 404


def test_predict_equals_predict_py_on_the_same_files(url, ckpt, data_dir, tmp_path):
    from tests.helpers.checkpoints import run_predict

    folder = tmp_path / "inputs"  # predict.py input= takes one file, folder or glob
    folder.mkdir()
    stereo = folder / "stereo_44k.wav"  # another format, rate and channel count
    wave, rate = sf.read(str(data_dir / FILES[1]), dtype="float32")
    import soxr

    sf.write(str(stereo), np.stack([soxr.resample(wave, rate, 44100)] * 2, axis=1), 44100)
    for f in (FILES[0], FILES[2]):
        (folder / Path(f).name).symlink_to(data_dir / f)
    paths = sorted(folder.iterdir())
    response = post(url, paths, timeline=True)
    assert response.status_code == 200, response.text
    got = response.json()["results"]
    proc = run_predict(f"ckpt_path={ckpt}", f"input={folder}", "device=cpu",
                       f"output={tmp_path / 'p.json'}", f"timeline={tmp_path / 't.json'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    want = {Path(r["path"]).name: r for r in json.loads((tmp_path / "p.json").read_text())}
    rows = json.loads((tmp_path / "t.json").read_text())
    assert [r["file"] for r in got] == [p.name for p in paths] and set(want) == {p.name for p in paths}
    for g in got:
        w = want[g["file"]]
        assert g["label"] == w["label"] and g["error"] is None and g["windows"] == w["windows"]
        assert g["confidence"] == pytest.approx(w["confidence"], abs=1e-6)
        assert g["duration_seconds"] == pytest.approx(w["duration_seconds"], abs=1e-6)
        for c in ("neutral", "happy", "sad", "angry"):
            assert g["probabilities"][c] == pytest.approx(w[c], abs=1e-6)
        mine = [r for r in rows if r["path"] == w["path"]]
        assert [(t["start"], t["end"], t["label"]) for t in g["timeline"]] == [(r["start"], r["end"], r["label"]) for r in mine]
    # a model that says one thing to everything would prove nothing: the files' probabilities differ (by more than
    # the 1e-6 the comparison allows). Not their labels: on some CPUs the fixture's 12-step model says "neutral" to all.
    probs = np.array([[g["probabilities"][c] for c in ("neutral", "happy", "sad", "angry")] for g in got])
    assert np.abs(probs - probs[0]).max() > 0.05, probs


def test_stream_gives_stream_py_segments(url, scorer, ckpt, data_dir, tmp_path):
    path = conversation(data_dir, tmp_path / "conversation.wav")
    expected = stream_py_segments(ckpt, path)
    assert len(expected) == 4, expected  # one segment per clip
    messages = asyncio.run(stream_pcm(url.replace("http", "ws") + "/stream", pcm16(path)))
    assert messages[0]["type"] == "ready" and messages[-1]["type"] == "end"
    segments = [m for m in messages if m["type"] == "segment"]
    assert {m["type"] for m in messages} == {"ready", "segment", "end"}  # one message per segment, nothing else asked
    assert [(round(m["start"], 2), round(m["end"], 2), m["label"]) for m in segments] == \
        [(round(a, 2), round(b, 2), label) for a, b, label in expected]
    # the same samples and windows as stream.py: the same probabilities, not just labels
    live = scorer.new_stream(16000)
    from ser_lightning.inference.live import SegmentEnd

    pcm = pcm16(path)
    direct = [e for i in range(0, pcm.size, 1600) for e in live.push(pcm[i:i + 1600])] + live.finish()
    direct = [e for e in direct if isinstance(e, SegmentEnd)]
    for m, e in zip(segments, direct, strict=True):
        assert m["probabilities"] == pytest.approx(e.probabilities, abs=1e-6)
    assert messages[-1]["seconds"] == pytest.approx(pcm16(path).size / 16000, abs=1e-3)
    # ?windows=true adds the live windows and segment starts
    more = asyncio.run(stream_pcm(url.replace("http", "ws") + "/stream?windows=true", pcm16(path)))
    kinds = [m["type"] for m in more]
    assert kinds.count("segment_start") == 4 and kinds.count("window") >= 4
    assert [m["label"] for m in more if m["type"] == "segment"] == [label for _, _, label in expected]


def _no_traceback(response) -> dict:
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


def test_bad_input_gets_its_status_and_one_message(url, data_dir, tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("these are not samples\n" * 50)
    r = post(url, [text])
    assert r.status_code == 415 and "notes.wav" in _no_traceback(r)["error"] and "not an audio file" in r.json()["error"]
    assert str(tmp_path) not in r.text and "ser-serve-" not in r.text  # the private path is never shown
    r = httpx.post(f"{url}/predict", content=b"raw bytes", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "multipart/form-data" in _no_traceback(r)["error"] and "audio/*" in r.json()["error"]
    r = httpx.post(f"{url}/predict", params={"filename": "notes.wav"}, content=text.read_bytes(),
                   headers={"content-type": "audio/wav"})  # a raw body that is not audio
    assert r.status_code == 415 and "notes.wav: not an audio file" in _no_traceback(r)["error"] and "ser-serve-" not in r.text
    r = httpx.post(f"{url}/predict", content=b"", headers={"content-type": "application/octet-stream"})
    assert r.status_code == 422 and "upload: empty" in _no_traceback(r)["error"]
    r = httpx.post(f"{url}/predict", data={"timeline": "true"}, files={"x": (None, "no file")})
    assert r.status_code == 422 and "no file" in _no_traceback(r)["error"]
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    r = post(url, [empty])
    assert r.status_code == 422 and "empty" in _no_traceback(r)["error"]
    broken = corrupt_middle(data_dir / FILES[0], tmp_path / "broken.flac", 0.2, 0.9)
    r = post(url, [broken])
    assert r.status_code == 422 and "broken.flac" in _no_traceback(r)["error"]
    r = httpx.post(f"{url}/predict?filename=broken.flac", content=broken.read_bytes(), headers={"content-type": "audio/flac"})
    assert r.status_code == 422 and "broken.flac" in _no_traceback(r)["error"]
    r = post(url, [broken, data_dir / FILES[0]])  # one good file: 200, the bad one carries its error
    assert r.status_code == 200
    bad, good = r.json()["results"]
    assert bad["error"] and bad["label"] is None and good["error"] is None and good["label"]
    r = httpx.post(f"{url}/predict", content=b"--xyz\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 422 and _no_traceback(r)


def test_limits_413_and_the_upload_folder_is_always_removed(scorer, data_dir, tmp_path):
    (tmp_path / "tmp").mkdir()
    long = write_tone(tmp_path / "long.wav", seconds=12.0)
    big = write_tone(tmp_path / "big.wav", seconds=80.0)  # 2.6 MB of 16-bit samples
    with serving(scorer, max_audio_seconds=10, max_upload_mb=2, max_files=2, upload_dir=str(tmp_path / "tmp")) as url:
        r = post(url, [long])
        assert r.status_code == 413 and "12.0 s" in _no_traceback(r)["error"]
        r = httpx.post(f"{url}/predict?filename=long.wav", content=long.read_bytes(), headers={"content-type": "audio/wav"})
        assert r.status_code == 413 and "long.wav: 12.0 s" in _no_traceback(r)["error"]
        r = post(url, [big])
        assert r.status_code == 413 and "2 MiB" in _no_traceback(r)["error"]
        r = httpx.post(f"{url}/predict", content=big.read_bytes(), headers={"content-type": "audio/wav"})
        assert r.status_code == 413 and "2 MiB" in _no_traceback(r)["error"]
        raw = big.read_bytes()
        r = httpx.post(f"{url}/predict", content=(raw[i:i + 65536] for i in range(0, len(raw), 65536)),
                       headers={"content-type": "audio/wav"})  # a raw chunked body is cut off at the limit too
        assert r.status_code == 413 and "2 MiB" in _no_traceback(r)["error"]
        # a chunked body (no Content-Length) is cut off at the limit too
        body = big.read_bytes()

        def chunks():
            yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.wav\"\r\n\r\n"
            for i in range(0, len(body), 65536):
                yield body[i:i + 65536]
            yield b"\r\n--b--\r\n"

        r = httpx.post(f"{url}/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413 and _no_traceback(r)
        r = post(url, [data_dir / FILES[0]] * 3, names=["a.flac", "b.flac", "c.flac"])
        assert r.status_code == 413 and "more than 2 files" in _no_traceback(r)["error"]
        assert post(url, [data_dir / FILES[0]]).status_code == 200
    assert list((tmp_path / "tmp").iterdir()) == []  # every upload folder removed, whatever the answer


def test_raw_body_upload_equals_multipart(url, data_dir, tmp_path):
    """One file as the raw body (audio/* or application/octet-stream, its name in
    ?filename=) gets the answer the same file gets as multipart/form-data."""
    path = data_dir / FILES[2]
    want = post(url, [path], timeline=True).json()["results"][0]
    for content_type in ("audio/flac", "application/octet-stream", "audio/x-anything; charset=binary"):
        r = httpx.post(f"{url}/predict", params={"filename": "mine.flac", "timeline": "true"}, content=path.read_bytes(),
                       headers={"content-type": content_type})
        assert r.status_code == 200, r.text
        (got,) = r.json()["results"]
        assert got["file"] == "mine.flac" and got["label"] == want["label"]
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)
        assert [t["label"] for t in got["timeline"]] == [t["label"] for t in want["timeline"]]
    r = httpx.post(f"{url}/predict", content=path.read_bytes(), headers={"content-type": "audio/flac"})
    assert r.status_code == 200 and r.json()["results"][0]["file"] == "upload"  # no ?filename=: a fixed name


def test_upload_root_prefers_a_ram_folder_with_room(tmp_path, monkeypatch):
    from ser_lightning.serving import limits, uploads

    monkeypatch.setattr(limits, "SHM", tmp_path)
    monkeypatch.setattr(limits, "SHM_MIN_FREE", 1)
    assert limits.upload_root(None) == tmp_path and limits.upload_root("auto") == tmp_path
    monkeypatch.setattr(limits, "SHM_MIN_FREE", 1 << 62)  # too little room: the system's temporary folder
    assert limits.upload_root("auto") is None
    monkeypatch.setattr(limits, "SHM", tmp_path / "missing")
    monkeypatch.setattr(limits, "SHM_MIN_FREE", 1)
    assert limits.upload_root("auto") is None
    assert limits.upload_root(str(tmp_path)) == tmp_path
    with pytest.raises(ConfigError, match="upload_dir"):
        ServeSettings(upload_dir=str(tmp_path / "missing"))
    with uploads.UploadFolder(tmp_path) as folder:
        assert folder.path.parent == tmp_path and folder.path.stat().st_mode & 0o777 == 0o700
    assert list(tmp_path.iterdir()) == []


def test_an_upload_that_cannot_be_stored_is_a_503(scorer, data_dir, tmp_path):
    gone = tmp_path / "uploads"
    gone.mkdir()
    with serving(scorer, upload_dir=str(gone)) as url:
        gone.rmdir()  # the folder disappears (a full or unmounted disk alike)
        r = httpx.post(f"{url}/predict?filename=a.flac", content=(data_dir / FILES[0]).read_bytes(),
                       headers={"content-type": "audio/flac"})
        assert r.status_code == 503 and "could not be stored" in _no_traceback(r)["error"] and str(gone) not in r.text


def test_upload_folder_is_private(tmp_path):
    from ser_lightning.serving.uploads import UploadFolder

    with UploadFolder() as folder:
        assert folder.path.stat().st_mode & 0o777 == 0o700
        (folder.path / "x.wav").write_bytes(b"x")
    assert not folder.path.exists()
    with pytest.raises(RuntimeError), UploadFolder() as folder:
        raise RuntimeError("a failed request")
    assert not folder.path.exists()


def test_the_api_key(scorer, data_dir, ckpt, capsys):
    with pytest.raises(ConfigError, match="API key"):
        ServeSettings(host="0.0.0.0")
    assert ServeSettings(host="0.0.0.0", insecure=True).host == "0.0.0.0"
    assert ServeSettings(host="0.0.0.0", api_key="k").api_key == "k"
    from ser_lightning.cli.serve import run_serve

    assert run_serve(serve_config(ckpt, "host=0.0.0.0")) == 2  # refused before the model is loaded
    assert "insecure=true" in capsys.readouterr().err
    assert run_serve(serve_config(ckpt, "input=clip.wav")) == 2
    pcm = np.zeros(3200, np.int16)
    with serving(scorer, api_key="s3cret") as url:
        assert post(url, [data_dir / FILES[0]]).status_code == 401
        r = post(url, [data_dir / FILES[0]], headers={"X-API-Key": "wrong"})
        assert r.status_code == 401 and "X-API-Key" in _no_traceback(r)["error"]
        assert post(url, [data_dir / FILES[0]], headers={"X-API-Key": "s3cret"}).status_code == 200
        assert httpx.get(f"{url}/health").json()["key_required"] is True
        ws = url.replace("http", "ws") + "/stream"
        refused = asyncio.run(stream_pcm(ws, pcm))
        assert refused[0]["type"] == "error" and "API key" in refused[0]["message"]
        ok = asyncio.run(stream_pcm(ws, pcm, start={"type": "start", "key": "s3cret"}))
        assert ok[-1]["type"] == "end"
        ok = asyncio.run(stream_pcm(ws, pcm, headers={"X-API-Key": "s3cret"}))
        assert ok[-1]["type"] == "end"


def test_bad_stream_messages_close_with_a_message(scorer):
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async def run(messages) -> tuple[list, int]:
        got = []
        async with connect(url.replace("http", "ws") + "/stream") as ws:
            for m in messages:
                await ws.send(m)
            try:
                async for m in ws:
                    got.append(json.loads(m))
            except ConnectionClosed:  # closed with an error code: the code and the message are checked
                pass
        return got, ws.close_code

    with serving(scorer, max_chunk_bytes=4000) as url:
        got, code = asyncio.run(run([b"\x00\x01\x02"]))
        assert code == 1003 and "16-bit PCM" in got[-1]["message"]
        got, code = asyncio.run(run([b"\x00" * 4002]))
        assert code == 1009 and "4000" in got[-1]["message"]
        got, code = asyncio.run(run(["hello"]))
        assert code == 1003 and got[-1]["type"] == "error"
        got, code = asyncio.run(run(['{"type": "start", "sample_rate": 5}']))
        assert code == 1008 and "sample_rate" in got[-1]["message"]


def test_the_queue_is_bounded_and_times_out():
    """The queue itself, with a scoring function that takes a known time."""
    def slow(items):
        time.sleep(0.2)
        return [f"result of {x}" for x in items]

    async def main():
        queue = BatchQueue(slow, max_batch_files=1, max_queue=2)
        try:
            first = asyncio.ensure_future(queue.submit([1], timeout=10))
            await asyncio.sleep(0.05)  # the worker took job 1; jobs 2 and 3 wait; 4 is one too many
            waiting = [asyncio.ensure_future(queue.submit([i], timeout=10)) for i in (2, 3)]
            await asyncio.sleep(0.01)
            with pytest.raises(RequestRejected) as full:
                await queue.submit([4], timeout=10)
            assert full.value.status == 503
            assert await first == ["result of 1"] and [await w for w in waiting] == [["result of 2"], ["result of 3"]]
            with pytest.raises(RequestRejected) as late:
                await queue.submit([5], timeout=0.05)
            assert late.value.status == 504
        finally:
            queue.close()

    asyncio.run(main())


def test_batch_wait_only_while_requests_come_together():
    """batch_wait_seconds keeps a lone request waiting for none; once requests come
    together (a batch of several), the worker waits for more to fill the next batch,
    and every job still gets its own results."""
    calls = []

    def score(items):
        calls.append(list(items))
        time.sleep(0.2)
        return [x * 10 for x in items]

    async def main():
        queue = BatchQueue(score, max_batch_files=8, max_queue=16, batch_wait_seconds=0.5)
        try:
            t = time.monotonic()
            assert await queue.submit([1], timeout=10) == [10]
            assert time.monotonic() - t < 0.6  # alone: 0.2 s of scoring, not also the 0.5-s wait
            first = asyncio.ensure_future(queue.submit([2], timeout=10))
            await asyncio.sleep(0.01)  # the worker is scoring [2]: these two wait, then go together
            pair = [asyncio.ensure_future(queue.submit([i], timeout=10)) for i in (3, 4)]
            await asyncio.sleep(0.3)  # the worker is scoring [3, 4]
            late = asyncio.ensure_future(queue.submit([5, 6], timeout=10))
            await asyncio.sleep(0.2)  # after a batch of two jobs the worker waits: [7] joins [5, 6]
            later = asyncio.ensure_future(queue.submit([7], timeout=10))
            assert await first == [20] and [await p for p in pair] == [[30], [40]]
            assert await late == [50, 60] and await later == [70]
            assert calls == [[1], [2], [3, 4], [5, 6, 7]]
        finally:
            queue.close()

    asyncio.run(main())


def test_a_failure_inside_is_a_500_without_traceback(scorer, data_dir, monkeypatch):
    with serving(scorer) as url:
        monkeypatch.setattr(scorer, "score", lambda items: 1 / 0)  # BatchQueue holds the bound method: patch before
    app_scorer = Scorer(scorer.predictor, vad="energy")
    monkeypatch.setattr(app_scorer, "score", lambda items: (_ for _ in ()).throw(RuntimeError("secret detail")))
    with ServerThread(create_app(app_scorer, ServeSettings(port=0))) as url:
        r = post(url, [data_dir / FILES[0]])
        assert r.status_code == 500 and "secret detail" not in r.text and "Traceback" not in r.text
        assert "server's log" in r.json()["error"]


def test_32_concurrent_clients_get_their_own_answers(url, scorer, data_dir):
    """32 clients at once, each with its own file (6 different recordings) and name, half
    as raw bodies and half as multipart: every answer arrives, once, with the name and the
    prediction of its own request."""
    expected = {f: p for f, p in zip(FILES, scorer.predictor.predict([data_dir / f for f in FILES]), strict=True)}
    before = httpx.get(f"{url}/health").json()

    async def client(i: int, session) -> tuple[int, dict]:
        f = FILES[i % len(FILES)]
        if i % 2:  # half of them send the raw body, half multipart: both batched together
            r = await session.post(f"{url}/predict", params={"filename": f"client{i}-{Path(f).name}"},
                                   content=(data_dir / f).read_bytes(), headers={"content-type": "audio/flac"}, timeout=120)
        else:
            files = [("file", (f"client{i}-{Path(f).name}", (data_dir / f).read_bytes(), "audio/flac"))]
            r = await session.post(f"{url}/predict", files=files, timeout=120)
        return i, r

    async def main():
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as session:
            return await asyncio.gather(*(client(i, session) for i in range(32)))

    answers = asyncio.run(main())
    assert sorted(i for i, _ in answers) == list(range(32))
    for i, r in answers:
        assert r.status_code == 200, r.text
        (result,) = r.json()["results"]
        f = FILES[i % len(FILES)]
        assert result["file"] == f"client{i}-{Path(f).name}"
        assert result["label"] == expected[f].label
        assert result["confidence"] == pytest.approx(expected[f].confidence, abs=1e-6)
        assert result["probabilities"] == pytest.approx(expected[f].probabilities, abs=1e-6)
    after = httpx.get(f"{url}/health").json()
    assert after["files_scored"] - before["files_scored"] == 32
    assert after["batches"] - before["batches"] < 32  # waiting requests were batched together
    assert after["model_cpu_seconds"] > before["model_cpu_seconds"]  # the worker's CPU time, for bench/serve_load.py


def test_segmenter_vad_and_min_confidence_as_predict_py(scorer, data_dir, tmp_path):
    """serve.py segmenter=vad scores uploads as predict.py segmenter=vad (predict_segments),
    and min_confidence labels uploads and stream segments uncertain as predict.py does."""
    from ser_lightning.data.vad import build_vad
    from ser_lightning.inference.abstention import apply_min_confidence
    from ser_lightning.inference.live import predict_segments

    path = conversation(data_dir, tmp_path / "conversation.wav")
    vad_scorer = Scorer(scorer.predictor, segmenter="vad", vad="energy", min_confidence=0.9)
    want = apply_min_confidence(predict_segments(scorer.predictor, [path], build_vad("energy")), 0.9)[0]
    with serving(vad_scorer) as url:
        r = post(url, [path], timeline=True)
        assert r.status_code == 200, r.text
        (got,) = r.json()["results"]
        assert got["label"] == want.label and got["confidence"] == pytest.approx(want.confidence, abs=1e-6)
        assert [(t["start"], t["end"], t["label"]) for t in got["timeline"]] == \
            [(round(w.start, 4), round(w.end, 4), w.label) for w in want.windows]
        assert len(got["timeline"]) == 4  # one row per speech segment
        segments = [m for m in asyncio.run(stream_pcm(url.replace("http", "ws") + "/stream", pcm16(path)))
                    if m["type"] == "segment"]
        assert [m["label"] for m in segments] == [w.label for w in want.windows]
    assert "uncertain" in [w.label for w in want.windows]  # the threshold did withhold labels (the server's too)
