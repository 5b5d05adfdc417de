import pytest
import torch

from ser_lightning.errors import ConfigError
from ser_lightning.models.backbones import BACKBONES, build_backbone
from ser_lightning.models.module import SERModule

#: Backbones over features [batch, n_features, frames]; ``ssl`` takes the waveform and a
#: weight file, and is tested with a tiny encoder in tests/test_encoders.py.
FEATURE_BACKBONES = sorted(set(BACKBONES) - {"ssl"})


@pytest.mark.parametrize("name", FEATURE_BACKBONES)
@pytest.mark.parametrize("n_features", [40, 64])
def test_backbone_shapes(name, n_features):
    net = build_backbone(name, n_features, 7)
    assert net(torch.randn(3, n_features, 251)).shape == (3, 7)
    assert net(torch.randn(2, n_features, 50)).shape == (2, 7)  # any length


@pytest.mark.parametrize("name", FEATURE_BACKBONES)
def test_one_step_lowers_the_loss(name):
    torch.manual_seed(0)
    module = SERModule({"name": name, "dropout": 0.0}, ["sad", "happy", "angry"], {"kind": "mfcc"}, 2.0,
                       optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.0})
    feats, targets = torch.randn(12, 40, 120), torch.arange(12) % 3
    module.train()  # batch statistics in BatchNorm both times; no dropout
    opt = torch.optim.SGD(module.parameters(), lr=0.005)
    opt.zero_grad()
    before = module.criterion(module(feats), targets)
    before.backward()
    opt.step()
    with torch.no_grad():
        after = module.criterion(module(feats), targets)
    assert after < before


def test_module_rejects_bad_settings():
    with pytest.raises(ValueError, match="allowed"):
        SERModule({"name": "transformer"}, ["a", "b"], {"kind": "logmel"}, 2.0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        SERModule({"name": "cnn2d"}, ["a", "b"], {"kind": "logmel"}, 2.0, optimizer={"name": "adam", "lr": -1})
    with pytest.raises(ValueError, match="scheduler"):
        SERModule({"name": "cnn2d"}, ["a", "b"], {"kind": "logmel"}, 2.0, scheduler={"name": "step"})


def test_soft_targets_train_and_score_against_the_larger_part():
    torch.manual_seed(0)
    module = SERModule({"name": "cnn2d"}, ["sad", "happy", "angry"], {"kind": "mfcc"}, 2.0)
    feats = torch.randn(4, 40, 60)
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.6, 0.4], [0.2, 0.0, 0.8], [1.0, 0.0, 0.0]])
    loss = module._step((feats, soft), module.train_confusion, "train")
    assert torch.isfinite(loss) and loss.requires_grad
    cm = module.train_confusion.compute()
    assert cm.sum() == 4  # scored once per example
    assert cm.sum(dim=1).tolist() == [2, 1, 1]  # rows: the larger part of each soft target (sad, happy, angry, sad)


def test_attentive_statistics_pooling_weights_frames():
    from ser_lightning.models.pooling import AttentiveStatsPool

    pool = AttentiveStatsPool(4, hidden=8)
    x = torch.randn(2, 4, 30)
    with torch.no_grad():  # equal scores for every frame: plain mean and standard deviation
        for p in pool.attention.parameters():
            p.zero_()
    out = pool(x)
    assert out.shape == (2, 8)
    assert torch.allclose(out[:, :4], x.mean(dim=2), atol=1e-5)
    assert torch.allclose(out[:, 4:], x.std(dim=2, unbiased=False), atol=1e-4)
    with torch.no_grad():  # a score that grows with channel 0 puts the weight on the frame where it peaks
        pool.attention[0].weight[0, 0, 0] = 0.05  # tanh stays unsaturated up to |x| of about 20
        pool.attention[2].weight[:, 0, 0] = 300.0  # every channel's score follows that hidden unit
    x[:, 0, 7] = 10.0
    assert torch.allclose(pool(x)[:, :4], x[:, :, 7], atol=1e-3)
    net = build_backbone("cnn1d", 40, 5, pooling="attention")
    assert net(torch.randn(3, 40, 120)).shape == (3, 5)
    with pytest.raises(ValueError, match="pooling"):
        build_backbone("cnn1d", 40, 5, pooling="median")


