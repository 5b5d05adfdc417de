"""Whisper's encoder on this machine: what a 3-s clip costs with the positional table cut to
the clip (``window=cut``) and with Whisper's own 30-s padding (``window=pad30``), and the
utterance embedding of ``features=encoder`` (encoder + statistics), for Whisper tiny and base.

The architectures are OpenAI's (``openai/whisper-tiny``: 4 x 384; ``openai/whisper-base``:
6 x 512); the weights are the real ones when ``$SER_ENCODERS/<name>`` holds them, else
random (a forward pass costs the same). Milliseconds per clip are medians of ``--repeats``
timed calls after one warm-up, batch 1 (predict.py's and stream.py's per-window latency);
the real-time factor is compute time / audio time.

Usage: python -m bench.whisper_encoder [--threads 1] [--repeats 5] [--device cpu] [--names whisper_tiny whisper_base]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from bench.common import fmt_runs, header, load_avg, median, timed

#: The encoder half of OpenAI's configurations (decoder kept minimal: it is never run).
ARCHITECTURES = {
    "whisper_tiny": dict(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536),
    "whisper_base": dict(d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048),
}


def model_dir(name: str, tmp: Path) -> tuple[Path, str]:
    """The real weights under $SER_ENCODERS, else a random model of the architecture."""
    from ser_lightning.encoders.hf import home_dir

    if (home_dir(name) / "config.json").is_file():
        return home_dir(name), "real weights"
    from transformers import WhisperConfig, WhisperModel

    torch.manual_seed(0)
    config = WhisperConfig(**ARCHITECTURES[name], decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64, num_mel_bins=80)
    folder = tmp / name
    WhisperModel(config).save_pretrained(folder)
    return folder, "random weights of the architecture"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--names", nargs="+", default=list(ARCHITECTURES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from ser_lightning.encoders.embedding import EncoderEmbedding
    from ser_lightning.encoders.hf import HFEncoder

    print(header(f"Whisper encoder, 3-s clip, batch 1, {args.threads} thread(s), {args.device}"))
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(48000)).astype(np.float32)
    x = torch.from_numpy(wave)[None].to(args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names:
            folder, weights = model_dir(name, Path(tmp))
            for window in ("cut", "pad30"):
                enc = HFEncoder(f"hf:{folder}", window=window).to(args.device)
                with torch.inference_mode():
                    enc(x)
                    runs = [timed(lambda enc=enc: (enc(x), sync())) for _ in range(args.repeats)]
                print(f"- {name} ({weights}), window={window}: {fmt_runs(runs)}; {1000 * median(runs):.0f} ms per 3-s clip, "
                      f"real-time factor {median(runs) / 3.0:.3f}; load {load_avg()}")
            emb = EncoderEmbedding(f"hf:{folder}", device=args.device)
            emb(wave)
            runs = [timed(lambda emb=emb: emb(wave)) for _ in range(args.repeats)]
            print(f"- {name}, features=encoder utterance embedding ({emb.n_features} numbers): {fmt_runs(runs)}; "
                  f"{1000 * median(runs):.0f} ms per 3-s clip; load {load_avg()}")


if __name__ == "__main__":
    main()
