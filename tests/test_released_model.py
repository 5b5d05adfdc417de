"""The released general model shipped in the package (src/ser_lightning/released/): its record
and checkpoint agree, it carries no machine's paths and no -ND corpus, and, where the genuine
Whisper base encoder is installed, it still gives the recorded probabilities on the fixed clips
(the rebuild tolerance of docs/MODEL_CARD.md)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from ser_lightning.released import RELEASE_DIR, notice, record, released_checkpoint


def test_record_and_checkpoint_agree_and_carry_no_machine_paths():
    rec = record()
    ckpt_path = released_checkpoint()
    assert hashlib.sha256(ckpt_path.read_bytes()).hexdigest() == rec["checkpoint_sha256"]
    assert ckpt_path.stat().st_size == rec["checkpoint_bytes"] < 5 * 2**20  # the head only: the encoder is not shipped
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert set(ckpt) == {"hyper_parameters", "state_dict"} and hp["class_names"] == rec["classes"]
    assert hp["features"]["encoder"]["weights"] is None and "root" not in (hp.get("data_settings") or {})
    assert hp["features"]["encoder"]["sha256"] == rec["encoder"]["sha256"] and hp["release"] == rec["name"]
    assert hp["calibration"]["temperature"] == pytest.approx(rec["calibration"]["held_out"]["temperature"])
    # the -ND corpora (TESS, TurEV-DB) forbid adaptations: never in the release's training data
    assert not {"tess", "turev"} & set(rec["training"]["corpora"]) and "calm" not in rec["classes"]
    assert rec["licence"] == "CC BY-NC-SA 4.0" and "non-commercial" in notice() and "MIT" in notice()
    assert (RELEASE_DIR / rec["file"]) == ckpt_path


def test_released_model_gives_its_recorded_probabilities(originals):
    from ser_lightning.encoders.hf import home_dir
    from ser_lightning.inference.loading import load_predictor

    rec = record()
    if not (home_dir(rec["encoder"]["name"]) / "config.json").is_file():
        pytest.skip(f"{rec['encoder']['name']} is not installed at {home_dir(rec['encoder']['name'])}: "
                    f"python -m ser_lightning.cli.download encoder={rec['encoder']['name']}")
    predictor = load_predictor(released_checkpoint(), device="cpu", silence_dbfs=None)
    want = rec["reference"]["probabilities"]
    paths = [originals / k for k in want]
    got = predictor.predict([str(p) for p in paths])
    diff = max(float(np.abs(np.array([g.probabilities[c] for c in predictor.class_names]) - np.array(w)).max())
               for g, w in zip(got, want.values(), strict=True))
    assert diff < 1e-3, diff


def test_export_refuses_the_released_model_with_the_reason(tmp_path):
    from ser_lightning.errors import ConfigError
    from ser_lightning.inference.export import export_checkpoint

    with pytest.raises(ConfigError, match="utterance functionals.*predict.py"):
        export_checkpoint(released_checkpoint(), output=tmp_path / "m.onnx")
