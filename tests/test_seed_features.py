"""features=seed: shapes, finite values, and the meaning of its rows."""

import pytest
import torch

from ser_lightning.transforms.features import FeatureConfig, FeatureExtractor, chroma_filterbank

SEED = {"kind": "seed", "n_fft": 1024, "win_length": 1024, "hop_length": 256, "n_mels": 64, "n_mfcc": 40}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_seed_shapes_and_finite(device):
    fe = FeatureExtractor(SEED).to(device)
    waves = torch.randn(3, 24000, device=device) * 0.1
    waves[1] = 0.0  # digital silence must not give NaN or inf
    feats = fe(waves)
    assert fe.n_features == 1 + 12 + 40 + 1 + 64
    assert feats.shape == (3, fe.n_features, fe.config.n_frames(24000)) and feats.device.type == device
    assert torch.isfinite(feats).all()
    assert FeatureConfig.from_dict({**SEED, "n_mfcc": 20, "n_mels": 128}).n_features == 162


def test_seed_rows_measure_what_they_claim():
    fe = FeatureExtractor({**SEED, "normalize": "none"})
    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * torch.pi * 440 * t)[None]  # A4, amplitude 1
    feats = fe(tone)[0, :, 5:-5]  # away from the padded edges
    zcr, chroma, rms = feats[0], feats[1:13], feats[13 + 40]
    assert (zcr - 2 * 440 / 16000).abs().max() < 0.01  # two zero crossings per period
    assert (chroma.argmax(dim=0) == 9).all()  # pitch class A (C = 0)
    assert (chroma.amax(dim=0) - 1).abs().max() < 1e-5  # each frame scaled to its largest class
    assert (rms - 2 ** -0.5).abs().max() < 0.01  # RMS of a unit sine
    # The MFCC and log-mel rows are those of the mfcc / logmel front-ends on the same STFT.
    logmel = FeatureExtractor({**SEED, "kind": "logmel", "normalize": "none"})(tone)[0, :, 5:-5]
    torch.testing.assert_close(feats[14 + 40:], logmel)


def test_chroma_filterbank_rows_cover_each_bin_once():
    fb = chroma_filterbank(16000, 1024)
    assert fb.shape == (12, 513)
    used = fb.sum(dim=0)
    assert torch.allclose(used[used > 0], torch.ones_like(used[used > 0]))
    assert used[0] == 0  # DC carries no pitch
