"""A frozen encoder's utterance embedding: one vector per file, what a linear probe or a small
MLP reads (``features=encoder`` with ``model=mlp`` or ``model=svm``).

Per file: the encoder's hidden states (:func:`~ser_lightning.encoders.encoder.build_encoder`:
Whisper's 1 + ``encoder_layers`` states, or every layer of a wav2vec 2.0-family model), then
per layer the mean over all frames of the file, concatenated, plus the standard deviation
over frames of the last layer (``stats="mean+last_std"``, the probe of SUPERB-style
evaluations of Whisper: Whisper base gives 7 x 512 + 512 = 4,096 numbers) or of every layer
(``"mean+std"``, 7 x 1,024). A file longer than ``chunk_seconds`` is cut into equal pieces of
at most that length, each encoded alone (Whisper's positional table cut to the piece), and
the statistics are pooled over the frames of all pieces, so a 5-minute recording gets the
same kind of vector as a 3-s clip.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch

from ser_lightning.errors import AudioDecodeError, ConfigError

#: ``stats`` settings.
STATS = ("mean+last_std", "mean+std")
#: Shortest input, samples at 16 kHz (the encoders' 25 ms receptive field).
MIN_SAMPLES = 400


class EncoderEmbedding:
    """``[time]`` 16 kHz float wave -> ``[n_features]`` float32 utterance embedding.

    Args:
        name: encoder name (``whisper_base``, ``hf:...``, ``wavlm_base_plus``, ...).
        weights: its weights (a Hugging Face model directory, or a torchaudio weight file).
        sha256: the weight file's SHA-256 a checkpoint recorded (a different file warns for
            Hugging Face encoders, fails for torchaudio ones).
        window: Whisper's ``cut`` or ``pad30`` (:mod:`ser_lightning.encoders.hf`).
        stats: ``mean+last_std`` or ``mean+std`` (module docstring).
        chunk_seconds: longest piece encoded at once, seconds (at most 30 for Whisper).
        device: where the encoder runs.

    Raises:
        ConfigError: unknown ``stats``, ``chunk_seconds`` out of range, bad encoder settings.
        EncoderWeightsError: weights missing, unreadable or of another architecture.
    """

    kind = "encoder"
    level = "functionals"
    workers = 1  # torch uses the cores inside each forward; more threads would only wait on the lock

    def __init__(self, name: str = "whisper_base", weights: str | None = None, sha256: str | None = None, window: str = "cut",
                 stats: str = "mean+last_std", chunk_seconds: float = 8.0, device: str | torch.device = "cpu"):
        from ser_lightning.encoders.encoder import build_encoder

        if stats not in STATS:
            raise ConfigError(f"features.encoder.stats='{stats}' is unknown; allowed: {list(STATS)}")
        if not 0.5 <= float(chunk_seconds) <= 30:
            raise ConfigError(f"features.encoder.chunk_seconds={chunk_seconds}: between 0.5 and 30 seconds")
        self.encoder = build_encoder(name, window=window, weights=weights, sha256=sha256).to(device)
        self.name, self.window, self.stats, self.chunk_seconds = str(name), str(window), str(stats), float(chunk_seconds)
        self.device = torch.device(device)
        self.sample_rate = int(self.encoder.spec.sample_rate)
        layers, dim = self.encoder.num_layers, self.encoder.dim
        self.n_features = layers * dim + (dim if stats == "mean+last_std" else layers * dim)
        self._lock = threading.Lock()  # one forward at a time: the cache's threads share the module

    @property
    def sha256(self) -> str:
        return self.encoder.sha256

    @property
    def version(self) -> str:
        """What the cache key depends on beyond the file: encoder, weights, window, pooling."""
        return f"{self.name}:{self.sha256[:16]}:{self.window}:{self.stats}:{self.chunk_seconds:g}"

    @property
    def cache_name(self) -> str:
        """The cache folder of these embeddings (one per encoder; the key holds the rest)."""
        return f"encoder-{self.name.replace('/', '--').replace(':', '_')}"

    def record(self) -> dict:
        """What a checkpoint stores to rebuild this extractor (``features.encoder``)."""
        return {"name": self.name, "weights": str(self.encoder.weights_path), "sha256": self.sha256, "window": self.window,
                "stats": self.stats, "chunk_seconds": self.chunk_seconds}

    def names(self) -> list[str]:
        """Column names: ``L<layer>_mean_<i>`` and ``L<layer>_std_<i>``."""
        layers, dim = self.encoder.num_layers, self.encoder.dim
        out = [f"L{layer}_mean_{i}" for layer in range(layers) for i in range(dim)]
        std_layers = [layers - 1] if self.stats == "mean+last_std" else range(layers)
        return out + [f"L{layer}_std_{i}" for layer in std_layers for i in range(dim)]

    def pieces(self, n: int) -> list[tuple[int, int]]:
        """``(start, end)`` sample ranges: ``ceil(n / chunk)`` equal pieces covering ``[0, n)``."""
        chunk = int(self.chunk_seconds * self.sample_rate)
        k = max(1, math.ceil(n / chunk))
        bounds = np.linspace(0, n, k + 1).round().astype(int)
        return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))

    @torch.inference_mode()
    def __call__(self, wave: np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        """The embedding of one wave.

        Raises:
            AudioDecodeError: not 1-D, non-finite, shorter than 400 samples (25 ms), or a
                sample rate other than the encoder's.
        """
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            raise AudioDecodeError(f"the encoder takes {self.sample_rate} Hz audio, got {sample_rate} Hz")
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1 or wave.shape[0] < MIN_SAMPLES:
            raise AudioDecodeError(f"an encoder embedding needs a mono wave of at least {MIN_SAMPLES} samples (25 ms), "
                                   f"got shape {tuple(wave.shape)}")
        if not np.all(np.isfinite(wave)):
            raise AudioDecodeError("the wave holds NaN or infinite samples")
        total = s1 = s2 = None
        for start, end in self.pieces(len(wave)):
            piece = torch.from_numpy(np.array(wave[start:end]))[None].to(self.device)  # a copy: the wave may be a read-only memory map
            with self._lock:
                hidden = self.encoder(piece)[0].double()  # [layers, frames, dim]
            frames = hidden.shape[1]
            total = frames if total is None else total + frames
            s1 = hidden.sum(dim=1) if s1 is None else s1 + hidden.sum(dim=1)
            sq = hidden.pow(2).sum(dim=1)
            s2 = sq if s2 is None else s2 + sq
        mean = s1 / total
        std = (s2 / total - mean.pow(2)).clamp_min(0).sqrt()
        std = std[-1:] if self.stats == "mean+last_std" else std
        return torch.cat([mean.flatten(), std.flatten()]).float().cpu().numpy()


__all__ = ["STATS", "EncoderEmbedding"]
