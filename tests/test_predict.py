"""Prediction: the Python API and predict.py over files, folders, arrays, long
recordings and every kind of bad input."""

from __future__ import annotations

import csv
import json
import math
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_lightning.cli.predict import run_predict as run_predict_cfg
from ser_lightning.data.audio import fit_length, load_audio
from ser_lightning.transforms.features import FeatureExtractor
from ser_lightning.errors import CheckpointError
from ser_lightning.inference.outputs import SILENCE
from ser_lightning.inference.predictor import Predictor
from ser_lightning.models.checkpoint import load_checkpoint
from ser_lightning.data.streaming import AudioStream, WindowSlicer, energy_dbfs
from tests.helpers.windows import count_windows
from tests.conftest import write_tone
from tests.helpers.checkpoints import CLASSES, run_predict, training_clips
from tests.helpers.configs import compose_predict


def reference_probabilities(ckpt: Path, wave: np.ndarray) -> np.ndarray:
    """The checkpoint's model applied by hand (no Predictor): one centred clip."""
    raw = torch.load(ckpt, weights_only=True)
    from ser_lightning.models.module import SERModule

    module = SERModule(**raw["hyper_parameters"])
    module.load_state_dict(raw["state_dict"])
    module.eval()
    clip = torch.from_numpy(fit_length(wave, int(raw["hyper_parameters"]["clip_seconds"] * 16000)))[None]
    with torch.no_grad():
        return torch.softmax(module(FeatureExtractor(raw["hyper_parameters"]["features"])(clip)), -1)[0].numpy()


# --- the model and its inputs -------------------------------------------------------


def test_predictor_reproduces_the_trained_model(ckpt, predictor, data_dir):
    clips = training_clips(data_dir)[::8]  # one clip per class
    results = predictor.predict([f for f, _ in clips])
    for (path, _), result in zip(clips, results, strict=True):
        expected = reference_probabilities(ckpt, load_audio(path))
        got = np.array([result.probabilities[c] for c in CLASSES])
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert result.label == CLASSES[int(expected.argmax())] and result.error is None
        assert len(result.windows) == 1 and result.windows[0].label == result.label


def test_files_of_any_rate_and_channels_and_arrays_agree(predictor, originals, tmp_path):
    # A 48 kHz stereo RAVDESS original, the same audio as FLAC at 22.05 kHz, and arrays.
    src = originals / "ravdess" / "Actor_01" / "03-01-01-01-01-01-01.wav"
    audio, sr = sf.read(str(src), dtype="float32", always_2d=True)
    wave16 = load_audio(src, 16000)
    sf.write(str(tmp_path / "mono22k.flac"), load_audio(src, 22050), 22050)
    results = predictor.predict([src, tmp_path / "mono22k.flac", audio, (wave16, 16000)], sample_rate=sr)
    probs = [np.array([r.probabilities[c] for c in CLASSES]) for r in results]
    assert all(r.error is None for r in results)
    np.testing.assert_allclose(probs[2], probs[0], atol=1e-6)  # same samples, array vs file
    np.testing.assert_allclose(probs[3], probs[0], atol=1e-6)  # (array, rate) pair at the model's rate
    np.testing.assert_allclose(probs[1], probs[0], atol=2e-2)  # resampled twice
    assert results[2].source == "array[2]" and results[0].duration == pytest.approx(len(wave16) / 16000)


def test_audio_stream_equals_whole_file_decoding(originals):
    # 24,414 Hz TESS, 48 kHz stereo RAVDESS, AIFF behind .wav, 96 kHz: blocks of 0.3 s.
    for path in [originals / "tess" / "OAF_angry" / "OAF_bar_angry.wav", originals / "ravdess" / "Actor_01" / "03-01-01-01-01-01-01.wav",
                 originals / "tess" / "YAF_angry" / "YAF_germ_angry.wav", originals / "tess" / "OAF_Fear" / "OAF_food_fear.wav"]:
        with AudioStream(path, 16000, block_seconds=0.3) as stream:
            blocks = list(stream.blocks())
        assert len(blocks) > 3
        np.testing.assert_allclose(np.concatenate(blocks), load_audio(path, 16000), atol=1e-6)


@pytest.mark.parametrize("n", [1, 999, 1000, 1001, 1500, 1750, 4000, 4321])
def test_window_slicer_covers_every_sample(n):
    window, hop = 1000, 500
    wave = np.arange(1, n + 1, dtype=np.float32)
    slicer = WindowSlicer(window, hop)
    windows = [w for block in np.array_split(wave, 7) for w in slicer.push(block)] + list(slicer.finish())
    assert len(windows) == count_windows(n, window, hop)
    if n <= window:
        # shorter than one window: one centred, zero-padded window of the real samples
        assert windows[0].start == 0 and windows[0].end == n and np.count_nonzero(windows[0].samples) == n
        return
    starts = [w.start for w in windows]
    expected = [min(i * hop, n - window) for i in range(1 + math.ceil((n - window) / hop))]
    assert starts == expected and windows[-1].end == n
    for w in windows:
        np.testing.assert_array_equal(w.samples, wave[w.start:w.start + window])


def test_energy_dbfs_reference_levels():
    assert energy_dbfs(np.ones(100, np.float32)) == pytest.approx(0.0)
    sine = np.sin(2 * np.pi * np.arange(16000) / 160).astype(np.float32)
    assert energy_dbfs(sine) == pytest.approx(-3.01, abs=0.01)
    assert energy_dbfs(0.01 * sine) == pytest.approx(-43.01, abs=0.01)
    assert energy_dbfs(np.zeros(10, np.float32)) == -200.0


def test_window_and_hop_are_configurable(ckpt):
    wave = np.random.default_rng(0).standard_normal(10 * 16000).astype(np.float32) * 0.1
    result = Predictor.from_checkpoint(ckpt, device="cpu", window_seconds=2.0, hop_seconds=0.5).predict((wave, 16000))[0]
    assert [(w.start, w.end) for w in result.windows][:3] == [(0.0, 2.0), (0.5, 2.5), (1.0, 3.0)]
    assert len(result.windows) == 17 and result.windows[-1].end == 10.0
    with pytest.raises(ValueError, match="positive"):
        Predictor.from_checkpoint(ckpt, device="cpu", hop_seconds=-1.0)


# --- bad input: each gets its own message, the others are still predicted -----------


def test_every_bad_input_has_a_specific_message_and_the_good_ones_are_predicted(predictor, originals, tmp_path):
    good = originals / "savee" / "ALL" / "DC_a01.wav"
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    zero = tmp_path / "zero.wav"
    sf.write(str(zero), np.zeros(0, np.float32), 16000)
    text = tmp_path / "notes.wav"
    text.write_text("these are meeting notes, not audio\n" * 20)
    truncated = tmp_path / "truncated.wav"
    full = write_tone(tmp_path / "full.wav", seconds=4.0, sr=16000)
    sf.write(str(full), sf.read(str(full))[0], 16000, subtype="PCM_16")
    truncated.write_bytes(full.read_bytes()[: 44 + 2 * 16000])  # header + 1 s of 4 s
    broken_header = tmp_path / "broken_header.wav"
    broken_header.write_bytes(full.read_bytes()[:30])
    tiny = write_tone(tmp_path / "tiny.wav", seconds=0.01)  # shorter than one 25 ms analysis window
    short = write_tone(tmp_path / "short.wav", seconds=1.0)  # shorter than the 3 s model window: padded
    silent = tmp_path / "silence.flac"
    sf.write(str(silent), np.zeros(5 * 16000, np.float32), 16000)
    folder = tmp_path / "a_folder.wav"
    folder.mkdir()
    nan = np.full(16000, 0.1, np.float32)
    nan[500] = np.nan
    inf = np.full(16000, 0.1, np.float32)
    inf[-1] = np.inf

    inputs = [good, empty, zero, text, truncated, broken_header, tiny, short, silent, tmp_path / "missing.wav", folder, nan, inf, good]
    results = {r.source: r for r in predictor.predict(inputs, sample_rate=16000)}
    assert len(results) == len(inputs) - 1  # `good` twice

    def error(path) -> str:
        return results[str(path)].error

    assert "empty file (0 bytes)" in error(empty)
    assert "no samples (zero-length audio)" in error(zero)
    assert "not an audio file" in error(text)
    assert "cannot decode as audio" in error(broken_header) and "data" in error(broken_header)
    assert "too short (10.0 ms)" in error(tiny) and "one analysis window" in error(tiny)
    assert "no such file" in error(tmp_path / "missing.wav")
    assert "is a folder" in error(folder)
    assert "NaN or infinite" in results["array[11]"].error and "NaN or infinite" in results["array[12]"].error
    for r in (results[str(p)] for p in (empty, zero, text, broken_header, tiny, tmp_path / "missing.wav", folder)):
        assert r.label is None and r.probabilities == {}

    assert results[str(good)].error is None and results[str(good)].label in CLASSES
    cut = results[str(truncated)]
    assert cut.error is None and cut.label in CLASSES and cut.duration == pytest.approx(1.0)
    assert "truncated file: the header declares 4.00 s, 1.00 s are present" in cut.note
    padded = results[str(short)]
    assert padded.error is None and padded.duration == pytest.approx(1.0) and len(padded.windows) == 1
    assert padded.windows[0].end == pytest.approx(1.0)
    quiet = results[str(silent)]
    assert quiet.error is None and quiet.label == SILENCE and quiet.confidence is None and quiet.probabilities == {}
    assert "silence: every window is below -70 dBFS" in quiet.note
    assert len(quiet.windows) == 3 and all(w.label == SILENCE for w in quiet.windows)


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0, reason="root reads any file")
def test_file_without_read_permission(predictor, tmp_path):
    locked = write_tone(tmp_path / "locked.wav")
    locked.chmod(0)
    try:
        assert "cannot be read" in predictor.predict([locked])[0].error
    finally:
        locked.chmod(0o644)


