import pytest
import torch

from ser_lightning.transforms.augment import AdditiveNoise, RandomGain, SPECTROGRAM_AUGMENTS, SpecAugment, WAVEFORM_AUGMENTS, build_chain
from ser_lightning.transforms.features import FeatureConfig, FeatureExtractor


@pytest.mark.parametrize("kind,dim", [("logmel", 64), ("mfcc", 40)])
def test_feature_shapes_and_normalisation(kind, dim):
    fe = FeatureExtractor({"kind": kind})
    waves = torch.randn(3, 32000) * 0.1
    feats = fe(waves)
    assert feats.shape == (3, dim, 32000 // 160 + 1)
    assert fe.config.n_frames(32000) == feats.shape[-1]
    assert torch.isfinite(feats).all()
    assert feats.mean(dim=-1).abs().max() < 1e-3
    assert (feats.std(dim=-1) - 1).abs().max() < 1e-2


def test_features_do_not_depend_on_batch_neighbours():
    fe = FeatureExtractor({"kind": "logmel", "normalize": "none"})
    quiet = torch.randn(1, 16000) * 1e-3
    loud = torch.randn(1, 16000)
    alone = fe(quiet)
    together = fe(torch.cat([quiet, loud]))[:1]
    torch.testing.assert_close(alone, together, atol=1e-4, rtol=1e-4)


def test_mfcc_matches_torchaudio():
    import torchaudio

    waves = torch.randn(2, 16000) * 0.1
    ours = FeatureExtractor({"kind": "mfcc", "normalize": "none", "top_db": None})(waves)
    ref = torchaudio.transforms.MFCC(16000, n_mfcc=40, melkwargs={"n_fft": 400, "hop_length": 160, "n_mels": 64}, dct_type=2, norm="ortho", log_mels=False)
    ref.amplitude_to_DB.top_db = None
    torch.testing.assert_close(ours, ref(waves), atol=1e-3, rtol=1e-3)


def test_feature_config_rejects_unknown_kind():
    with pytest.raises(ValueError, match="allowed"):
        FeatureConfig.from_dict({"kind": "cqt"})
    with pytest.raises(ValueError, match="batch, time"):
        FeatureExtractor({"kind": "logmel"})(torch.randn(16000))


def test_noise_is_per_example_and_respects_snr():
    torch.manual_seed(0)
    waves = torch.sin(torch.linspace(0, 2000, 16000)).repeat(64, 1)
    out = AdditiveNoise(snr_db=(10.0, 30.0), p=1.0)(waves)
    noise = out - waves
    snr = 10 * torch.log10(waves.pow(2).mean(-1) / noise.pow(2).mean(-1))
    assert snr.min() > 9.0 and snr.max() < 31.0
    assert snr.std() > 2.0  # drawn per example, not once per batch
    assert torch.equal(AdditiveNoise(p=0.0)(waves), waves)


def test_gain_is_per_example():
    torch.manual_seed(0)
    waves = torch.ones(32, 100)
    out = RandomGain((-6.0, 6.0), p=1.0)(waves)
    gains_db = 20 * torch.log10(out[:, 0])
    assert gains_db.min() >= -6.0 - 1e-4 and gains_db.max() <= 6.0 + 1e-4
    assert len(torch.unique(out[:, 0])) == 32


def test_specaugment_masks_differ_per_example():
    torch.manual_seed(0)
    feats = torch.randn(16, 64, 200)
    out = SpecAugment(freq_mask=10, time_mask=30, p=1.0)(feats)
    assert out.shape == feats.shape
    changed = (out != feats)
    masked_frames = changed.all(dim=1).sum(dim=1)  # fully masked frames per example
    assert masked_frames.unique().numel() > 3
    assert torch.equal(SpecAugment(p=0.0)(feats), feats)


def test_build_chain_from_config():
    cfg = {"noise": {"p": 0.5, "snr_db": [5, 10]}, "gain": None, "specaugment": {"p": 0.0}}
    assert [type(m) for m in build_chain(cfg, WAVEFORM_AUGMENTS)] == [AdditiveNoise]
    assert len(build_chain(cfg, SPECTROGRAM_AUGMENTS)) == 0
    with pytest.raises(ValueError, match="allowed"):
        build_chain({"chorus": {"p": 1}}, WAVEFORM_AUGMENTS)  # "reverb" exists now
