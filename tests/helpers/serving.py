"""Shared by the serving tests: a recording of several emotions with pauses, stream.py's
segment labels for it, a PCM WebSocket client, and serve.yaml's predictor."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from ser_lightning.data.audio import load_audio

#: TESS clips, one per class in another order than the classes' (tests/test_serving.py).
SEGMENT_CLIPS = ["tess/YAF_angry/YAF_bar_angry.flac", "tess/YAF_sad/YAF_bar_sad.flac",
                 "tess/YAF_happy/YAF_bar_happy.flac", "tess/OAF_neutral/OAF_bar_neutral.flac"]


def confident_clips(ckpt: Path, data_dir: Path) -> list[Path]:
    """For each class, the training clip of the test model (tests/helpers/checkpoints.py)
    it labels correctly with the highest confidence; classes it gets wrong on every
    clip are left out. In the order angry, sad, happy, neutral (not the classes' order)."""
    from ser_lightning.inference.predictor import Predictor
    from tests.helpers.checkpoints import CLASSES, training_clips

    clips = training_clips(data_dir)
    predictions = Predictor.from_checkpoint(ckpt, device="cpu").predict([f for f, _ in clips])
    best: dict[str, tuple[float, Path]] = {}
    for (f, k), p in zip(clips, predictions, strict=True):
        if p.label == CLASSES[k] and p.confidence > best.get(p.label, (0.0, f))[0]:
            best[p.label] = (p.confidence, f)
    return [best[c][1] for c in ("angry", "sad", "happy", "neutral") if c in best]


def conversation(data_dir: Path, path: Path, gap_seconds: float = 1.0, rate: int = 16000,
                 clips: list[Path] | None = None) -> Path:
    """``clips`` (default :data:`SEGMENT_CLIPS`) separated (and preceded and followed) by
    ``gap_seconds`` of digital silence, as a 16 kHz 16-bit mono WAV (the PCM /stream takes,
    so stream.py and the WebSocket read identical samples). Returns ``path``."""
    gap = np.zeros(int(gap_seconds * rate), np.float32)
    parts = [gap]
    for clip in clips or [data_dir / name for name in SEGMENT_CLIPS]:
        parts += [load_audio(clip, rate), gap]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.concatenate(parts), rate, subtype="PCM_16")
    return path


_SEGMENT_LINE = re.compile(r"\[\s*([\d.]+) -\s*([\d.]+) s\] speech #(\d+) ends: (\S+)")


def stream_py_segments(ckpt: Path, source: Path, vad: str = "energy") -> list[tuple[float, float, str]]:
    """``(start, end, label)`` of every speech segment ``stream.py`` prints for ``source``
    (its runner, in this process, at full speed: ``realtime=false``)."""
    import contextlib
    import io

    from hydra import compose, initialize_config_dir

    from ser_lightning.cli.stream import run_stream

    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("stream", overrides=[f"ckpt_path={ckpt}", f"source={source}", "realtime=false", f"vad={vad}",
                                           "model_device=cpu", "in_place=false", "show_windows=false"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert run_stream(cfg) == 0
    return [(float(a), float(b), label.lower()) for a, b, _, label in _SEGMENT_LINE.findall(out.getvalue())]


def pcm16(path: Path) -> np.ndarray:
    """A 16 kHz 16-bit file's samples as int16."""
    data, rate = sf.read(str(path), dtype="int16")
    assert rate == 16000 and data.ndim == 1
    return data


async def stream_pcm(url: str, pcm: np.ndarray, chunk: int = 1600, start: dict | None = None, headers=None) -> list[dict]:
    """Send ``pcm`` (int16) to ``url`` (``ws://.../stream``) in chunks, then ``end``; every
    message received, in order."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    messages = []
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        if start is not None:
            await ws.send(json.dumps(start))

        async def reader():
            async for m in ws:
                messages.append(json.loads(m))

        task = asyncio.create_task(reader())
        try:
            for i in range(0, pcm.size, chunk):
                await ws.send(pcm[i:i + chunk].astype("<i2").tobytes())
            await ws.send(json.dumps({"type": "end"}))
        except ConnectionClosed:  # the server refused the stream: its message is what matters
            pass
        try:
            await asyncio.wait_for(task, 120)
        except ConnectionClosed:
            pass
    return messages


def serve_config(ckpt: Path, *overrides: str):
    """``conf/serve.yaml`` composed with ``ckpt_path`` and ``overrides``."""
    from hydra import compose, initialize_config_dir

    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return compose("serve", overrides=[f"ckpt_path={ckpt}", "device=cpu", *overrides])
