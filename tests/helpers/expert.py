"""A tiny synthetic corpus and a runner for the openSMILE tests (test_expert_features.py,
test_lld_features.py, test_mlp_head.py): vowel-like voices whose classes differ in pitch and loudness."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

SR = 16000


def voice(seconds: float = 1.0, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A vowel-like harmonic signal with a little jitter and noise (openSMILE finds a pitch in it)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.02 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(f) / SR
    wave = sum(0.3 / k * np.sin(k * phase) for k in range(1, 8)) + 0.005 * rng.standard_normal(t.shape)
    return (0.5 * wave / np.abs(wave).max()).astype(np.float32)


def tiny_corpus(root: Path, test_labels_shuffled: bool = False) -> Path:
    """3 speakers x 3 classes x 6 files of 0.6 s, classes differing in pitch and loudness."""
    rows = []
    classes = {"neutral": (110.0, 0.2), "happy": (200.0, 0.6), "sad": (90.0, 0.1)}
    for s, spk in enumerate(["s1", "s2", "s3"]):
        for c, (label, (f0, gain)) in enumerate(classes.items()):
            for k in range(6):
                path = root / f"{spk}_{label}_{k}.wav"
                if not path.exists():
                    import soundfile as sf

                    sf.write(str(path), gain * voice(0.6, f0 * (1 + 0.05 * s) * (1 + 0.02 * k), seed=100 * s + 10 * c + k), SR)
                rows.append([str(path), label, spk])
    if test_labels_shuffled:  # the test speaker's labels rotated: the test part's truth changes, nothing else
        names = list(classes)
        rows = [[p, names[(names.index(lab) + 1) % 3] if spk == "s3" else lab, spk] for p, lab, spk in rows]
    manifest = root / ("manifest_shuffled.csv" if test_labels_shuffled else "manifest.csv")
    with manifest.open("w", newline="") as fh:
        csv.writer(fh).writerows([["path", "label", "speaker"], *rows])
    return manifest


def run_svm(tmp_path: Path, manifest: Path, out: str, *extra: str) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from ser_lightning.training.pipeline import train
    from tests.conftest import REPO

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["model=svm", "features=egemaps", "data=manifest", f"data.root={manifest}",
                                          "data.split=cross", "data.test_speakers=[s3]", "data.val_fraction=0.25",
                                          "model.C=[0.1,1.0]", "logger=none", *extra])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / out)
        cfg.paths.cache_dir = str(tmp_path / "waves")
        cfg.paths.feature_cache_dir = str(tmp_path / "feats")
    train(cfg)
    return json.loads((tmp_path / out / "metrics.json").read_text())


def confusion_on_test_part(predictor, run: Path, class_names: list[str]) -> tuple[list[list[int]], dict]:
    """The confusion matrix of ``predictor`` on the run's test part (``splits/test.csv``)
    and its predictions by path, checking that every file got a prediction whose
    probabilities sum to 1."""
    import csv

    import numpy as np

    with (run / "splits" / "test.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    predictions = predictor.predict([r["path"] for r in rows])
    cm = np.zeros((len(class_names), len(class_names)), int)
    for r, p in zip(rows, predictions, strict=True):
        assert p.error is None and abs(sum(p.probabilities.values()) - 1) < 1e-5
        cm[class_names.index(r["label"]), class_names.index(p.label)] += 1
    return cm.tolist(), {r["path"]: p for r, p in zip(rows, predictions, strict=True)}


def assert_fusion_is_member_mean(checkpoints: list, path: str) -> None:
    """The fused predictor of ``checkpoints`` gives ``path`` the mean of its members'
    class probabilities (late fusion through the ensemble path)."""
    import numpy as np

    from ser_lightning.inference.loading import load_predictor

    fused = load_predictor(checkpoints)
    alone = [load_predictor(c) for c in checkpoints]
    expected = np.mean([[p.predict([path])[0].probabilities[c] for c in fused.class_names] for p in alone], axis=0)
    got = fused.predict([path])[0].probabilities
    np.testing.assert_allclose([got[c] for c in fused.class_names], expected, atol=1e-6)
