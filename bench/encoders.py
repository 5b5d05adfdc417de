"""Pretrained speech encoders (model=ssl) on this machine: the frozen encoder's cost, and
what the embedding cache saves.

1. A base-size encoder with the architecture of WAVLM_BASE_PLUS (94.4 M parameters,
   12 layers, 768 dimensions) and random weights (the cost of a forward pass does not
   depend on the weights' values): milliseconds to embed one 3-s clip (batch 1, the
   per-window latency of predict.py and stream.py on the CPU) and the throughput of a
   batch of ``--batch`` 3-s clips, as seconds of compute per hour of audio. The path timed is
   the repository's: :class:`~ser_lightning.models.ssl.SSLClassifier` (encoder, every
   layer's statistics, head) with the cache off, in inference mode.
2. Training with the embedding cache on the tiny encoder of the tests (2 layers, 32
   dimensions, tests/helpers/encoders.py) on a TESS subset (every 4th file, 700
   recordings, random split): the wall time of the first pass (the cache filled with every
   scoring window of the training files before epoch 1, ``metrics.json: embedding_cache``,
   plus epoch 1) and of epochs 2 and 3 (cache read), validation excluded
   (``metrics.json: epoch_seconds``).

Medians of ``--repeats`` timed calls after one warm-up call.

Usage: python -m bench.encoders [--threads 2] [--cache-threads 1] [--batch 8] [--repeats 3] [--skip-base] [--skip-cache]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
from pathlib import Path

import torch

from bench.common import REPO, fmt_runs, header, load_avg, median, timed


def base_encoder(args, tmp: Path) -> list[str]:
    from ser_lightning.encoders.registry import build_architecture, encoder_spec
    from ser_lightning.models.ssl import SSLClassifier

    spec = encoder_spec("wavlm_base_plus")
    torch.manual_seed(0)
    weights = tmp / "wavlm_base_plus_random.pth"
    torch.save(build_architecture(spec).state_dict(), weights)
    model = SSLClassifier(1, 7, {"name": "wavlm_base_plus", "weights": str(weights)}).eval()
    lines = [f"- encoder: {spec.name} architecture, random weights, {spec.parameter_count() / 1e6:.1f} M parameters, "
             f"weight file {weights.stat().st_size / 1e6:.0f} MB"]
    for batch in (1, args.batch):
        x = torch.randn(batch, 1, 48000) * 0.1
        with torch.inference_mode():
            model(x)
            runs = [timed(lambda x=x: model(x)) for _ in range(args.repeats)]
        per_hour = median(runs) / (3.0 * batch) * 3600
        lines.append(f"- {args.threads} threads, batch {batch} x 3 s: {fmt_runs(runs)} per batch; {1000 * median(runs) / batch:.0f} ms per 3-s clip; "
                     f"{per_hour / 60:.1f} min of compute per hour of audio (real-time factor {median(runs) / (3.0 * batch):.3f}); "
                     f"load {load_avg()}")
    return lines


def cache_epochs(args, tmp: Path) -> list[str]:
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from ser_lightning.data.corpora import read_corpus
    from ser_lightning.training.pipeline import train
    from tests.helpers.encoders import tiny_overrides, tiny_weights

    data_dir = Path(os.environ.get("SER_DATA_DIR", REPO.parent / "shared" / "data"))
    rows = read_corpus("tess", data_dir / "tess")[::4]
    manifest = tmp / "tess_subset.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "speaker"])
        writer.writerows([r.path, r.label, r.speaker] for r in rows)
    weights = tiny_weights(tmp / "tiny.pth")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            "data=manifest", f"data.root={manifest}", "data.split=random", *tiny_overrides(weights, tmp / "emb"),
            "trainer=cpu", "trainer.max_epochs=3", "logger=none", "data.batch_size=32", "callbacks.progress_bar.refresh_rate=0"])
    with open_dict(cfg):
        cfg.paths.output_dir, cfg.paths.cache_dir = str(tmp / "run"), str(tmp / "waves")
    train(cfg)
    report = json.loads((tmp / "run" / "metrics.json").read_text())
    secs, fill = report["epoch_seconds"], report["embedding_cache"]
    first = fill["seconds"] + secs[0]
    return [f"- {torch.get_num_threads()} thread(s), tiny encoder, TESS subset ({report['n_train']} training files, 3-s windows, batch 32): cache fill before "
            f"epoch 1 {fill['seconds']:.2f} s ({fill['computed']} of {fill['windows']} windows computed); epoch seconds "
            f"{', '.join(f'{s:.2f}' for s in secs)}; first pass (fill + epoch 1) {first:.2f} s; epoch 2 / first pass = "
            f"{secs[1] / first:.1%}, epoch 3 / first pass = {secs[2] / first:.1%} (validation excluded; load {load_avg()})"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-threads", type=int, default=1, help="intra-op threads of the training run (part 2)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-base", action="store_true")
    parser.add_argument("--skip-cache", action="store_true")
    args = parser.parse_args()
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_base:
            torch.set_num_threads(args.threads)
            lines += base_encoder(args, Path(tmp))
        if not args.skip_cache:
            torch.set_num_threads(args.cache_threads)
            lines += cache_epochs(args, Path(tmp))
    print(header("Pretrained encoders (model=ssl)") + "\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
