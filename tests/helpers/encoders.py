"""Tiny randomly initialised speech encoders of the registered families, for fast tests."""

from __future__ import annotations

from pathlib import Path

import torch

#: A 2-layer, 32-dimensional architecture (model.encoder.config): ~40 k parameters, the
#: same families and code paths as the real bundles.
TINY = {
    "extractor_conv_layer_config": [[32, 10, 5], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 2, 2], [32, 2, 2]],
    "encoder_embed_dim": 32, "encoder_pos_conv_kernel": 16, "encoder_pos_conv_groups": 4, "encoder_num_layers": 2,
    "encoder_num_heads": 2, "encoder_ff_interm_features": 64,
}


def tiny_weights(path: Path, name: str = "wavlm_base_plus", seed: int = 0, config: dict | None = None) -> Path:
    """Save the state dict of a random tiny encoder of ``name``'s family to ``path``."""
    from ser_lightning.encoders.registry import build_architecture, encoder_spec

    torch.manual_seed(seed)
    model = build_architecture(encoder_spec(name, config or TINY))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def tiny_overrides(weights: Path, cache_dir: Path, name: str = "wavlm_base_plus") -> list[str]:
    """train.py overrides selecting the tiny encoder (``model=ssl``)."""
    conf = ",".join(f"{k}:{v}".replace(" ", "") for k, v in TINY.items())
    return ["model=ssl", f"model.encoder.name={name}", f"model.encoder.weights={weights}", f"model.encoder.config={{{conf}}}",
            f"model.encoder.cache_dir={cache_dir}"]


def tess_subset(root: Path, data_dir: Path, step: int = 8) -> Path:
    """Every ``step``-th TESS file (both speakers, 7 classes) as a ``data=manifest`` CSV in
    ``root``: the encoder end-to-end tests decode and encode seconds of audio, not the corpus."""
    import csv

    from ser_lightning.data.corpora import read_corpus

    manifest = root / "tess_subset.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "speaker"])
        writer.writerows([r.path, r.label, r.speaker] for r in read_corpus("tess", data_dir / "tess")[::step])
    return manifest
