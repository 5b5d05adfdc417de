"""Build, check and probe the released general model (src/ser_lightning/released/).

    python scripts/release.py build   [--set k=v ...]   # train, calibrate on held-out corpora, package, record
    python scripts/release.py check                     # rebuild in a temporary folder: same predictions?
    python scripts/release.py perturb [--draws 3]       # encoder weights moved within float16 rounding

``build`` (the one command that rebuilds the release, recorded in ``release.json``):

1. **Temperature on held-out corpora.** For each release corpus with 3 or more speakers,
   the recipe (``experiment=release``) is trained on the *other* release corpora and its
   logits on every file of the held-out one are kept; one temperature is fitted on all of
   them together (:func:`ser_lightning.evaluation.calibration.fit_temperature`, NLL of each
   file): the calibration of a model on a corpus it never heard, which is what a user is.
2. **The model.** The recipe on all release corpora (per-corpus speaker split: 15 % of each
   corpus's speakers validate, 15 % test), the checkpoint chosen on validation UAR.
3. **Packaging.** The head's checkpoint without optimiser state, machine paths or training
   data locations, with the held-out temperature, as ``<name>.ckpt``; ``release.json`` with
   the classes, licence, corpora and file counts, data fingerprint, seed, the encoder's
   name and weights' SHA-256, both temperatures, and the reference predictions of the
   fixed clips (``originals/``: the corpora's own WAV files, the decode path included).

``check`` trains step 2 again into a temporary folder and compares its predictions on the
fixed clips with the recorded ones (the tolerance is stated in docs/MODEL_CARD.md).
``perturb`` adds uniform noise within each encoder weight's float16 rounding interval
(half a float16 unit in the last place either side: what separates the float16-derived
copy of Whisper base used here from OpenAI's float32 original) and measures how far the
released model's probabilities on the fixed clips move.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RELEASE_DIR = REPO / "src" / "ser_lightning" / "released"
NAME = "ser-general-whisper-base-v1"
LICENCE = "CC BY-NC-SA 4.0"
#: Release corpora with 3 or more speakers: each is held out once for the temperature.
HELD_OUT = ("ravdess", "nemo", "savee", "ased")


def _compose(overrides: list[str], out: Path):
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=release", "logger=csv", "trainer=cpu", "callbacks.progress_bar.refresh_rate=0",
                                          *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


def _train(overrides: list[str], out: Path) -> Path:
    """Train the recipe into ``out``; the best checkpoint."""
    from ser_lightning.training.pipeline import train

    cfg = _compose(overrides, out)
    train(cfg)
    metrics = json.loads((out / "metrics.json").read_text())
    return out / metrics["best_checkpoint"]


def _held_out_logits(overrides: list[str], out: Path, corpus: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Train without ``corpus``; its files' logits (uncalibrated, training statistics) and targets."""
    from ser_lightning.baselines.functionals import prepare_functionals
    from ser_lightning.inference.functionals import FunctionalsPredictor

    fold = [*overrides, "data.split=corpus", f"data.test_corpus={corpus}"]
    best = _train(fold, out)
    data = prepare_functionals(_compose(fold, out / "scoring"))
    predictor = FunctionalsPredictor.from_checkpoint(best, calibration="none", extractor=data.extractor)
    test = data.parts["test"]
    known = [i for i, c in enumerate(np.asarray(data.class_names)[test.y]) if c in predictor.class_names]
    logits = predictor.logits(test.x[known])
    targets = np.array([predictor.class_names.index(data.class_names[test.y[i]]) for i in known])
    uar = _uar(logits.argmax(1), targets, len(predictor.class_names))
    return logits, targets, {"corpus": corpus, "files": len(known), "uar_all_classes": uar, "classes": predictor.class_names}


def _uar(pred: np.ndarray, targets: np.ndarray, k: int) -> float:
    recalls = [float((pred[targets == c] == c).mean()) for c in range(k) if (targets == c).any()]
    return float(np.mean(recalls))


