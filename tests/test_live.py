"""Streaming prediction: equal to predict.py without a VAD, speech-only with one, every
fault marked or reported; stream.py end to end; predict.py segmenter=vad."""

from __future__ import annotations

import csv
import importlib.util
import json
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir

from ser_lightning.cli.predict import run_predict
from ser_lightning.data.audio import load_audio
from ser_lightning.inference.outputs import SILENCE
from ser_lightning.inference.live import SegmentEnd, SegmentStart, StreamIssue, StreamingPredictor, WindowResult
from ser_lightning.cli.stream import run_stream
from ser_lightning.data.vad import VoiceActivityDetector
from tests.conftest import REPO
from tests.helpers.checkpoints import CLASSES

HAS_SILERO = importlib.util.find_spec("silero_vad") is not None
CLIPS = ["ravdess/Actor_01/03-01-01-01-01-01-01.wav", "tess/OAF_angry/OAF_bar_angry.wav", "savee/ALL/JK_n10.wav",
         "ravdess/Actor_02/03-01-05-02-01-02-02.wav"]


@pytest.fixture(scope="module")
def conversation(originals, tmp_path_factory) -> tuple[Path, list[tuple[float, float]]]:
    """Shared clips at 44.1 kHz separated by 2 s of silence, as one stereo file; and
    each clip's (start, end) in seconds."""
    rate, parts, spans, t = 44100, [], [], 0.0
    for name in CLIPS:
        wave = load_audio(originals / name, rate)
        gap = np.zeros(2 * rate, np.float32)
        parts += [gap, wave]
        spans.append((t + 2.0, t + 2.0 + wave.size / rate))
        t += 2.0 + wave.size / rate
    parts.append(np.zeros(2 * rate, np.float32))
    mono = np.concatenate(parts)
    path = tmp_path_factory.mktemp("live") / "conversation.flac"
    sf.write(str(path), np.stack([mono, 0.5 * mono], axis=1), rate)
    return path, spans


def push_randomly(live: StreamingPredictor, audio: np.ndarray, seed: int, largest: int = 30000) -> list:
    rng, events, i = np.random.default_rng(seed), [], 0
    while i < audio.shape[0]:
        n = int(rng.integers(1, largest))
        events += live.push(audio[i:i + n])
        i += n
    return events + live.finish()


def test_without_vad_the_windows_are_predict_py_windows(predictor, conversation):
    path, _ = conversation
    reference = predictor.predict(path)[0]
    audio, rate = sf.read(str(path), dtype="float32")  # stereo 44.1 kHz: downmixed and resampled while streaming
    for seed in (0, 1):
        events = push_randomly(StreamingPredictor(predictor, rate), audio, seed)
        windows = [e for e in events if isinstance(e, WindowResult)]
        assert len(windows) == len(reference.windows) > 10
        assert any(w.label == SILENCE for w in windows) and any(w.label in CLASSES for w in windows)
        for got, ref in zip(windows, reference.windows, strict=True):
            assert (got.start, got.end, got.label) == (pytest.approx(ref.start), pytest.approx(ref.end), ref.label)
            assert got.energy_dbfs == pytest.approx(ref.energy_dbfs, abs=1e-3)
            for c in CLASSES:
                assert abs(got.probabilities.get(c, 0.0) - ref.probabilities.get(c, 0.0)) <= 1e-5


