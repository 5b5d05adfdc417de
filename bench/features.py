"""Benchmark 2, feature extraction: log-mel (64 bands) and MFCC (40) of the same clips.

- librosa, the usual way: per clip ``librosa.feature.melspectrogram`` -> ``power_to_db``
  and the MFCC from a second STFT and mel spectrogram, as ``librosa.feature.mfcc(y=...)``
  computes it; also librosa sharing the STFT (``mfcc(S=log-mel)``), its fastest use.
- ours: the batched torchaudio front-end of :class:`ser_lightning.transforms.features.FeatureExtractor`,
  one STFT for both features (MFCC = DCT-II of the log-mel bands), on ``--device``.

librosa is set up to compute the same features (HTK mel scale without filter
normalisation, reflect padding, 80 dB range below each clip's peak, orthonormal DCT), and
the largest difference between the two is printed, so the timings compare equal work.
Clips: ``--clips`` TESS files, centred and cut or zero-padded to 2.5 s (the TESS clip length).

Usage: python -m bench.features [--clips 256] [--batch 64] [--repeats 5] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from bench.common import REPO, fmt_runs, header, load_avg, median, timed

from ser_lightning.data.audio import fit_length
from ser_lightning.data.cache import load_or_decode
from ser_lightning.data.corpora import read_corpus
from ser_lightning.transforms.features import FeatureConfig, FeatureExtractor, power_to_db

SR, N_FFT, HOP, N_MELS, N_MFCC, TOP_DB = 16000, 400, 160, 64, 40, 80.0


def librosa_features(clips: np.ndarray, share_stft: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per clip ``(log-mel [64, frames], MFCC [40, frames])`` with librosa."""
    import librosa

    mel_args = dict(sr=SR, n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, n_mels=N_MELS, htk=True, norm=None, pad_mode="reflect")
    out = []
    for y in clips:
        logmel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, **mel_args), ref=1.0, amin=1e-10, top_db=TOP_DB)
        if share_stft:
            mfcc = librosa.feature.mfcc(S=logmel, n_mfcc=N_MFCC, norm="ortho")
        else:
            # What mfcc(y=...) does inside (its own STFT + mel spectrogram + dB); spelled out
            # because mfcc(y=...) cannot pass norm=None to the mel filterbank.
            mel_again = librosa.feature.melspectrogram(y=y, **mel_args)
            mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel_again, ref=1.0, amin=1e-10, top_db=TOP_DB), n_mfcc=N_MFCC, norm="ortho")
        out.append((logmel, mfcc))
    return out


class BothFeatures(torch.nn.Module):
    """Log-mel and MFCC from one STFT, with the parts of the project's front-end."""

    def __init__(self):
        super().__init__()
        self.front = FeatureExtractor(FeatureConfig(kind="mfcc", n_mels=N_MELS, n_mfcc=N_MFCC, top_db=TOP_DB, normalize="none"))

    def forward(self, waves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logmel = power_to_db(self.front.mel(waves), TOP_DB)  # [batch, 64, frames]
        mfcc = torch.matmul(logmel.transpose(-1, -2), self.front.dct).transpose(-1, -2)  # [batch, 40, frames]
        return logmel, mfcc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SER_DATA_DIR", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)

    rows = read_corpus("tess", Path(args.data_dir) / "tess")
    rows = [rows[int(i * len(rows) / args.clips)] for i in range(args.clips)]
    audio = load_or_decode([r.path for r in rows], SR, Path(tempfile.gettempdir()) / "ser_bench_cache")
    clips = np.stack([fit_length(audio.wave(i), int(2.5 * SR)) for i in range(len(rows))]).astype(np.float32)
    batches = torch.from_numpy(clips).split(args.batch)
    front = BothFeatures().to(device)

    def ours():
        with torch.inference_mode():
            outs = [front(b.to(device)) for b in batches]
            if device.type == "cuda":
                torch.cuda.synchronize()
        return outs

    # Same features? (also the warm-up of both)
    ref = librosa_features(clips[:8], share_stft=False)
    mine = ours()
    diff_mel = max(np.abs(ref[i][0] - mine[0][0][i].cpu().numpy()).max() for i in range(8))
    diff_mfcc = max(np.abs(ref[i][1] - mine[0][1][i].cpu().numpy()).max() for i in range(8))
    librosa_features(clips[:8], share_stft=True)

    variants = {"librosa": lambda: librosa_features(clips, False), "librosa_shared": lambda: librosa_features(clips, True), "ours": ours}
    if device.type == "cpu":
        def ours_one_thread():
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                ours()
            finally:
                torch.set_num_threads(threads)
        variants["ours_1thread"] = ours_one_thread
    times = {k: [] for k in variants}
    loads = []
    for _ in range(args.repeats):
        loads.append(load_avg())
        for name, fn in variants.items():
            times[name].append(timed(fn))
    ratio = {k: median([a / b for a, b in zip(times["librosa"], v, strict=True)]) for k, v in times.items()}
    ratio_shared = {k: median([a / b for a, b in zip(times["librosa_shared"], v, strict=True)]) for k, v in times.items()}
    n = len(clips)
    lines = [header(f"Feature extraction: log-mel 64 + MFCC 40 of {n} clips of 2.5 s (device: {device})")]
    lines.append("| pipeline | time for all clips | per clip | speed-up vs librosa (usual) | vs librosa sharing the STFT |")
    lines.append("|---|---|---|---|---|")
    names = {"librosa": "librosa, per clip: log-mel + MFCC with its own STFT, as mfcc(y=...) (usual)",
             "librosa_shared": "librosa, per clip: melspectrogram + mfcc(S=log-mel)",
             "ours": f"ours: batched torchaudio, batches of {args.batch}, {torch.get_num_threads()} threads, one STFT",
             "ours_1thread": f"ours: batched torchaudio, batches of {args.batch}, 1 thread"}
    for k, v in times.items():
        lines.append(f"| {names[k]} | {fmt_runs(v)} | {1000 * median(v) / n:.2f} ms | {ratio[k]:.1f}x | {ratio_shared[k]:.1f}x |")
    lines.append(
        f"\nLargest difference to librosa (first 8 clips): log-mel {diff_mel:.2e} dB, MFCC {diff_mfcc:.2e}. "
        f"Load average (1 min) at each repeat: {', '.join(loads)}; at the end {load_avg()}. Times: median of "
        f"{args.repeats} runs after a warm-up; speed-ups: median of the per-run ratios."
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