def _fixed_clips() -> list[Path]:
    root = Path(os.environ.get("SER_DATA_DIR") or REPO / "data") / "originals"
    clips = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".wav")
    if not clips:
        raise SystemExit(f"no reference clips under {root} (set SER_DATA_DIR to the shared corpora)")
    return clips


def _reference(ckpt: Path, clips: list[Path], extractor=None) -> dict[str, list[float]]:
    from ser_lightning.inference.functionals import FunctionalsPredictor

    predictor = FunctionalsPredictor.from_checkpoint(ckpt, extractor=extractor, silence_dbfs=None)
    root = clips[0].parents[2]
    return {str(p.relative_to(root)): [round(float(pr.probabilities[c]), 6) for c in predictor.class_names]
            for p, pr in zip(clips, predictor.predict([str(p) for p in clips]), strict=True)}


def _package(best: Path, temperature: dict, dest: Path) -> dict:
    """The head's checkpoint without optimiser state or machine paths, with ``temperature``."""
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    hp = dict(ckpt["hyper_parameters"])
    validation_calibration = hp.get("calibration")
    hp["calibration"] = temperature
    features = json.loads(json.dumps(hp["features"]))
    features["encoder"]["weights"] = None  # found on the user's machine ($SER_ENCODERS, the Hugging Face cache)
    hp["features"] = features
    settings = dict(hp.get("data_settings") or {})
    settings.pop("root", None)
    hp["data_settings"] = settings
    hp["release"] = NAME
    torch.save({"hyper_parameters": hp, "state_dict": ckpt["state_dict"]}, dest)
    return validation_calibration or {}


