"""Recording-channel augmentations (random equaliser, synthetic reverberation, telephone
line): per-example randomness, identity at p=0, shapes / dtype / device, finite output,
the band limits and the reverberant tail they promise, argument checks, and the
``augment=channel`` config composing and building its chain."""

import pytest
import torch

from ser_lightning.errors import ConfigError
from ser_lightning.transforms.augment import (
    AdditiveNoise,
    RandomEqualizer,
    RandomGain,
    SyntheticReverb,
    TelephoneChannel,
    WAVEFORM_AUGMENTS,
    build_chain,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SR = 16000
CHANNEL = {"eq": RandomEqualizer, "reverb": SyntheticReverb, "telephone": TelephoneChannel}


def band_energy_db(waves: torch.Tensor, low_hz: float, high_hz: float) -> torch.Tensor:
    """``[batch]`` energy (dB) of each example in ``[low_hz, high_hz)``, from its FFT."""
    power = torch.fft.rfft(waves).abs().pow(2)
    freqs = torch.fft.rfftfreq(waves.shape[-1], 1 / SR).to(waves.device)
    band = (freqs >= low_hz) & (freqs < high_hz)
    return 10 * torch.log10(power[:, band].sum(dim=-1))


def white_noise(batch: int, seconds: float = 1.0, device: str = "cpu", scale: float = 0.1) -> torch.Tensor:
    return torch.randn(batch, int(seconds * SR), device=device) * scale


@pytest.mark.parametrize("name", sorted(CHANNEL))
@pytest.mark.parametrize("device", DEVICES)
def test_channel_augmentations_keep_shape_dtype_device_and_are_finite(name, device):
    torch.manual_seed(0)
    module = CHANNEL[name](sample_rate=SR, p=1.0)
    for dtype in (torch.float32, torch.float64):
        waves = white_noise(6, 0.5, device)[:, :7999].to(dtype)  # odd length: the 8-kHz round trip must restore it
        waves[0] = 0.0  # digital silence must not give NaN (normalisations divide by energy)
        waves[1] *= 50.0  # far beyond +-1, as after a large gain: no clipping, no overflow
        out = module(waves)
        assert out.shape == waves.shape and out.dtype == dtype and out.device == waves.device
        assert torch.isfinite(out).all()
        assert not torch.allclose(out[2:], waves[2:])
        assert out[1].abs().max() > 2.0  # not clipped to [-1, 1]


@pytest.mark.parametrize("name", sorted(CHANNEL))
def test_p_zero_is_the_identity_and_p_selects_examples(name):
    torch.manual_seed(0)
    waves = white_noise(64, 0.25)
    assert torch.equal(CHANNEL[name](sample_rate=SR, p=0.0)(waves), waves)
    out = CHANNEL[name](sample_rate=SR, p=0.5)(waves)
    untouched = (out == waves).all(dim=1)
    assert 10 < int(untouched.sum()) < 54  # about half the examples, each drawn on its own


@pytest.mark.parametrize("name", sorted(CHANNEL))
def test_every_example_gets_its_own_channel(name):
    """The same input in every row comes out different in every row."""
    torch.manual_seed(0)
    waves = white_noise(1, 0.5).repeat(8, 1)
    out = CHANNEL[name](sample_rate=SR, p=1.0)(waves)
    spectra = torch.stack([band_energy_db(out, lo, lo + 500) for lo in range(0, 8000, 500)], dim=1)  # [8, 16]
    distinct = {tuple(row) for row in spectra.round(decimals=1).tolist()}
    assert len(distinct) == 8


def test_equalizer_band_limits_each_example():
    torch.manual_seed(0)
    waves = white_noise(16)
    eq = RandomEqualizer(highpass_hz=(300.0, 400.0), lowpass_hz=(3000.0, 4000.0), num_peaks=(0, 0), sample_rate=SR, p=1.0)
    out = eq(waves)
    # Above the largest low-pass cutoff (4 kHz) and below the smallest high-pass one (300 Hz),
    # at least an octave away: > 12 dB less energy in every example (12 dB/octave slopes).
    assert (band_energy_db(out, 6000, 8000) - band_energy_db(waves, 6000, 8000) < -12).all()
    assert (band_energy_db(out, 0, 150) - band_energy_db(waves, 0, 150) < -12).all()
    # The pass band is kept (within 3 dB).
    assert (band_energy_db(out, 800, 2000) - band_energy_db(waves, 800, 2000)).abs().max() < 3


def test_equalizer_peaks_boost_or_cut_around_their_centre():
    torch.manual_seed(0)
    waves = white_noise(8)
    boost = RandomEqualizer(highpass_hz=None, lowpass_hz=None, num_peaks=(1, 1), peak_hz=(1000.0, 1000.0),
                            peak_gain_db=(12.0, 12.0), peak_q=(1.0, 1.0), sample_rate=SR, p=1.0)(waves)
    gain = band_energy_db(boost, 950, 1050) - band_energy_db(waves, 950, 1050)
    assert ((gain - 12).abs() < 1.5).all()
    assert (band_energy_db(boost, 5000, 8000) - band_energy_db(waves, 5000, 8000)).abs().max() < 1.0


def test_telephone_keeps_only_the_voice_band():
    torch.manual_seed(0)
    waves = white_noise(8)
    out = TelephoneChannel(sample_rate=SR, p=1.0)(waves)
    # White noise in, > 20 dB less energy above 4 kHz (the 8 kHz line) and below 150 Hz.
    assert (band_energy_db(out, 4000, 8000) - band_energy_db(waves, 4000, 8000) < -20).all()
    assert (band_energy_db(out, 0, 150) - band_energy_db(waves, 0, 150) < -20).all()
    assert (band_energy_db(out, 500, 3000) - band_energy_db(waves, 500, 3000)).abs().max() < 3
    # The 8-bit mu-law codec adds quantisation noise: the output is not just filtered
    # noise, and its scale is the input's (peak normalisation undone).
    assert 0.1 < float(out.abs().amax() / waves.abs().amax()) < 2.0


def test_reverb_adds_a_decaying_tail_and_keeps_length_and_loudness():
    torch.manual_seed(0)
    waves = torch.zeros(8, SR)
    waves[:, 4000:4160] = torch.randn(8, 160)  # a 10-ms click, then silence
    out = SyntheticReverb(rt60_seconds=(0.3, 0.6), drr_db=(0.0, 5.0), sample_rate=SR, p=1.0)(waves)
    assert out.shape == waves.shape
    after = out[:, 4160:4160 + 1600].pow(2).sum(dim=1)  # 100 ms after the click's end
    late = out[:, 4160 + 4800:4160 + 6400].pow(2).sum(dim=1)  # 300-400 ms after it
    assert (after > 1e-3 * waves.pow(2).sum(dim=1)).all()  # the input there is exactly 0
    assert (late < after).all()  # the tail decays
    assert out[:, :4000].abs().max() < 1e-5 * out.abs().max()  # causal: nothing before the click (FFT round-off)
    torch.testing.assert_close(out.pow(2).mean(dim=1), waves.pow(2).mean(dim=1))  # loudness kept


def test_reverb_rt60_sets_the_decay():
    torch.manual_seed(0)
    reverb = SyntheticReverb(rt60_seconds=(0.5, 0.5), predelay_seconds=(0.0, 0.0), sample_rate=SR)
    rir = reverb.impulse_responses(4, SR, torch.device("cpu"), torch.float32)
    assert (rir[:, 0] == 1).all()
    energy = rir[:, 1:].pow(2)
    # 60 dB over RT60 = 0.5 s: 12 dB between the windows at 0-0.05 s and 0.1-0.15 s.
    drop = 10 * torch.log10(energy[:, :800].sum(dim=1) / energy[:, 1600:2400].sum(dim=1))
    assert ((drop - 12).abs() < 3).all()


def test_arguments_are_checked():
    with pytest.raises(ConfigError, match="Nyquist"):
        RandomEqualizer(lowpass_hz=(3000.0, 7500.0), sample_rate=8000)
    with pytest.raises(ConfigError, match="below"):
        RandomEqualizer(highpass_hz=(50.0, 4000.0), lowpass_hz=(3000.0, 7000.0))
    with pytest.raises(ConfigError, match="num_peaks"):
        RandomEqualizer(num_peaks=(2, 1))
    with pytest.raises(ConfigError, match="p must be"):
        RandomEqualizer(p=1.5)
    with pytest.raises(ConfigError, match="rt60"):
        SyntheticReverb(rt60_seconds=(0.8, 0.1))
    with pytest.raises(ConfigError, match="predelay"):
        SyntheticReverb(predelay_seconds=(-0.1, 0.0))
    with pytest.raises(ConfigError, match="sample_rate >= 8000"):
        TelephoneChannel(sample_rate=4000)
    with pytest.raises(ConfigError, match="high_hz"):
        TelephoneChannel(high_hz=(3000.0, 4200.0))


def test_channel_config_composes_and_builds_the_chain_in_order():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from tests.conftest import REPO

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["augment=channel"])
    augment = OmegaConf.to_container(cfg.augment, resolve=True)
    chain = build_chain(augment, WAVEFORM_AUGMENTS, sample_rate=cfg.data.sample_rate)
    names = [type(m).__name__ for m in chain]
    assert names == ["RandomGain", "SpeedPerturb", "PitchShift", "TimeShift",
                     "RandomEqualizer", "SyntheticReverb", "TelephoneChannel", "AdditiveNoise"]
    assert isinstance(chain[0], RandomGain) and chain[0].gain_db == (-20.0, 10.0)
    assert isinstance(chain[-1], AdditiveNoise)  # noise last: not filtered by the channel
    torch.manual_seed(0)
    waves = white_noise(4, 0.5)
    out = chain(waves)
    assert out.shape == waves.shape and torch.isfinite(out).all()


def test_reverb_fft_size_is_the_next_2_3_5_smooth_length():
    from ser_lightning.transforms.augment import _fast_fft_length

    def smooth(m: int) -> bool:
        for prime in (2, 3, 5):
            while m % prime == 0:
                m //= prime
        return m == 1

    for n in [*range(1, 400), 52799, 65537]:
        m = _fast_fft_length(n)
        assert m >= n and smooth(m) and not any(smooth(k) for k in range(n, m))
