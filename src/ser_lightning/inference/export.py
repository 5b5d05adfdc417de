"""Export a trained model, feature front-end included, to ONNX or TorchScript.

The exported graph is :class:`WaveformClassifier`: a waveform batch ``[batch, samples]``
(float32, mono, at the model's sample rate, amplitude in [-1, 1]) -> class probabilities
``[batch, n_classes]`` (softmax). Batch size and length are free (at least ``n_fft``
samples). Resampling, downmixing, windowing of long recordings and silence detection
stay outside, in :class:`ser_lightning.inference.predictor.Predictor`.

- ONNX: ``torch.onnx.export(..., dynamo=True)`` (the ``torch.export`` based exporter,
  which needs ``onnxscript``). The STFT is exported as a strided convolution with DFT
  kernels (:class:`ConvPowerSpectrogram`), equal to ``torch.stft`` to float rounding:
  ``torch.stft`` itself exports (ONNX ``STFT``, opset 17), but onnxruntime's CPU kernel
  for it is slow for 400-point frames (not a power of 2): 22 ms of CPU time per 3-s
  clip against 3.5 ms with the convolution (bench/predict_bench.py). Class names,
  sample rate and clip length are stored as metadata
  (``InferenceSession.get_modelmeta().custom_metadata_map``).
- TorchScript: ``torch.jit.trace`` (deprecated in favour of ``torch.export`` but still
  the format ``torch.jit.load`` / LibTorch read); the same metadata is in the archive's
  extra file ``ser_lightning.json``.

Each export is checked against the PyTorch model on two batch sizes and lengths before
it is kept (largest absolute probability difference <= ``atol``).
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ser_lightning.errors import ConfigError, ExportError
from ser_lightning.transforms.features import FeatureConfig, FeatureExtractor

EXPORT_FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
#: ONNX opset (the dynamo exporter's native one).
ONNX_OPSET = 18


class ConvPowerSpectrogram(nn.Module):
    """Power spectrogram as a strided ``conv1d`` with windowed DFT kernels.

    Equal (to float rounding) to the ``torchaudio.transforms.Spectrogram`` it replaces
    (centred frames with reflect padding, one-sided, power 2, not normalised), but made
    of ops every ONNX runtime runs fast: onnxruntime's CPU ``STFT`` kernel is slow for
    frame sizes that are not powers of 2 (400 here), 6x slower than this convolution.

    Args:
        spectrogram: the ``torchaudio.transforms.Spectrogram`` to replicate.

    Shapes: ``[batch, samples]`` -> ``[batch, n_fft // 2 + 1, samples // hop + 1]``.

    Raises:
        ValueError: settings other than the ones above.
    """

    def __init__(self, spectrogram: nn.Module):
        super().__init__()
        s = spectrogram
        if not (s.power == 2.0 and s.center and s.pad_mode == "reflect" and s.onesided and not s.normalized and s.pad == 0):
            raise ValueError("ConvPowerSpectrogram replicates centred, reflect-padded, one-sided power spectrograms only")
        self.n_fft, self.hop_length = s.n_fft, s.hop_length
        # torch.stft centres a window shorter than n_fft inside the frame.
        window = torch.zeros(s.n_fft, dtype=torch.float64)
        left = (s.n_fft - s.win_length) // 2
        window[left:left + s.win_length] = s.window.double()
        n = torch.arange(s.n_fft, dtype=torch.float64)
        k = torch.arange(s.n_fft // 2 + 1, dtype=torch.float64)[:, None]
        angle = 2 * torch.pi * k * n / s.n_fft  # [n_freqs, n_fft]
        kernels = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])  # real, imaginary parts
        self.register_buffer("kernels", kernels.float()[:, None, :], persistent=False)  # [2 n_freqs, 1, n_fft]
        self.n_freqs = s.n_fft // 2 + 1

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        half = self.n_fft // 2
        padded = nn.functional.pad(waves[:, None, :], (half, half), mode="reflect")
        parts = nn.functional.conv1d(padded, self.kernels, stride=self.hop_length)  # [batch, 2 n_freqs, frames]
        real, imag = parts[:, : self.n_freqs], parts[:, self.n_freqs:]
        return real * real + imag * imag


def onnx_friendly(features: FeatureExtractor) -> FeatureExtractor:
    """A copy of ``features`` whose STFT is :class:`ConvPowerSpectrogram`."""
    features = copy.deepcopy(features)
    features.mel.spectrogram = ConvPowerSpectrogram(features.mel.spectrogram)
    return features


class WaveformClassifier(nn.Module):
    """Feature front-end (+ fixed speaker statistics) + backbone + softmax in one module.

    Args:
        features: the training run's front-end (:class:`FeatureExtractor`).
        model: backbone, ``[batch, n_features, frames]`` -> logits.
        stats: for a speaker-normalised model (``features.normalize=speaker``), the
            ``(mean, std)`` (each ``[n_features]``) built into the graph: the training
            speakers' pooled statistics, as ``predict.py``'s default
            ``speaker_stats=training``; ``None`` for other models.

    Shapes: ``[batch, samples]`` float32 at ``features.config.sample_rate`` ->
    ``[batch, n_classes]`` probabilities (rows sum to 1).
    """

    def __init__(self, features: FeatureExtractor, model: nn.Module, stats: tuple[torch.Tensor, torch.Tensor] | None = None):
        super().__init__()
        self.features = features
        self.model = model
        self.normalize = stats is not None
        if stats is not None:
            self.register_buffer("mean", stats[0].detach().float().cpu()[:, None])
            self.register_buffer("std", stats[1].detach().float().cpu()[:, None])

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        feats = self.features(waveform)
        if self.normalize:
            feats = (feats - self.mean) / self.std
        return torch.softmax(self.model(feats), dim=-1)


@dataclass
class ExportResult:
    """What :func:`export_checkpoint` wrote.

    Attributes:
        path: the exported file.
        format: ``"onnx"`` or ``"torchscript"``.
        max_abs_diff: largest |exported - PyTorch| probability over the check inputs.
        metadata: class names, sample rate (Hz), clip length (s), input/output names.
    """

    path: Path
    format: str
    max_abs_diff: float
    metadata: dict


def check_waveforms(sample_rate: int, clip_seconds: float, seed: int = 0) -> list[np.ndarray]:
    """Two ``[batch, samples]`` float32 batches for export checks: 2 clips of the model's
    length and 3 of 0.7 of it; harmonic tones with noise at speech-like levels."""
    rng = np.random.default_rng(seed)
    out = []
    for batch, seconds in ((2, clip_seconds), (3, 0.7 * clip_seconds)):
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        f0 = rng.uniform(100, 300, size=(batch, 1))
        wave = sum(0.1 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 6)) + 0.01 * rng.standard_normal((batch, t.size))
        out.append(wave.astype(np.float32))
    return out


def _quiet_exporter_logs():
    # The ONNX exporter logs a warning for each optional torchvision op it cannot
    # register, and its graph passes log every rewrite; none of it concerns this model.
    for name in ("torch.onnx", "onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.WARNING if name != "torch.onnx" else logging.ERROR)


def export_onnx(module: WaveformClassifier, path: Path, metadata: dict, example: torch.Tensor) -> int | None:
    """Write ``module`` as ONNX with a dynamic batch axis and ``metadata``.

    The sample axis is dynamic where the backbone allows it; cnn1d's ``ceil_mode``
    max-pooling makes ``torch.export`` specialise it, and the graph then takes exactly
    ``example``'s length (the model's clip: what the scoring path feeds it).

    Returns:
        The fixed number of samples per row, or ``None`` when any length >= ``n_fft`` works.

    Raises:
        ExportError: the exporter (or its ``onnxscript`` dependency) is missing or fails.
    """
    try:
        import onnx  # noqa: F401  (checked here for a clear message)
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ExportError(f"ONNX export needs onnx and onnxscript: pip install 'ser-lightning[export]' ({exc})") from exc
    import onnx

    _quiet_exporter_logs()
    module = WaveformClassifier(onnx_friendly(module.features), module.model,
                                (module.mean[:, 0], module.std[:, 0]) if module.normalize else None).eval()
    n_fft = module.features.config.n_fft
    dims = {"waveform": {0: torch.export.Dim("batch", min=1), 1: torch.export.Dim.AUTO}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (example,), dynamo=True, dynamic_shapes=dims, input_names=["waveform"],
                                        output_names=["probabilities"], opset_version=ONNX_OPSET, verbose=False, external_data=False)
    except Exception as exc:  # the exporter raises many types; all mean "not exported"
        raise ExportError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
    proto = program.model_proto
    fixed = proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value or None
    if fixed is not None and fixed < n_fft:
        raise ExportError(f"the exported graph takes {fixed} samples per row, fewer than one STFT frame ({n_fft})")
    metadata = {**metadata, "samples": fixed if fixed is not None else f"any >= {n_fft}"}
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.checker.check_model(proto)
    onnx.save_model(proto, str(path))
    return fixed


def export_torchscript(module: WaveformClassifier, path: Path, metadata: dict, example: torch.Tensor) -> None:
    """Write ``module`` as a traced TorchScript archive with ``metadata`` in the extra
    file ``ser_lightning.json``.

    Raises:
        ExportError: tracing fails.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.trace's deprecation notice
            traced = torch.jit.trace(module, example, check_trace=False)
    except Exception as exc:
        raise ExportError(f"TorchScript export failed: {type(exc).__name__}: {exc}") from exc
    torch.jit.save(traced, str(path), _extra_files={"ser_lightning.json": json.dumps(metadata)})


