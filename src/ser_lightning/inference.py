"""Prediction from a checkpoint alone: rebuild the front-end and model, classify audio.

A checkpoint written by training holds the feature settings, class names, sample rate
and clip length in its hyper-parameters, so :meth:`Predictor.from_checkpoint` needs no
config. Checkpoints are loaded with ``torch.load(weights_only=True)``: no pickled code
from the file is executed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ser_lightning.data.audio import AudioDecodeError, fit_length, load_audio, to_mono_resampled
from ser_lightning.data.corpora import audio_extensions
from ser_lightning.features import FeatureExtractor
from ser_lightning.models import build_backbone
from ser_lightning.features import FeatureConfig


class CheckpointError(ValueError):
    """The file is not a ser-lightning checkpoint, or is corrupted."""


@dataclass
class Prediction:
    """The result for one input.

    Attributes:
        source: file path or ``"array[i]"``.
        label: predicted class name (``None`` on error).
        confidence: probability of ``label``.
        probabilities: class name -> probability (mean over the file's windows).
        error: why the input could not be predicted (``None`` on success).
    """

    source: str
    label: str | None = None
    confidence: float | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint safely (``weights_only=True``) and check it is one of ours.

    Raises:
        CheckpointError: missing, unreadable, corrupted or foreign checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupted/unsafe files
        raise CheckpointError(f"checkpoint {path} cannot be loaded safely ({type(exc).__name__}: {exc})") from exc
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    needed = {"backbone", "class_names", "features", "clip_seconds"}
    if not isinstance(hp, dict) or not needed.issubset(hp) or "state_dict" not in ckpt:
        raise CheckpointError(
            f"{path} is not a ser-lightning checkpoint (needs hyper_parameters {sorted(needed)} and a state_dict)"
        )
    return ckpt


class Predictor:
    """Classify emotions in audio with a trained model.

    Files longer than the clip length are cut into windows of ``clip_seconds`` with
    ``hop_seconds`` between starts (default: half a clip); the file's probabilities are
    the mean over its windows. Shorter files are centred and zero-padded, as in
    evaluation during training.

    Args:
        model: backbone mapping ``[batch, n_features, frames]`` to logits.
        features: the training run's feature front-end.
        class_names: class names in index order.
        clip_seconds: window length in seconds.
        device: where to run (``"cpu"``, ``"cuda"``...).
        hop_seconds: hop between windows of a long file in seconds.
    """

    def __init__(self, model: torch.nn.Module, features: FeatureExtractor, class_names: list[str], clip_seconds: float,
                 device: str | torch.device = "cpu", hop_seconds: float | None = None):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.features = features.to(self.device).eval()
        self.class_names = list(class_names)
        self.sample_rate = features.config.sample_rate
        self.clip_seconds = clip_seconds
        self.clip_samples = int(round(clip_seconds * self.sample_rate))
        self.hop_samples = int(round((hop_seconds or clip_seconds / 2) * self.sample_rate))

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None, **kwargs) -> "Predictor":
        """Rebuild the predictor from a training checkpoint.

        Raises:
            CheckpointError: see :func:`load_checkpoint`, or weights that do not fit.
        """
        ckpt = load_checkpoint(path)
        hp = ckpt["hyper_parameters"]
        feature_config = FeatureConfig.from_dict(hp["features"])
        backbone = dict(hp["backbone"])
        model = build_backbone(backbone.pop("name"), feature_config.n_features, len(hp["class_names"]), **backbone)
        state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not match the model described in it ({exc})") from exc
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(model, FeatureExtractor(feature_config), hp["class_names"], hp["clip_seconds"], device, **kwargs)

    def windows(self, wave: np.ndarray) -> np.ndarray:
        """Cut ``[time]`` samples into ``[n_windows, clip_samples]`` (covering the end)."""
        n = wave.shape[0]
        if n <= self.clip_samples:
            return fit_length(wave, self.clip_samples)[None, :]
        count = 1 + math.ceil((n - self.clip_samples) / self.hop_samples)
        starts = [min(i * self.hop_samples, n - self.clip_samples) for i in range(count)]
        return np.stack([wave[s:s + self.clip_samples] for s in starts])

    @torch.inference_mode()
    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """``[n, clip_samples]`` waveforms -> ``[n, n_classes]`` class probabilities."""
        waves = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(self.device)
        return torch.softmax(self.model(self.features(waves)), dim=-1).float().cpu().numpy()

    def _result(self, source: str, probs: np.ndarray) -> Prediction:
        k = int(np.argmax(probs))
        return Prediction(source, self.class_names[k], float(probs[k]),
                          {c: float(p) for c, p in zip(self.class_names, probs)})

    def predict(self, inputs, sample_rate: int | None = None, batch_size: int = 32) -> list[Prediction]:
        """Predict a list of files and/or arrays.

        Args:
            inputs: paths (``str``/``Path``) or ``[time]``/``[time, channels]`` NumPy arrays,
                or one of them alone.
            sample_rate: rate of the arrays in Hz (required when arrays are given).
            batch_size: windows per forward pass.

        Returns:
            One :class:`Prediction` per input, in order; undecodable inputs carry an
            ``error`` instead of a label.
        """
        if isinstance(inputs, (str, Path, np.ndarray)):
            inputs = [inputs]
        results: list[Prediction | None] = [None] * len(inputs)
        pending: list[tuple[int, str, np.ndarray]] = []
        for i, item in enumerate(inputs):
            source = str(item) if not isinstance(item, np.ndarray) else f"array[{i}]"
            try:
                if isinstance(item, np.ndarray):
                    if sample_rate is None:
                        raise AudioDecodeError(f"{source}: sample_rate is required for arrays")
                    wave = to_mono_resampled(item, sample_rate, self.sample_rate, source)
                else:
                    wave = load_audio(item, self.sample_rate)
            except AudioDecodeError as exc:
                results[i] = Prediction(source, error=str(exc))
                continue
            pending.append((i, source, self.windows(wave)))
        # Batch windows across files; average each file's window probabilities.
        all_windows = np.concatenate([w for _, _, w in pending]) if pending else np.zeros((0, self.clip_samples), np.float32)
        probs = np.concatenate([self.probabilities(all_windows[s:s + batch_size]) for s in range(0, len(all_windows), batch_size)]) if len(all_windows) else None
        start = 0
        for i, source, w in pending:
            results[i] = self._result(source, probs[start:start + len(w)].mean(axis=0))
            start += len(w)
        return results


def expand_inputs(spec: str | Path) -> list[Path]:
    """A file, a folder (searched recursively for audio files) or a glob -> file paths.

    Raises:
        FileNotFoundError: nothing matches.
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        exts = audio_extensions()
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in exts)
    elif any(ch in str(spec) for ch in "*?["):
        anchor = Path(path.anchor) if path.is_absolute() else Path(".")
        files = sorted(p for p in anchor.glob(str(path.relative_to(anchor)) if path.is_absolute() else str(spec)) if p.is_file())
    else:
        files = [path]  # a missing file becomes an error entry, not an exception
    if not files:
        raise FileNotFoundError(f"no audio files match input={spec}")
    return files
