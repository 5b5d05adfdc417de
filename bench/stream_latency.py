"""Live prediction cost on CPU: label latency after speech ends, per-window compute, RTF.

    nice -n 10 python -m bench.stream_latency [--ckpt best.ckpt] [--data /work/shared/data] [--clips 20] [--repeats 3]

The stream is a "conversation" of ``--clips`` real RAVDESS takes (16 kHz FLAC, each with
its own ~1 s lead-in) separated by 1.5 s of digital silence, upsampled to 48 kHz (a
typical microphone rate, so the streaming resampler is part of the cost), pushed into
:class:`ser_lightning.inference.live.StreamingPredictor` in 32-ms chunks, as a sound card
delivers them. Without ``--ckpt`` the model is the default ``model=cnn2d`` + log-mel,
untrained (speed does not depend on the weights); one PyTorch thread.

What is measured (wall clock, ``time.perf_counter``; medians over ``--repeats`` runs):

- per-window compute: :meth:`Predictor.probabilities` on one 3-s window (median of 50 calls).
- RTF per VAD backend: compute seconds of all ``push``/``finish`` calls / seconds of audio.
- label latency per VAD backend: from the end of speech (a segment's end minus the
  VAD's ``pad_seconds``, the audio after it is silence) to the moment its label is
  available, replaying the stream on a virtual real-time clock: a chunk arrives when
  its last sample has been "recorded", is processed after the previous chunk's
  processing ends, and the label is there when the processing of the chunk that
  emitted the segment's end is done. It is the VAD's ``min_silence_seconds`` (0.3 s:
  silence it waits for before ending a segment) plus at most one chunk plus compute.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soxr
import torch

from bench.common import REPO, header
from bench.predict_bench import default_checkpoint

from ser_lightning.data.audio import load_audio
from ser_lightning.inference.loading import load_predictor
from ser_lightning.inference.predictor import Predictor
from ser_lightning.inference.live import SegmentEnd, StreamingPredictor
from ser_lightning.data.vad import build_vad

RATE = 48000
CHUNK = int(0.032 * RATE)


def conversation(data: Path, n_clips: int) -> np.ndarray:
    files = sorted((data / "ravdess").glob("Actor_*/*.flac"))[:: 37][:n_clips]
    gap = np.zeros(int(1.5 * 16000), np.float32)
    wave = np.concatenate([x for f in files for x in (load_audio(f, 16000), gap)])
    return soxr.resample(wave, 16000, RATE).astype(np.float32)


def replay(predictor: Predictor, audio: np.ndarray, vad: str) -> dict:
    detector = build_vad(vad)
    live = StreamingPredictor(predictor, RATE, vad=detector)
    pad = detector.pad_seconds if detector is not None else 0.0
    clock, compute, latencies = 0.0, 0.0, []
    for i in range(0, audio.size + 1, CHUNK):
        arrival = min(i + CHUNK, audio.size) / RATE
        t0 = time.perf_counter()
        events = live.push(audio[i:i + CHUNK]) if i < audio.size else live.finish()
        spent = time.perf_counter() - t0
        compute += spent
        clock = max(clock, arrival) + spent
        latencies += [clock - (e.end - pad) for e in events if isinstance(e, SegmentEnd)]
    return {"rtf": compute / (audio.size / RATE), "latency": latencies}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.ckpt or default_checkpoint(Path(tmp) / "cnn2d.ckpt")
        predictor = load_predictor(ckpt, device="cpu")  # any saved-model kind, the released model included
    window = np.random.default_rng(0).standard_normal((1, predictor.clip_samples)).astype(np.float32) * 0.1
    for _ in range(5):
        predictor.probabilities(window)
    per_window = []
    for _ in range(50):
        t0 = time.perf_counter()
        predictor.probabilities(window)
        per_window.append(time.perf_counter() - t0)
    audio = conversation(args.data, args.clips)
    print(header("Live prediction (bench/stream_latency.py)"))
    print(f"Stream: {audio.size / RATE:.1f} s at {RATE} Hz ({args.clips} RAVDESS takes, 1.5 s of silence between), "
          f"32-ms chunks; per-window compute (one 3-s window, `Predictor.probabilities`): "
          f"{statistics.median(per_window) * 1000:.1f} ms (median of 50)\n")
    print("| VAD | RTF (median of runs) | label latency after speech ends: median / max | segments |")
    print("|---|---|---|---|")
    for vad in ("none", "energy", "webrtc", "silero"):
        try:
            runs = [replay(predictor, audio, vad) for _ in range(args.repeats)]
        except ValueError as exc:
            print(f"| {vad} | unavailable: {exc} | | |")
            continue
        rtfs = [r["rtf"] for r in runs]
        lat = runs[len(runs) // 2]["latency"]
        latency = f"{statistics.median(lat) * 1000:.0f} / {max(lat) * 1000:.0f} ms" if lat else "n/a (no segments without a VAD)"
        print(f"| {vad} | {statistics.median(rtfs):.4f} (runs: {', '.join(f'{r:.4f}' for r in rtfs)}) | {latency} | {len(lat)} |")


if __name__ == "__main__":
    main()