def test_array_needs_its_sample_rate_and_other_types_are_refused(predictor):
    assert "sample_rate is required" in predictor.predict(np.zeros(16000, np.float32))[0].error
    assert "unsupported input type Tensor" in predictor.predict([torch.zeros(16000)])[0].error


def test_one_hour_recording_streams_in_bounded_memory(predictor, tmp_path):
    """1 h at 8 kHz (resampled to 16 kHz on the fly): silence with 4-s tone bursts.
    Decoded whole at 16 kHz it would take 230 MB (float32); the stream must stay far
    below that, and the timeline must mark exactly the windows holding sound."""
    sr, seconds = 8000, 3600
    bursts = [600.7, 1800.2, 3590.4]  # start times (s) of the bursts, >= 0.2 s from window edges
    path = tmp_path / "session.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="PCM_16") as fh:
        for minute in range(seconds // 60):
            block = np.zeros(60 * sr, np.float32)
            for b in bursts:
                lo, hi = int((b - minute * 60) * sr), int((b + 4 - minute * 60) * sr)
                if hi > 0 and lo < block.size:
                    lo, hi = max(lo, 0), min(hi, block.size)
                    t = np.arange(lo, hi) / sr
                    block[lo:hi] = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(hi - lo)
            fh.write(block)
    assert path.stat().st_size > 50e6

    tracemalloc.start()
    result = predictor.predict([path])[0]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 40e6, f"peak NumPy/Python allocation {peak / 1e6:.0f} MB: the recording was not streamed"

    assert result.error is None and result.duration == pytest.approx(seconds, abs=0.01)
    assert len(result.windows) == count_windows(seconds * 16000, 48000, 24000) == 2399
    for w in result.windows:
        holds_sound = any(w.start < b + 4 and b < w.end for b in bursts)
        assert (w.label != SILENCE) == holds_sound, (w.start, w.end, w.label, w.energy_dbfs)
        assert w.end - w.start == pytest.approx(3.0)
    voiced = [w for w in result.windows if w.label != SILENCE]
    assert len(voiced) == 5 + 4 + 5 and all(abs(sum(w.probabilities.values()) - 1) < 1e-4 for w in voiced)
    assert result.label in CLASSES and "2385 of 2399 windows silent" in result.note


# --- checkpoints ---------------------------------------------------------------------


class _RunsCode:
    """Unpickling this would create a file: proof that code from a checkpoint ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_bad_checkpoints_are_refused_with_a_reason(ckpt, tmp_path):
    cases = {}
    cases["missing"] = tmp_path / "missing.ckpt"
    cases["empty"] = tmp_path / "empty.ckpt"
    cases["empty"].write_bytes(b"")
    cases["truncated"] = tmp_path / "truncated.ckpt"
    cases["truncated"].write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    cases["garbage"] = tmp_path / "garbage.ckpt"
    cases["garbage"].write_bytes(np.random.default_rng(0).bytes(4096))
    cases["other_program"] = tmp_path / "resnet.ckpt"
    torch.save({"state_dict": torch.nn.Linear(3, 2).state_dict(), "hyper_parameters": {"lr": 0.1}, "epoch": 3}, cases["other_program"])
    cases["bare_state_dict"] = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), cases["bare_state_dict"])
    marker = tmp_path / "code_ran"
    cases["pickled_code"] = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": _RunsCode(marker)}, cases["pickled_code"])
    raw = torch.load(ckpt, weights_only=True)
    raw["state_dict"] = {k: v[..., :1] if v.dim() else v for k, v in raw["state_dict"].items()}
    cases["wrong_weights"] = tmp_path / "wrong_weights.ckpt"
    torch.save(raw, cases["wrong_weights"])

    expected = {
        "missing": "does not exist",
        "empty": "is empty (0 bytes)",
        "truncated": "corrupted or not a PyTorch checkpoint",
        "garbage": "corrupted or not a PyTorch checkpoint",
        "other_program": "is not a ser-lightning checkpoint",
        "bare_state_dict": "is not a ser-lightning checkpoint",
        "pickled_code": "refuses to unpickle",
        "wrong_weights": "weights do not match",
    }
    for name, path in cases.items():
        with pytest.raises(CheckpointError, match=re.escape(expected[name])):
            Predictor.from_checkpoint(path, device="cpu")
    assert not marker.exists()
    assert set(load_checkpoint(ckpt)["hyper_parameters"]["class_names"]) == set(CLASSES)


# --- predict.py ----------------------------------------------------------------------


def test_predict_cli_folder_with_long_recording_timeline_and_plot(ckpt, originals, tmp_path):
    inputs = tmp_path / "calls"
    for src in [originals / "savee" / "ALL" / "JK_n10.wav", originals / "tess" / "OAF_angry" / "OAF_bar_angry.wav"]:
        (inputs / src.name).parent.mkdir(parents=True, exist_ok=True)
        (inputs / src.name).write_bytes(src.read_bytes())
    # a 20-s "session" (44.1 kHz stereo): 6 s of speech over room noise at -50 dBFS, 8 s
    # of digital silence (a muted microphone), 6 s of speech over room noise
    speech = np.tile(load_audio(originals / "ravdess" / "Actor_01" / "03-01-01-01-01-01-01.wav", 44100), 2)[: 6 * 44100]
    speech = speech + 0.00447 * np.random.default_rng(0).standard_normal(speech.size).astype(np.float32)
    session = np.concatenate([speech, np.zeros(8 * 44100, np.float32), speech])
    sf.write(str(inputs / "session.flac"), np.stack([session, session], axis=1), 44100)
    (inputs / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")

    out = tmp_path / "out"
    proc = run_predict(f"ckpt_path={ckpt}", f"input={inputs}", f"output={out / 'preds.json'}", f"timeline={out / 'timeline.csv'}",
                       f"plot_dir={out / 'plots'}", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # broken.wav failed, the rest was predicted
    assert "1 of 4 inputs could not be predicted" in proc.stderr and "Traceback" not in proc.stderr
    assert "cannot decode as audio" in proc.stdout and "session.flac" in proc.stdout
    rows = {Path(r["path"]).name: r for r in json.loads((out / "preds.json").read_text())}
    assert set(rows) == {"JK_n10.wav", "OAF_bar_angry.wav", "session.flac", "broken.wav"}
    assert rows["broken.wav"]["label"] is None and rows["broken.wav"]["error"]
    s = rows["session.flac"]
    assert s["error"] is None and s["label"] in CLASSES and s["windows"] == 13 and s["duration_seconds"] == pytest.approx(20.0)
    assert s["silent_windows"] == 4 and sum(s[c] for c in CLASSES) == pytest.approx(1.0, abs=1e-5)

    with (out / "timeline.csv").open() as fh:
        timeline = [r for r in csv.DictReader(fh) if r["path"].endswith("session.flac")]
    assert len(timeline) == 13
    assert [(float(r["start"]), float(r["end"])) for r in timeline[:2]] == [(0.0, 3.0), (1.5, 4.5)]
    silent = [r for r in timeline if r["label"] == SILENCE]
    assert [float(r["start"]) for r in silent] == [6.0, 7.5, 9.0, 10.5]  # the windows inside 6..14 s
    assert all(r[c] == "" for r in silent for c in CLASSES)
    assert all(float(r["energy_dbfs"]) > -70 and r["label"] in CLASSES for r in timeline if r not in silent)
    png = out / "plots" / "session.png"
    assert png.is_file() and png.stat().st_size > 5000
    assert not (out / "plots" / "OAF_bar_angry.png").exists()  # 2 s, a single window: no timeline plot


def test_predict_exit_codes(ckpt, originals, tmp_path, capsys):
    # In-process through the composed Hydra config (predict.py itself runs in the test above).
    assert run_predict_cfg(compose_predict(f"ckpt_path={ckpt}", f"input={originals}/savee/ALL/*.wav", f"output={tmp_path / 'p.csv'}")) == 0
    with (tmp_path / "p.csv").open() as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames[:3 + len(CLASSES)] == ["path", "label", "confidence", *CLASSES] and len(rows) == 3
    assert all(r["label"] in CLASSES and r["error"] == "" for r in rows)
    corrupted = tmp_path / "corrupted.ckpt"
    corrupted.write_bytes(ckpt.read_bytes()[:1000])
    assert run_predict_cfg(compose_predict(f"ckpt_path={corrupted}", f"input={originals}")) == 2
    assert "corrupted" in capsys.readouterr().err
    assert run_predict_cfg(compose_predict(f"ckpt_path={ckpt}", f"input={tmp_path / 'nothing_here' / '*.wav'}")) == 2
    assert "no audio files match" in capsys.readouterr().err
    assert run_predict_cfg(compose_predict(f"ckpt_path={ckpt}", f"input={originals}", "output=preds.xlsx")) == 2


@pytest.mark.parametrize("name, n_features, folded_norms", [("cnn2d", 64, 4), ("cnn1d", 40, 3), ("conformer", 40, 3), ("ecapa", 40, 0)])
def test_folding_batch_norm_keeps_the_outputs(name, n_features, folded_norms):
    """Each BatchNorm right after a convolution is folded (conformer: the depthwise
    convolution's); others stay (ecapa's follow a ReLU), and the Predictor's
    channels-last copy keeps the outputs too."""
    from ser_lightning.models.checkpoint import fold_batch_norm
    from ser_lightning.models.backbones import build_backbone

    torch.manual_seed(0)
    model = build_backbone(name, n_features, 7)
    norms = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    for bn in norms:  # statistics and affine parameters of a trained network, not the identity
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 1.5), bn.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    feats = torch.randn(4, n_features, 301)
    with torch.no_grad():
        expected = model(feats)
        folded = fold_batch_norm(model)
        left = [m for m in folded.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
        assert len(norms) - len(left) == folded_norms and norms
        torch.testing.assert_close(folded(feats), expected, atol=1e-5, rtol=1e-5)
        fast = folded.to(memory_format=torch.channels_last)  # as the Predictor stores it
        torch.testing.assert_close(fast(feats), expected, atol=1e-5, rtol=1e-5)


def test_expand_inputs_takes_a_list_as_hydra_passes_it(tmp_path):
    """``input=[a.wav,folder/]`` reaches the predictor as an OmegaConf ListConfig: its
    elements expand in order, each file once; an element matching nothing is named."""
    from omegaconf import OmegaConf

    from ser_lightning.errors import InputNotFoundError
    from ser_lightning.inference.inputs import expand_inputs

    (tmp_path / "calls").mkdir()
    for name in ("calls/b.wav", "calls/c.flac", "a.wav"):
        (tmp_path / name).write_bytes(b"")
    spec = OmegaConf.create({"input": [str(tmp_path / "a.wav"), str(tmp_path / "calls"), str(tmp_path / "calls" / "b.wav")]}).input
    assert expand_inputs(spec) == [tmp_path / "a.wav", tmp_path / "calls" / "b.wav", tmp_path / "calls" / "c.flac"]
    with pytest.raises(InputNotFoundError, match="nothing"):
        expand_inputs([str(tmp_path / "a.wav"), str(tmp_path / "nothing" / "*.wav")])
    with pytest.raises(InputNotFoundError):
        expand_inputs([])