def test_ecapa_is_speechbrains_network():
    """The ecapa backbone's embedding is SpeechBrain's ECAPA_TDNN.forward on the same weights
    (its mask-free pooling changes nothing on unpadded clips), and the model is small."""
    torch.manual_seed(0)
    net = build_backbone("ecapa", 40, 7)
    for bn in [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d)]:  # trained-like statistics
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    net.eval()
    feats = torch.randn(3, 40, 120)
    with torch.no_grad():
        torch.testing.assert_close(net.embed(feats), net.ecapa(feats.transpose(1, 2)).squeeze(1), rtol=1e-5, atol=1e-5)
    assert 400_000 < sum(p.numel() for p in net.parameters()) < 600_000
    assert type(net.ecapa).__module__ == "speechbrain.lobes.models.ECAPA_TDNN"


def test_ecapa_without_speechbrain_names_the_extra(monkeypatch):
    import sys

    for name in [m for m in sys.modules if m == "speechbrain" or m.startswith("speechbrain.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "speechbrain", None)  # import speechbrain -> ImportError
    with pytest.raises(ConfigError, match=r"ser-lightning\[ecapa\]"):
        build_backbone("ecapa", 40, 7)
    # train.py's config check says it before any data preparation
    from omegaconf import OmegaConf

    from ser_lightning.training.config_validation import model_problems

    cfg = OmegaConf.create({"model": {"backbone": {"name": "ecapa"}, "optimizer": {"name": "adamw", "lr": 0.001}},
                            "features": {"kind": "mfcc"}})
    assert any("ser-lightning[ecapa]" in p for p in model_problems(cfg))
    monkeypatch.delitem(sys.modules, "speechbrain")
    assert not any("ecapa" in p for p in model_problems(cfg))


def test_field_backbones_reject_bad_settings():
    with pytest.raises(ConfigError, match="divisible by res2net_scale"):
        build_backbone("ecapa", 40, 7, channels=[64, 60, 64, 64, 192])
    with pytest.raises(ConfigError, match="same length"):
        build_backbone("ecapa", 40, 7, channels=[64, 64, 192])
    with pytest.raises(ConfigError, match="num_heads=5 must divide"):
        build_backbone("conformer", 40, 7, num_heads=5)
    with pytest.raises(ConfigError, match="pooling"):
        build_backbone("conformer", 40, 7, pooling="max")
    with pytest.raises(ConfigError, match="conv_norm"):
        build_backbone("conformer", 40, 7, conv_norm="layer")
    with pytest.raises(ConfigError, match="odd"):
        build_backbone("conformer", 40, 7, kernel_size=8)


def test_conformer_attends_across_the_clip():
    """Self-attention mixes time steps: changing the last frames changes the pooled output
    through every position, and the group-norm variant has no BatchNorm (nothing for adapt=bn)."""
    torch.manual_seed(0)
    net = build_backbone("conformer", 40, 5, pooling="mean").eval()
    x = torch.randn(2, 40, 200)
    y = x.clone()
    y[:, :, -8:] += 3.0
    with torch.no_grad():
        a, b = net.subsample(x), net.subsample(y)
        assert torch.equal(a[:, :, :40], b[:, :, :40])  # the front-end is local
        assert not torch.allclose(net(x), net(y))
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules())
    grouped = build_backbone("conformer", 40, 5, conv_norm="group")
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in grouped.modules())


def test_building_ecapa_leaves_torch_settings_alone():
    """SpeechBrain's import would turn on TF32 and turn off TorchScript profiling for the
    whole process; building the backbone keeps torch's settings (fresh interpreter)."""
    import subprocess
    import sys

    code = ("import torch; before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, "
            "torch._C._jit_set_profiling_executor(True)); torch._C._jit_set_profiling_executor(before[2]); "
            "from ser_lightning.models.backbones import build_backbone; build_backbone('ecapa', 40, 7); "
            "after = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, "
            "torch._C._jit_set_profiling_executor(True)); print(before == after)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True", out.stderr
