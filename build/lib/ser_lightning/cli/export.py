"""What export.py runs: a checkpoint -> ONNX or TorchScript with its front-end."""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from ser_lightning.cli.common import checkpoint_paths


def run_export(cfg: DictConfig) -> int:
    """Export ``cfg.ckpt_path`` as ``cfg.format``; print what was written. Returns the
    exit code: 0 on success, 1 when the export failed or disagrees with PyTorch, 2 on a
    usage error (bad checkpoint, unknown format)."""
    from ser_lightning.errors import ExportError, SERUserError
    from ser_lightning.inference.export import export_checkpoint

    if isinstance(checkpoint_paths(cfg.ckpt_path), list):
        print("error: export takes one checkpoint (ckpt_path=<file>), not a list (an ensemble)", file=sys.stderr)
        return 2
    try:
        result = export_checkpoint(cfg.ckpt_path, str(cfg.format), cfg.get("output"), atol=float(cfg.get("atol", 1e-4)))
    except SERUserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    meta = result.metadata
    print(f"wrote {result.path} ({result.format}); max |exported - PyTorch| probability on the check inputs: {result.max_abs_diff:.1e}")
    print(f"input:  waveform [batch, samples] float32, mono, {meta['sample_rate']} Hz (model clip: {meta['clip_seconds']} s)")
    print(f"output: probabilities [batch, {len(meta['class_names'])}] in the order {meta['class_names']}")
    return 0