def run_exported(path: str | Path, format: str, waveforms: np.ndarray) -> np.ndarray:
    """Run an exported model: ``[batch, samples]`` float32 -> ``[batch, n_classes]``.

    ONNX runs on onnxruntime's CPU provider; TorchScript through ``torch.jit.load``.
    """
    if format == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(["probabilities"], {"waveform": np.ascontiguousarray(waveforms, np.float32)})[0]
    loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        return loaded(torch.from_numpy(np.ascontiguousarray(waveforms, np.float32))).numpy()


def export_checkpoint(ckpt_path: str | Path, format: str = "onnx", output: str | Path | None = None,
                      atol: float = 1e-4) -> ExportResult:
    """Export the model of a training checkpoint, feature front-end included.

    Args:
        ckpt_path: checkpoint written by ``train.py`` (loaded with ``weights_only=True``).
        format: ``"onnx"`` or ``"torchscript"``.
        output: file to write (``None``: the checkpoint's path with ``.onnx`` / ``.pt``).
        atol: largest allowed |exported - PyTorch| probability on the check inputs.

    Returns:
        :class:`ExportResult`.

    Raises:
        ValueError: unknown format, or an output name with another format's suffix;
            a ``model=ssl`` checkpoint or a model on utterance functionals (their export is not supported).
        CheckpointError: see :func:`ser_lightning.models.checkpoint.load_checkpoint`.
        ExportError: the export failed or disagrees with the scoring path
            (:meth:`~ser_lightning.inference.predictor.Predictor.probabilities`, what ``predict.py``
            computes) by more than ``atol`` (the file is then removed).
    """
    from ser_lightning.inference.predictor import Predictor

    if format not in EXPORT_FORMATS:
        raise ConfigError(f"format={format} is unknown; allowed: {sorted(EXPORT_FORMATS)}")
    path = Path(output) if output else Path(ckpt_path).with_suffix(EXPORT_FORMATS[format])
    other = {s for f, s in EXPORT_FORMATS.items() if f != format}
    if path.suffix.lower() in other:
        raise ConfigError(f"output={path} has the suffix of another format than format={format}")
    from ser_lightning.inference.functionals import is_functionals_checkpoint
    from ser_lightning.models.checkpoint import load_checkpoint

    if is_functionals_checkpoint(ckpt_path):
        raise ConfigError(f"{ckpt_path}: export of a model on utterance functionals (model=svm or model=mlp: openSMILE "
                          f"functionals or a pretrained encoder's embedding, as the released model) is not supported: its "
                          f"features are computed outside the network; use predict.py or serve.py")
    hp = load_checkpoint(ckpt_path)["hyper_parameters"]
    if FeatureConfig.from_dict(hp.get("features") or {}).is_lld:
        raise ConfigError(f"{ckpt_path}: export of a model on openSMILE descriptors (features={hp['features'].get('kind')}) "
                          f"is not supported: openSMILE is not part of an ONNX/TorchScript graph; use predict.py")
    if hp["backbone"].get("name") == "ssl":
        raise ConfigError(f"{ckpt_path}: export of a pretrained-encoder model (model=ssl) is not supported: its graph "
                          f"was not built or checked against the scoring path; use predict.py (docs/ENCODERS.md)")
    predictor = Predictor.from_checkpoint(ckpt_path, device="cpu", speaker_stats="training")
    model = predictor.model
    if predictor.temperature != 1.0:  # calibrated: the graph's softmax sees logits / T, as predict.py does
        from ser_lightning.inference.calibration import TemperatureScaled

        model = TemperatureScaled(model, predictor.temperature)
    module = WaveformClassifier(predictor.features, model, predictor.training_stats if predictor.speaker_normalized else None).eval()
    metadata = {
        "class_names": predictor.class_names,
        "sample_rate": predictor.sample_rate,
        "clip_seconds": predictor.clip_seconds,
        "input": "waveform [batch, samples] float32, mono, at sample_rate, in [-1, 1]",
        "output": "probabilities [batch, n_classes] (softmax, class_names order)",
        "temperature": predictor.temperature,
        # what predict.py's speaker_stats would have to be to give the same probabilities
        "speaker_stats": "training (the training speakers' pooled statistics, built in)" if predictor.speaker_normalized else "none needed",
    }
    checks = check_waveforms(predictor.sample_rate, predictor.clip_seconds)
    example = torch.from_numpy(checks[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    fixed = (export_onnx if format == "onnx" else export_torchscript)(module, path, metadata, example)
    if fixed is not None:  # a graph of one clip length is checked on clips of that length
        checks = [w for w in checks if w.shape[1] == fixed]
        metadata["input"] = f"waveform [batch, {fixed}] float32 (one clip), mono, at sample_rate, in [-1, 1]"
    worst = 0.0
    for waves in checks:  # the reference is the scoring path itself, not the module just exported
        expected = predictor.probabilities(waves)
        worst = max(worst, float(np.abs(run_exported(path, format, waves) - expected).max()))
    if not worst <= atol:
        path.unlink(missing_ok=True)
        raise ExportError(f"the {format} export disagrees with PyTorch by {worst:.2e} > {atol:g}; removed {path}")
    return ExportResult(path, format, worst, metadata)