def build(args) -> int:
    from ser_lightning.evaluation.calibration import fit_calibration

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    overrides = list(args.set or [])
    # 1. the temperature on held-out corpora
    pooled_logits, pooled_targets, folds = [], [], []
    for corpus in HELD_OUT:
        logits, targets, info = _held_out_logits(overrides, work / f"without-{corpus}", corpus)
        pooled_logits.append(logits)
        pooled_targets.append(targets)
        folds.append(info)
        print(f"held out {corpus}: {info['files']} files, UAR {100 * info['uar_all_classes']:.1f} % (all classes, T = 1)")
    if len({tuple(f["classes"]) for f in folds}) != 1:  # each class has another source corpus: one class order
        raise SystemExit(f"the held-out folds' models have different classes: {[f['classes'] for f in folds]}")
    temperature = fit_calibration(np.concatenate(pooled_logits), np.concatenate(pooled_targets), method="temperature",
                                  fitted_on="held-out corpora: " + ", ".join(HELD_OUT) + " (each scored by a model trained without it)")
    print(f"temperature {temperature['temperature']:.3f} (NLL {temperature['nll_before']:.3f} -> {temperature['nll_after']:.3f})")
    # 2. the model on every release corpus
    final = work / "final"
    best = _train(overrides, final)
    # 3. packaging and record
    RELEASE_DIR.mkdir(parents=True, exist_ok=True)
    dest = RELEASE_DIR / f"{NAME}.ckpt"
    validation_calibration = _package(best, temperature, dest)
    clips = _fixed_clips()
    metrics = json.loads((final / "metrics.json").read_text())
    hp = torch.load(dest, map_location="cpu", weights_only=True)["hyper_parameters"]
    cfg = _compose(overrides, final)
    record = {
        "name": NAME, "file": dest.name, "licence": LICENCE, "classes": hp["class_names"],
        "encoder": {"name": hp["features"]["encoder"]["name"], "sha256": hp["features"]["encoder"]["sha256"],
                    "window": hp["features"]["encoder"]["window"], "stats": hp["features"]["encoder"]["stats"]},
        "head": {"hidden": hp["hidden"], "standardize": hp["standardize"], "layers": (hp.get("layer_blocks") and "weighted") or "concat"},
        "training": {"corpora": list(cfg.data.reader_args.corpora), "calm": str(cfg.data.reader_args.calm), "seed": int(cfg.seed),
                     "files": {"train": metrics["n_train"], "val": metrics["n_val"], "test": metrics["n_test"]},
                     "split": metrics["split"], "split_fingerprint": metrics["split_fingerprint"],
                     "data_fingerprint": hp.get("data_settings", {}).get("fingerprint"),
                     "command": "python scripts/release.py build " + " ".join(f"--set {s}" for s in overrides),
                     "val_uar": metrics["val/uar"], "test_uar_own_speakers": metrics["test/uar"]},
        "calibration": {"held_out": temperature, "held_out_folds": folds, "validation_of_training_corpora": validation_calibration},
        "reference": {"clips": "SER_DATA_DIR/originals/*.wav (15 files as the corpora ship them)",
                      "probabilities": _reference(dest, clips)},
        "checkpoint_sha256": hashlib.sha256(dest.read_bytes()).hexdigest(),
        "checkpoint_bytes": dest.stat().st_size,
    }
    (RELEASE_DIR / "release.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"released {dest} ({dest.stat().st_size / 1e3:.0f} kB), record {RELEASE_DIR / 'release.json'}")
    return 0


def check(args) -> int:
    from ser_lightning.released import record, released_checkpoint

    rec = record()
    with tempfile.TemporaryDirectory() as tmp:
        best = _train(list(args.set or []), Path(tmp) / "final")
        rebuilt = Path(tmp) / "rebuilt.ckpt"
        _package(best, rec["calibration"]["held_out"], rebuilt)
        got = _reference(rebuilt, _fixed_clips())
    want = rec["reference"]["probabilities"]
    diff = max(abs(a - b) for k in want for a, b in zip(want[k], got[k], strict=True))
    same = sum(int(np.argmax(want[k]) == np.argmax(got[k])) for k in want)
    print(f"rebuilt vs {released_checkpoint().name}: largest probability difference {diff:.2e} over {len(want)} clips; "
          f"same label on {same} of {len(want)}")
    return 0 if diff <= args.tolerance else 1


def perturb(args) -> int:
    from ser_lightning.encoders.embedding import EncoderEmbedding
    from ser_lightning.released import record, released_checkpoint

    rec = record()
    want = rec["reference"]["probabilities"]
    clips = _fixed_clips()
    worst, flips = 0.0, 0
    for draw in range(args.draws):
        emb = EncoderEmbedding(rec["encoder"]["name"], window=rec["encoder"]["window"], stats=rec["encoder"]["stats"])
        gen = torch.Generator().manual_seed(draw)
        with torch.no_grad():
            for p in emb.encoder.parameters():
                half = torch.from_numpy(np.spacing(np.abs(p.detach().numpy()).astype(np.float16)).astype(np.float32)) / 2
                p.add_((torch.rand(p.shape, generator=gen) * 2 - 1) * half)
        got = _reference(released_checkpoint(), clips, extractor=emb)
        d = max(abs(a - b) for k in want for a, b in zip(want[k], got[k], strict=True))
        f = sum(int(np.argmax(want[k]) != np.argmax(got[k])) for k in want)
        worst, flips = max(worst, d), flips + f
        print(f"draw {draw}: largest probability change {d:.2e}, labels changed {f} of {len(want)}")
    print(f"over {args.draws} draws: largest change {worst:.2e}, {flips} label changes in {args.draws * len(want)} predictions")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--set", action="append", help="extra train.py overrides of experiment=release")
    b.add_argument("--work", default=str(REPO / "outputs" / "release"))
    c = sub.add_parser("check")
    c.add_argument("--set", action="append")
    c.add_argument("--tolerance", type=float, default=1e-3)
    p = sub.add_parser("perturb")
    p.add_argument("--draws", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "offline")
    return {"build": build, "check": check, "perturb": perturb}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