@pytest.mark.skipif(not HAS_SILERO, reason="silero-vad not installed")
def test_with_vad_only_speech_is_classified_and_a_segment_is_the_mean_of_its_windows(predictor, conversation):
    path, spans = conversation
    audio, rate = sf.read(str(path), dtype="float32")
    events = push_randomly(StreamingPredictor(predictor, rate, vad=VoiceActivityDetector("silero")), audio, 2, largest=5000)
    starts = [e for e in events if isinstance(e, SegmentStart)]
    ends = [e for e in events if isinstance(e, SegmentEnd)]
    windows = [e for e in events if isinstance(e, WindowResult)]
    assert len(starts) == len(ends) >= len(spans)
    # every clip is inside a segment, and no segment lies in the 2-s gaps
    for lo, hi in spans:
        assert any(e.start <= lo + 1.0 and e.end >= hi - 0.5 for e in ends) or any(lo - 0.1 <= e.start and e.end <= hi + 0.2 for e in ends)
    for e in ends:
        assert any(lo - 0.2 <= e.start and e.end <= hi + 0.2 for lo, hi in spans), e
    for e in ends:
        own = [w for w in windows if w.segment == e.index]
        assert len(own) == e.windows >= 1
        assert all(e.start - 1e-6 <= w.start and w.end <= e.end + 1e-6 for w in own)
        mean = np.mean([[w.probabilities[c] for c in CLASSES] for w in own], axis=0)
        assert e.label == CLASSES[int(np.argmax(mean))] and e.confidence == pytest.approx(mean.max(), abs=1e-6)
    # events come in time order: a segment's start, its windows, its end
    order = [(type(e).__name__, getattr(e, "segment", getattr(e, "index", None))) for e in events]
    assert order[0] == ("SegmentStart", 0) and order[-1][0] == "SegmentEnd"
    # the same segments whatever the chunking
    again = push_randomly(StreamingPredictor(predictor, rate, vad=VoiceActivityDetector("silero")), audio, 3, largest=40000)
    assert [(e.start, e.end, e.label) for e in again if isinstance(e, SegmentEnd)] == [(e.start, e.end, e.label) for e in ends]


def test_nan_silence_and_bounded_memory(predictor, originals):
    rate = 16000
    live = StreamingPredictor(predictor, rate, vad=VoiceActivityDetector("energy"))
    assert [e for e in live.push(np.zeros(10 * rate, np.float32)) if not isinstance(e, StreamIssue)] == []  # silence: no events
    bad = np.full(rate, np.nan, np.float32)
    bad[::2] = np.inf
    issues = live.push(bad)
    assert [e.kind for e in issues] == ["nan"] and "16000 NaN or infinite samples at 10.00 s" in issues[0].message
    # 40 s of speech without a pause: one open segment, and memory stays bounded
    speech = np.tile(load_audio(originals / CLIPS[0], rate)[int(0.9 * rate):int(2.2 * rate)], 31)
    events = []
    for i in range(0, speech.size, 1600):
        events += live.push(speech[i:i + 1600])
        assert live._history.size <= 4 * rate
        assert live._segment is None or live._segment.slicer._buffer.size <= predictor.clip_samples + 4 * rate
    windows = [e for e in events if isinstance(e, WindowResult)]
    assert len(windows) >= 20 and all(np.isfinite(list(w.probabilities.values())).all() for w in windows)
    assert live._history.size <= 4 * rate
    assert any(isinstance(e, SegmentEnd) for e in live.finish())
    with pytest.raises(ValueError, match="after finish"):
        live.push(np.zeros(10, np.float32))
    # without a VAD, a silent stream gives silence windows, nothing classified
    quiet = StreamingPredictor(predictor, 48000)
    events = quiet.push(np.zeros(48000 * 5, np.float32)) + quiet.finish()
    assert events and all(isinstance(e, WindowResult) and e.label == SILENCE and e.confidence is None for e in events)
    assert StreamingPredictor(predictor, rate).push(np.zeros(100, np.int16)) == []  # PCM is accepted


def test_a_long_vad_look_back_is_kept_in_the_history(predictor, originals):
    rate = 16000
    speech = np.tile(load_audio(originals / CLIPS[0], rate)[int(0.9 * rate):int(2.2 * rate)], 6)  # 7.8 s, no pause
    audio = np.concatenate([np.zeros(rate, np.float32), speech, np.zeros(rate, np.float32)])
    live = StreamingPredictor(predictor, rate, vad=VoiceActivityDetector("energy", min_speech_seconds=5.0))
    events = push_randomly(live, audio, 4, largest=3000)
    start, end = [e for e in events if isinstance(e, SegmentStart)], [e for e in events if isinstance(e, SegmentEnd)]
    assert len(start) == len(end) == 1 and 0.8 <= start[0].start <= 1.2 and abs(end[0].end - 8.9) < 0.1  # announced 5 s late
    windows = [e for e in events if isinstance(e, WindowResult)]
    assert windows[0].start == start[0].start and windows[-1].end == pytest.approx(end[0].end)
    # the first window's probabilities are those of the audio at the segment's start
    first = audio[int(round(start[0].start * rate)):][: predictor.clip_samples]
    expected = predictor.probabilities(first[None])[0]
    assert [windows[0].probabilities[c] for c in CLASSES] == pytest.approx(expected.tolist(), abs=1e-5)


