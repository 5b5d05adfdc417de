"""Voice activity detection on real corpus clips, and data.trim in the waveform cache."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import soundfile as sf

from ser_lightning.data.audio import load_audio
from ser_lightning.data.cache import load_or_decode
from ser_lightning.data.datamodule import SERDataModule
from ser_lightning.data.vad import SegmentEnded, SegmentStarted, VoiceActivityDetector, build_vad, trim_silence

SR = 16000
BACKENDS = [
    "energy",
    pytest.param("webrtc", marks=pytest.mark.skipif(importlib.util.find_spec("webrtcvad") is None, reason="webrtcvad-wheels not installed")),
    pytest.param("silero", marks=pytest.mark.skipif(importlib.util.find_spec("silero_vad") is None, reason="silero-vad not installed")),
]
# RAVDESS takes have ~1 s of (digitally) silent lead-in and a quiet tail, so the speech
# boundaries lie inside the clip, not at its edges; two actors, two sentences.
CLIPS = ["Actor_01/03-01-05-01-02-01-01.flac", "Actor_06/03-01-01-01-01-01-06.flac", "Actor_13/03-01-05-01-02-01-13.flac",
         "Actor_18/03-01-05-01-02-01-18.flac"]


def loud_span(wave: np.ndarray) -> tuple[float, float]:
    """First and last 10-ms frame within 20 dB of the loudest one, in seconds."""
    frames = wave[: wave.size // 160 * 160].reshape(-1, 160)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    loud = np.flatnonzero(level > level.max() - 20)
    return loud[0] * 0.01, (loud[-1] + 1) * 0.01


@pytest.mark.parametrize("backend", BACKENDS)
def test_segments_of_silence_padded_clips_are_the_clips_speech(backend, data_dir):
    vad = VoiceActivityDetector(backend)
    rng = np.random.default_rng(0)
    for name in CLIPS:
        wave = load_audio(data_dir / "ravdess" / name, SR)
        before, after = rng.uniform(0.5, 2.0, size=2)
        padded = np.concatenate([np.zeros(int(before * SR), np.float32), wave, np.zeros(int(after * SR), np.float32)])
        offset = int(before * SR) / SR
        original, found = vad.segments(wave), vad.segments(padded)
        assert original, f"{backend}: no speech found in {name}"
        # the same segments, shifted by the padding, within 50 ms
        assert len(found) == len(original), (name, original, found)
        for a, b in zip(original, found, strict=True):
            assert abs(b.start - offset - a.start) <= 0.05 and abs(b.end - offset - a.end) <= 0.05, (name, a, b, offset)
        # nothing in the padding, and the loud part of the clip is covered
        assert found[0].start >= offset - 0.05 and found[-1].end <= offset + wave.size / SR + 0.05
        lo, hi = loud_span(wave)
        assert found[0].start <= offset + lo + 0.05 and found[-1].end >= offset + hi - 0.05, (name, found, lo, hi)


@pytest.mark.parametrize("backend", BACKENDS)
def test_streaming_events_equal_whole_waveform_segments_for_any_chunking(backend, data_dir):
    wave = load_audio(data_dir / "ravdess" / CLIPS[0], SR)
    gap = np.zeros(SR, np.float32)
    stream = np.concatenate([gap, wave, gap, wave, gap])
    vad = VoiceActivityDetector(backend)
    whole = vad.segments(stream)
    assert len(whole) == 2
    rng = np.random.default_rng(1)
    events, i = [], 0
    while i < stream.size:
        n = int(rng.integers(1, 4000))
        events += list(vad.push(stream[i:i + n]))
        i += n
    events += list(vad.finish())
    starts = [e.start for e in events if isinstance(e, SegmentStarted)]
    ends = [x for e in events if isinstance(e, SegmentEnded) for x in (e.start, e.end)]
    assert starts == pytest.approx([s.start for s in whole]) and ends == pytest.approx([x for s in whole for x in (s.start, s.end)])
    assert isinstance(events[0], SegmentStarted) and [type(e) for e in events] == [SegmentStarted, SegmentEnded] * 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_silence_and_quiet_noise_have_no_speech(backend):
    vad = VoiceActivityDetector(backend)
    assert vad.segments(np.zeros(5 * SR, np.float32)) == []
    noise = (10 ** (-80 / 20) * np.random.default_rng(0).standard_normal(5 * SR)).astype(np.float32)
    assert vad.segments(noise) == []


@pytest.mark.skipif(importlib.util.find_spec("silero_vad") is None, reason="silero-vad not installed")
def test_silero_keeps_the_callers_thread_setting(monkeypatch):
    import sys

    import torch

    for name in [m for m in sys.modules if m.startswith("silero_vad")]:
        monkeypatch.delitem(sys.modules, name)  # so its import runs again
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        VoiceActivityDetector("silero")  # silero_vad's import calls torch.set_num_threads(1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_bad_settings_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="vad=loud is unknown"):
        build_vad("loud")
    assert build_vad("none") is None and build_vad(None) is None
    with pytest.raises(ValueError, match="must not exceed min_silence_seconds"):
        VoiceActivityDetector("energy", pad_seconds=0.5, min_silence_seconds=0.2)
    with pytest.raises(ValueError, match="aggressiveness"):
        VoiceActivityDetector("webrtc", aggressiveness=5)
    with pytest.raises(ValueError, match="mono"):
        list(VoiceActivityDetector("energy").push(np.zeros((10, 2), np.float32)))


def test_trim_cuts_leading_and_trailing_silence_only(data_dir):
    wave = load_audio(data_dir / "ravdess" / CLIPS[1], SR)
    padded = np.concatenate([np.zeros(SR, np.float32), wave, np.zeros(SR // 2, np.float32)])
    trimmed = trim_silence(padded, SR, "energy")
    segments = VoiceActivityDetector("energy").segments(padded)
    assert trimmed.size == int(round(segments[-1].end * SR)) - int(round(segments[0].start * SR))
    assert trimmed.size < wave.size  # RAVDESS's own lead-in went too
    lo, hi = loud_span(padded)
    start = int(round(segments[0].start * SR))
    assert start <= lo * SR and start + trimmed.size >= hi * SR - 0.05 * SR
    if importlib.util.find_spec("silero_vad") is not None:
        by_silero = trim_silence(padded, SR, "vad")
        assert SR // 2 < padded.size - by_silero.size  # at least the added silence went
        assert np.shares_memory(by_silero, padded) and np.abs(by_silero).max() == np.abs(padded).max()
    silent = np.zeros(SR, np.float32)
    assert trim_silence(silent, SR, "energy") is silent  # no speech: kept whole, never emptied
    with pytest.raises(ValueError, match="16000 Hz"):
        trim_silence(padded, 8000, "energy")


def test_cache_trims_once_and_records_the_method_in_its_key(data_dir, tmp_path):
    wave = load_audio(data_dir / "ravdess" / CLIPS[2], SR)
    paths = []
    for k in range(2):
        path = tmp_path / "corpus" / f"clip{k}.flac"
        path.parent.mkdir(exist_ok=True)
        sf.write(str(path), np.concatenate([np.zeros(SR * (k + 1), np.float32), wave]), SR)
        paths.append(str(path))
    cache = tmp_path / "cache"
    plain = load_or_decode(paths, SR, cache)
    trimmed = load_or_decode(paths, SR, cache, trim="energy")
    assert len(list(cache.glob("*.npy"))) == 2  # two keys, two caches
    assert any("-trimenergy" in p.name for p in cache.glob("*.npy"))
    for i in range(2):
        assert trimmed.wave(i).size < plain.wave(i).size - SR
        assert np.array_equal(trimmed.wave(i), trim_silence(plain.wave(i), SR, "energy"))
    again = load_or_decode(paths, SR, cache, trim="energy")  # a cache hit
    assert np.array_equal(np.asarray(again.samples), np.asarray(trimmed.samples))
    with pytest.raises(ValueError, match="data.trim=silence is unknown"):
        load_or_decode(paths, SR, cache, trim="silence")
    with pytest.raises(ValueError, match="data.sample_rate=16000"):
        SERDataModule("tess", str(data_dir / "tess"), sample_rate=22050, trim="vad")
    assert SERDataModule("tess", str(data_dir / "tess"), trim="energy").trim == "energy"


def test_datamodule_trims_its_cache(data_dir, tmp_path):
    wave = load_audio(data_dir / "ravdess" / CLIPS[3], SR)
    lines = ["path,label,speaker"]
    for i in range(12):
        padded = np.concatenate([np.zeros(SR // 2 + 800 * i, np.float32), wave, np.zeros(SR // 2, np.float32)])
        sf.write(str(tmp_path / f"f{i}.flac"), padded, SR)
        lines.append(f"f{i}.flac,{('happy', 'sad', 'angry')[i % 3]},s{i % 4}")
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    lengths = {}
    for trim in ("none", "energy"):
        dm = SERDataModule("manifest", str(tmp_path / "manifest.csv"), split="random", clip_seconds=1.0, batch_size=4,
                           cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / trim), trim=trim)
        dm.setup("fit")
        lengths[trim] = [dm._audio.wave(i).size for i in range(12)]
    assert any("-trimenergy" in p.name for p in (tmp_path / "cache").glob("*.npy"))
    # the added silence of every length is gone: the same speech remains, to one 30-ms VAD frame
    assert max(lengths["energy"]) - min(lengths["energy"]) <= 480
    assert all(t < n - SR for t, n in zip(lengths["energy"], lengths["none"], strict=True))
