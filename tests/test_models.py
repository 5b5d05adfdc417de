import pytest
import torch

from ser_lightning.models.backbones import build_backbone
from ser_lightning.models.module import SERModule


@pytest.mark.parametrize("name", ["cnn1d", "cnn2d", "resnet2d"])
@pytest.mark.parametrize("n_features", [40, 64])
def test_backbone_shapes(name, n_features):
    net = build_backbone(name, n_features, 7)
    assert net(torch.randn(3, n_features, 251)).shape == (3, 7)
    assert net(torch.randn(2, n_features, 50)).shape == (2, 7)  # any length


@pytest.mark.parametrize("name", ["cnn1d", "cnn2d", "resnet2d"])
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
