"""Waveform augmentations (time shift, speed, pitch) and mixup: per-example randomness,
shapes, device, and training-only use in the DataModule."""

from types import SimpleNamespace

import pytest
import torch

from ser_lightning.transforms.augment import Mixup, PitchShift, SpeedPerturb, TARGET_AUGMENTS, TimeShift, WAVEFORM_AUGMENTS, build_chain
from ser_lightning.data.datamodule import SERDataModule

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SR = 16000


def tones(batch: int, freq: float = 440.0, seconds: float = 1.0, device: str = "cpu") -> torch.Tensor:
    t = torch.arange(int(seconds * SR), device=device) / SR
    return torch.sin(2 * torch.pi * freq * t).repeat(batch, 1)


def dominant_hz(waves: torch.Tensor) -> torch.Tensor:
    """``[batch]`` frequency (Hz) of the largest FFT peak of each example."""
    spec = torch.fft.rfft(waves * torch.hann_window(waves.shape[-1], device=waves.device)).abs()
    return spec.argmax(dim=-1).float() * SR / waves.shape[-1]


@pytest.mark.parametrize("device", DEVICES)
def test_time_shift_is_per_example_and_zero_filled(device):
    torch.manual_seed(0)
    waves = torch.randn(16, 8000, device=device)
    out = TimeShift(max_shift_seconds=0.1, sample_rate=SR, p=1.0)(waves)
    assert out.shape == waves.shape and out.device == waves.device
    shifts = set()
    for x, y in zip(waves, out, strict=True):  # recover each example's shift from the zero run
        lead = int((y != 0).float().argmax())
        trail = int((y.flip(0) != 0).float().argmax())
        if lead:
            torch.testing.assert_close(y[lead:], x[: len(x) - lead])
            shifts.add(lead)
        else:
            torch.testing.assert_close(y[: len(y) - trail], x[trail:])
            shifts.add(-trail)
    assert len(shifts) > 8 and max(abs(s) for s in shifts) <= 1600
    assert torch.equal(TimeShift(p=0.0)(waves), waves)


@pytest.mark.parametrize("device", DEVICES)
def test_speed_perturbation_changes_frequency_per_example(device):
    torch.manual_seed(0)
    waves = tones(24, 400.0, device=device)
    out = SpeedPerturb(factors=(0.9, 1.1), p=1.0)(waves)
    assert out.shape == waves.shape and out.device == waves.device
    hz = dominant_hz(out)
    # 400 Hz played at 0.9x / 1.1x speed -> 360 / 440 Hz; both occur in one batch.
    assert ((hz - 360).abs() < 8).any() and ((hz - 440).abs() < 8).any()
    assert (((hz - 360).abs() < 8) | ((hz - 440).abs() < 8)).all()
    # Sped-up examples are zero-padded at the end (1 s / 1.1 = 0.91 s of signal).
    fast = (hz - 440).abs() < 8
    assert out[fast, -1000:].abs().max() < 1e-3
    assert torch.equal(SpeedPerturb(p=0.0)(waves), waves)


@pytest.mark.parametrize("device", DEVICES)
def test_pitch_shift_keeps_length_and_moves_pitch(device):
    torch.manual_seed(0)
    waves = tones(12, 440.0, device=device)
    out = PitchShift(semitones=(-2.0, 2.0), p=1.0)(waves)
    assert out.shape == waves.shape and out.device == waves.device
    hz = dominant_hz(out)
    down, up = 440 * 2 ** (-2 / 12), 440 * 2 ** (2 / 12)  # 392 Hz, 494 Hz
    assert ((hz - down).abs() < 10).any() and ((hz - up).abs() < 10).any()
    assert (((hz - down).abs() < 10) | ((hz - up).abs() < 10)).all()
    # Duration kept: the tone still fills the end of the clip.
    assert (out[:, -4000:].pow(2).mean(dim=1) > 0.1).all()
    assert torch.equal(PitchShift(p=0.0)(waves), waves)


@pytest.mark.parametrize("device", DEVICES)
def test_mixup_is_per_example_with_soft_targets(device):
    torch.manual_seed(0)
    feats = torch.arange(32, device=device, dtype=torch.float).view(32, 1, 1).expand(32, 4, 10).contiguous()
    targets = torch.arange(32, device=device) % 4
    mixed, soft = Mixup(alpha=0.4, p=1.0)(feats, targets, 4)
    assert mixed.shape == feats.shape and soft.shape == (32, 4) and soft.device == feats.device
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(32, device=device))
    own = soft[torch.arange(32), targets]
    assert (own >= 0.5 - 1e-6).all() and own.unique().numel() > 8  # own label dominates; lam per example
    untouched, hard = Mixup(p=0.0)(feats, targets, 4)
    assert torch.equal(untouched, feats) and torch.equal(hard.argmax(dim=1), targets)


def test_build_chain_passes_sample_rate_and_rejects_bad_settings():
    chain = build_chain({"time_shift": {"p": 1.0, "max_shift_seconds": 0.5}, "speed": {"p": 0.5}}, WAVEFORM_AUGMENTS, sample_rate=8000)
    assert [type(m) for m in chain] == [TimeShift, SpeedPerturb]
    assert chain[0].max_shift == 4000
    assert [type(m) for m in build_chain({"mixup": {"p": 0.5}}, TARGET_AUGMENTS)] == [Mixup]
    with pytest.raises(ValueError, match="positive"):
        SpeedPerturb(factors=(0.0, 1.0))
    with pytest.raises(ValueError, match="alpha"):
        Mixup(alpha=0.0)


STRONG = {"noise": {"p": 1.0}, "gain": {"p": 1.0}, "time_shift": {"p": 1.0}, "speed": {"p": 1.0, "factors": [0.9, 1.1]},
          "pitch": {"p": 1.0}, "specaugment": {"p": 1.0}, "mixup": {"p": 1.0}}


def test_augmentation_only_while_training():
    dm = SERDataModule("tess", "unused", features={"kind": "logmel"}, augment=STRONG)
    dm.class_names = ["a", "b", "c"]
    waves, targets = torch.randn(4, 16000) * 0.1, torch.tensor([0, 1, 2, 0])
    clean = dm.features(waves)
    for trainer in (None, SimpleNamespace(training=False)):  # validation, test, predict
        dm.trainer = trainer
        feats, out_targets = dm.on_after_batch_transfer((waves, targets), 0)
        torch.testing.assert_close(feats, clean)
        assert torch.equal(out_targets, targets)
    dm.trainer = SimpleNamespace(training=True)
    feats, soft = dm.on_after_batch_transfer((waves, targets), 0)
    assert feats.shape == clean.shape and not torch.allclose(feats, clean)
    assert soft.shape == (4, 3)


def test_strong_config_builds_every_augmentation():
    from omegaconf import OmegaConf

    from ser_lightning.transforms.augment import SPECTROGRAM_AUGMENTS, SpecAugment
    from tests.conftest import REPO

    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "augment" / "strong.yaml"))
    waves = build_chain(cfg, WAVEFORM_AUGMENTS, sample_rate=16000)
    assert {type(m) for m in waves} == {SpeedPerturb, PitchShift, TimeShift} | {type(m) for m in waves if m.__class__.__name__ in ("AdditiveNoise", "RandomGain")}
    assert len(waves) == 5
    assert [type(m) for m in build_chain(cfg, SPECTROGRAM_AUGMENTS)] == [SpecAugment]
    assert [type(m) for m in build_chain(cfg, TARGET_AUGMENTS)] == [Mixup]