# --- stream.py -------------------------------------------------------------------------


def compose_stream(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("stream", overrides=list(overrides))


def test_stream_py_file_end_to_end(ckpt, conversation, tmp_path):
    path, spans = conversation
    timeline = tmp_path / "live.csv"
    vad = "silero" if HAS_SILERO else "energy"
    env_path = f"{REPO / 'src'}"
    proc = subprocess.run([sys.executable, str(REPO / "stream.py"), f"ckpt_path={ckpt}", f"source={path}", "realtime=false",
                           f"vad={vad}", f"timeline={timeline}"], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert sum("speech #" in ln and "starts" in ln for ln in lines) >= len(spans)
    assert sum(" ends: " in ln for ln in lines) >= len(spans)
    assert "end of input" in proc.stdout and f"timeline rows to {timeline}" in proc.stdout
    with timeline.open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows and set(rows[0]) == {"path", "start", "end", "label", "confidence", "energy_dbfs", *CLASSES}
    assert all(r["label"] in CLASSES for r in rows)


def test_stream_py_ctrl_c_flushes_the_timeline(ckpt, conversation, tmp_path):
    path, _ = conversation
    timeline = tmp_path / "live.json"
    # A process started in the background by a shell without job control inherits SIGINT
    # ignored, and Python then installs no KeyboardInterrupt handler: give stream.py the
    # default disposition a terminal's foreground process has, whoever runs the tests.
    proc = subprocess.Popen([sys.executable, str(REPO / "stream.py"), f"ckpt_path={ckpt}", f"source={path}", "realtime=true",
                             "vad=none", f"timeline={timeline}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stdout:  # the first window is classified after 3 s of real-time audio
        if line.startswith("["):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped (Ctrl-C)" in out and "Traceback" not in err
    rows = json.loads(timeline.read_text())
    assert rows and rows[0]["start"] == 0.0 and rows[0]["end"] == 3.0


class FakeSoundDevice(types.ModuleType):
    """The parts of sounddevice cli/stream.py uses, over a list of fake devices; the input
    stream delivers ``audio`` from a thread, then stops (a device unplugged)."""

    class PortAudioError(Exception):
        pass

    def __init__(self, devices: list[dict], audio: np.ndarray | None = None, supported_rates=(48000,)):
        super().__init__("sounddevice")
        self.devices, self.audio, self.supported_rates = devices, audio, supported_rates

    def query_devices(self, device=None, kind=None):
        if kind is None:
            return self.devices
        inputs = [d for d in self.devices if d["max_input_channels"] > 0]
        if not inputs:
            raise self.PortAudioError("Error querying device -1")
        if device is None:
            return inputs[0]
        match = [d for d in inputs if str(device) in d["name"]]
        if not match:
            raise ValueError(f"No input device matching {device!r}")
        return match[0]

    def check_input_settings(self, device=None, channels=None, dtype=None, samplerate=None):
        if samplerate not in self.supported_rates:
            raise self.PortAudioError("Invalid sample rate [PaErrorCode -9997]")

    def InputStream(self, callback, blocksize, **kwargs):  # noqa: N802 - sounddevice's name
        audio = self.audio

        class Stream:
            def start(self):
                def feed():
                    for k, i in enumerate(range(0, audio.size, blocksize)):
                        status = types.SimpleNamespace(input_overflow=(k == 5))
                        callback(audio[i:i + blocksize, None], blocksize, None, status)
                threading.Thread(target=feed, daemon=True).start()

            def stop(self):
                pass

            def close(self):
                pass

        return Stream()


def test_mic_faults_give_clear_messages(ckpt, originals, tmp_path, monkeypatch, capsys):
    mic = {"name": "USB mic", "max_input_channels": 1, "default_samplerate": 48000.0}
    speaker = {"name": "HDMI out", "max_input_channels": 0, "default_samplerate": 48000.0}
    monkeypatch.setitem(sys.modules, "sounddevice", FakeSoundDevice([speaker]))
    assert run_stream(compose_stream(f"ckpt_path={ckpt}", "source=mic")) == 2
    assert "no input device found" in capsys.readouterr().err
    assert run_stream(compose_stream(f"ckpt_path={ckpt}", "list_devices=true")) == 0
    assert "no input devices found" in capsys.readouterr().out

    monkeypatch.setitem(sys.modules, "sounddevice", FakeSoundDevice([speaker, mic]))
    assert run_stream(compose_stream(f"ckpt_path={ckpt}", "source=mic", "sample_rate=44100")) == 2
    assert "'USB mic' does not support 44100 Hz (its default: 48000 Hz" in capsys.readouterr().err
    assert run_stream(compose_stream(f"ckpt_path={ckpt}", "source=mic", "device=Bluetooth")) == 2
    assert "input device 'Bluetooth' not found" in capsys.readouterr().err

    # 4 s of speech, one overflow, then the device disappears: a marked event, a clear
    # message, exit code 1, and the timeline of what was heard
    speech = np.concatenate([load_audio(originals / CLIPS[0], 48000), np.zeros(48000, np.float32)])[: 4 * 48000]
    monkeypatch.setitem(sys.modules, "sounddevice", FakeSoundDevice([mic], speech))
    timeline = tmp_path / "mic.csv"
    code = run_stream(compose_stream(f"ckpt_path={ckpt}", "source=mic", "vad=energy", "stall_seconds=0.5", f"timeline={timeline}"))
    out, err = capsys.readouterr()
    assert code == 1
    assert "! overflow: input overflow" in out and "no audio from 'USB mic' for 0.5 s" in err
    assert "speech #0 ends" in out and timeline.is_file() and len(timeline.read_text().splitlines()) >= 2


def test_missing_portaudio_gives_the_install_hint(ckpt, monkeypatch, capsys):
    class NoPortAudio:  # what sounddevice does at import without libportaudio
        def find_spec(self, name, path=None, target=None):
            if name == "sounddevice":
                raise OSError("PortAudio library not found")

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoPortAudio(), *sys.meta_path])
    assert run_stream(compose_stream(f"ckpt_path={ckpt}", "source=mic")) == 2
    assert "apt-get install libportaudio2" in capsys.readouterr().err


def test_stream_py_bad_file_and_nan_file(ckpt, tmp_path, capsys):
    assert run_stream(compose_stream(f"ckpt_path={ckpt}", f"source={tmp_path / 'missing.wav'}")) == 2
    assert "no such file" in capsys.readouterr().err
    nan = np.zeros(16000 * 4, np.float32)
    nan[30000:30010] = np.nan
    sf.write(str(tmp_path / "nan.wav"), nan, 16000, subtype="FLOAT")
    assert run_stream(compose_stream(f"ckpt_path={ckpt}", f"source={tmp_path / 'nan.wav'}", "realtime=false", "vad=energy")) == 1
    out, err = capsys.readouterr()
    assert "NaN or infinite samples" in err and "no speech was classified (silence only)" in out


# --- predict.py segmenter=vad ----------------------------------------------------------------


def test_predict_segmenter_vad_gives_one_row_per_speech_segment(ckpt, conversation, tmp_path, capsys):
    path, spans = conversation
    timeline = tmp_path / "segments.csv"
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("predict", overrides=[f"ckpt_path={ckpt}", f"input={path}", "segmenter=vad", "vad=energy",
                                            f"timeline={timeline}", "progress=false"])
    assert run_predict(cfg) == 0
    with timeline.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(spans)
    for row, (lo, hi) in zip(rows, spans, strict=True):
        assert lo - 0.2 <= float(row["start"]) < float(row["end"]) <= hi + 0.2 and row["label"] in CLASSES
        assert sum(float(row[c]) for c in CLASSES) == pytest.approx(1.0, abs=1e-5)
    assert "4 speech segments (energy VAD)" in capsys.readouterr().out


def test_realtime_file_source_keeps_pace(tmp_path):
    from ser_lightning.cli.stream import file_source

    sf.write(str(tmp_path / "one.wav"), np.zeros(8000, np.float32), 8000)
    rate, chunks = file_source(str(tmp_path / "one.wav"), realtime=True, chunk_seconds=0.1)
    t0 = time.monotonic()
    got = list(chunks)
    assert rate == 8000 and sum(c.size for c, _ in got) == 8000 and time.monotonic() - t0 >= 0.9
