"""Data exploration: PNG plots of a corpus, as earlier SER projects showed them.

    python -m ser_lightning.cli.explore data=ravdess [out=<folder>]

Hydra composes ``conf/explore.yaml`` (the ``data`` and ``features`` groups of training).
Writes into ``out`` (default ``outputs/explore/<corpus>``):

- ``class_counts.png``: files per emotion (bars split by speaker gender when known);
- ``durations.png``: histogram of file durations in seconds, per emotion overlaid;
- ``waveform_<emotion>.png`` and ``logmel_<emotion>.png``: one example file per emotion
  (the first of that emotion in file order): its waveform, and its log-mel spectrogram
  (dB) computed with the training front-end;
- ``summary.json``: counts per class, speaker and gender, duration statistics, skipped files.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np

from ser_lightning.data.corpora import Utterance
from ser_lightning.labels import sort_labels
from ser_lightning.plots import plt

log = logging.getLogger(__name__)


def plot_class_counts(rows: list[Utterance], path: Path, title: str) -> None:
    """Bar chart of files per emotion, stacked by gender (``unknown`` when not known)."""
    labels = sort_labels({r.label for r in rows})
    genders = sorted({r.gender or "unknown" for r in rows})
    counts = Counter((r.label, r.gender or "unknown") for r in rows)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(labels), 3.8))
    bottom = np.zeros(len(labels))
    for g in genders:
        values = np.array([counts[(c, g)] for c in labels], dtype=float)
        ax.bar(labels, values, bottom=bottom, label=g)
        bottom += values
    for x, total in enumerate(bottom):
        ax.text(x, total, str(int(total)), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("files")
    ax.set_title(title)
    if len(genders) > 1:
        ax.legend(fontsize=8)
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_durations(durations: dict[str, list[float]], path: Path, title: str) -> None:
    """Histogram of durations (seconds), one outlined histogram per emotion."""
    all_d = np.concatenate([np.asarray(v) for v in durations.values()])
    bins = np.linspace(0, max(all_d.max(), 1e-3), 40)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.hist(all_d, bins=bins, color="lightgray", label="all")
    for label, values in durations.items():
        ax.hist(values, bins=bins, histtype="step", label=label)
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("files")
    ax.set_title(f"{title}: median {np.median(all_d):.2f} s, max {all_d.max():.2f} s")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_waveform(wave: np.ndarray, sample_rate: int, path: Path, title: str) -> None:
    """Waveform ``[time]`` against time in seconds."""
    t = np.arange(len(wave)) / sample_rate
    fig, ax = plt.subplots(figsize=(8, 2.6))
    ax.plot(t, wave, linewidth=0.5)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    ax.set_xlim(0, max(t[-1], 1e-3) if len(t) else 1)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_logmel(feats: np.ndarray, hop_seconds: float, path: Path, title: str) -> None:
    """Log-mel spectrogram ``[n_mels, frames]`` (dB) with time in seconds."""
    fig, ax = plt.subplots(figsize=(8, 3.0))
    im = ax.imshow(feats, origin="lower", aspect="auto", cmap="magma",
                   extent=(0, feats.shape[1] * hop_seconds, 0, feats.shape[0]))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="dB")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def explore(data_cfg: dict, features_cfg: dict, out: str | Path) -> dict:
    """Write the exploration PNGs and ``summary.json`` of one corpus into ``out``.

    Args:
        data_cfg: a resolved ``conf/data`` group (corpus, root, gender, sample_rate,
            min_seconds, cache_dir).
        features_cfg: a resolved ``conf/features`` group; the spectrograms are log-mel
            with its window, hop and mel settings, without per-utterance normalisation,
            so the colour scale is in dB.

    Returns:
        The summary written to ``summary.json``.

    Raises:
        CorpusNotFoundError, UnknownLabelError: from the corpus reader.
    """
    import torch

    from ser_lightning.data.cache import load_or_decode
    from ser_lightning.data.corpora import read_corpus
    from ser_lightning.transforms.features import FeatureConfig, FeatureExtractor

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    corpus, sr = data_cfg["corpus"], int(data_cfg.get("sample_rate", 16000))
    rows = read_corpus(corpus, data_cfg["root"])
    if data_cfg.get("gender"):
        rows = [r for r in rows if r.gender == data_cfg["gender"]]
    audio = load_or_decode([r.path for r in rows], sr, data_cfg.get("cache_dir"), data_cfg.get("min_seconds", 0.0))
    good = [(i, r) for i, r in enumerate(rows) if r.path not in audio.errors]
    labels = sort_labels({r.label for _, r in good})
    durations = {c: [audio.seconds(i) for i, r in good if r.label == c] for c in labels}
    plot_class_counts([r for _, r in good], out / "class_counts.png", f"{corpus}: files per emotion")
    plot_durations(durations, out / "durations.png", corpus)
    fcfg = FeatureConfig.from_dict({**features_cfg, "kind": "logmel", "normalize": "none", "sample_rate": sr})
    front_end = FeatureExtractor(fcfg).eval()
    examples = {}
    for c in labels:
        i, row = next((i, r) for i, r in good if r.label == c)
        wave = np.asarray(audio.wave(i), dtype=np.float32)
        name = Path(row.path).name
        plot_waveform(wave, sr, out / f"waveform_{c}.png", f"{corpus} {c}: {name}")
        with torch.no_grad():
            feats = front_end(torch.from_numpy(wave)[None])[0].numpy()
        plot_logmel(feats, fcfg.hop_length / sr, out / f"logmel_{c}.png", f"{corpus} {c}: {name} (log-mel, dB)")
        examples[c] = row.path
    all_d = np.concatenate([np.asarray(v) for v in durations.values()])
    summary = {
        "corpus": corpus, "root": str(data_cfg["root"]), "files": len(rows), "usable": len(good),
        "classes": {c: len(durations[c]) for c in labels},
        "speakers": dict(sorted(Counter(r.speaker for _, r in good).items())),
        "genders": dict(Counter(r.gender or "unknown" for _, r in good)),
        "seconds": {"total": float(all_d.sum()), "min": float(all_d.min()), "median": float(np.median(all_d)),
                    "max": float(all_d.max())},
        "examples": examples, "skipped": dict(audio.errors),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary

