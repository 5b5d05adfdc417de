"""Pretrained speech encoders (encoders/, models/ssl.py) with tiny random encoders of the
registered families: weight files (cache path, missing, corrupt, wrong shape), which
parameters train, the embedding cache, checkpoints without the frozen weights, and the
weight download through the corpora's download code against a loopback server."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from ser_lightning.cli.download import main as download_main
from ser_lightning.data.dataset import ClipDataset
from ser_lightning.data.streaming import WindowSlicer
from ser_lightning.encoders.encoder import SSLEncoder
from ser_lightning.encoders.registry import BUNDLES, encoder_spec
from ser_lightning.errors import ConfigError, EncoderWeightsError
from ser_lightning.models.ssl import SSLClassifier
from tests.helpers.encoders import TINY, tiny_weights
from tests.helpers.http import file_server


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home"


def test_registry_names_the_bundle_file_under_torch_home(torch_home):
    assert set(BUNDLES) == {"wav2vec2_base", "wav2vec2_large_lv60k", "wav2vec2_xlsr_300m", "hubert_base", "hubert_large",
                            "wavlm_base", "wavlm_base_plus", "wavlm_large"}
    spec = encoder_spec("wavlm_base_plus")
    assert spec.cache_path() == torch_home / "hub" / "checkpoints" / "wavlm_base_plus.pth"
    assert spec.url == "https://download.pytorch.org/torchaudio/models/wavlm_base_plus.pth"
    assert spec.family == "WavLM" and spec.num_layers == 12 and spec.embed_dim == 768
    assert 90e6 < spec.parameter_count() < 100e6  # WavLM Base+: 94.4 M parameters
    assert encoder_spec("hubert_large").normalize_waveform and encoder_spec("hubert_large").family == "Wav2Vec2"
    with pytest.raises(ConfigError, match="allowed"):
        encoder_spec("wavlm_huge")
    with pytest.raises(ConfigError, match="unknown keys"):
        encoder_spec("wavlm_base", {"layers": 2})


@pytest.mark.parametrize("name", ["wavlm_base_plus", "hubert_base", "wav2vec2_large_lv60k"])
def test_loads_from_the_torch_hub_cache_and_returns_every_layer(torch_home, name):
    spec = encoder_spec(name, TINY)
    tiny_weights(spec.cache_path(), name)
    enc = SSLEncoder(name, config=TINY)
    assert enc.weights_path == spec.cache_path().resolve()
    assert enc.sha256 == hashlib.sha256(spec.cache_path().read_bytes()).hexdigest()
    out = enc(torch.randn(3, 16000))
    assert out.shape == (3, 2, 49, 32)  # [batch, layers, 20-ms frames, dim]
    # the same weights as the file: the torchaudio model gives the same last layer
    ref = encoder_spec(name, TINY)
    from ser_lightning.encoders.registry import build_architecture

    model = build_architecture(ref).eval()
    model.load_state_dict(torch.load(spec.cache_path(), weights_only=True))
    x = torch.randn(2, 8000)
    xin = torch.nn.functional.layer_norm(x, x.shape[-1:]) if ref.normalize_waveform else x
    torch.testing.assert_close(enc(x)[:, -1], model.extract_features(xin)[0][-1])


def test_missing_weights_name_file_source_size_and_command(torch_home):
    with pytest.raises(EncoderWeightsError) as err:
        SSLEncoder("wavlm_base_plus")
    msg = str(err.value)
    for part in (str(torch_home / "hub" / "checkpoints" / "wavlm_base_plus.pth"), "https://download.pytorch.org/torchaudio/models/wavlm_base_plus.pth",
                 "about 378 MB", "python -m ser_lightning.cli.download encoder=wavlm_base_plus", "Nothing is downloaded"):
        assert part in msg, msg


def test_corrupt_empty_and_wrong_shape_files(tmp_path):
    good = tiny_weights(tmp_path / "good.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(EncoderWeightsError, match="corrupt or not a PyTorch state dict"):
        SSLEncoder(weights=str(corrupt), config=TINY)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(EncoderWeightsError, match="empty"):
        SSLEncoder(weights=str(empty), config=TINY)
    wide = tiny_weights(tmp_path / "wide.pth", config={**TINY, "encoder_embed_dim": 48, "encoder_ff_interm_features": 96})
    with pytest.raises(EncoderWeightsError, match="does not fit the wavlm_base_plus architecture"):
        SSLEncoder(weights=str(wide), config=TINY)
    other_family = tiny_weights(tmp_path / "hubert.pth", name="hubert_base")
    with pytest.raises(EncoderWeightsError, match="another encoder's file"):
        SSLEncoder("wavlm_base_plus", weights=str(other_family), config=TINY)
    with pytest.raises(EncoderWeightsError, match="not the file this model was trained with"):
        SSLEncoder(weights=str(good), config=TINY, sha256="0" * 64)


def _grads(model, x, y):
    model.train()
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_frozen_encoder_gets_no_gradient_and_fine_tuning_only_the_top_layers(tmp_path):
    w = tiny_weights(tmp_path / "w.pth")
    x, y = torch.randn(4, 1, 16000), torch.tensor([0, 1, 2, 0])
    frozen = SSLClassifier(1, 3, {"weights": str(w), "config": TINY})
    got = _grads(frozen, x, y)
    assert got and not any(n.startswith("encoder.") for n in got)
    assert {"layer_weights.weights", "head.2.weight"} <= got
    assert len(frozen.parameter_groups(1e-3)) == 1
    assert set(frozen.weights_from_file()) == {f"encoder.{n}" for n, _ in frozen.encoder.named_parameters()}
    tuned = SSLClassifier(1, 3, {"weights": str(w), "config": TINY, "freeze": False, "finetune_layers": 1, "lr": 1e-5})
    got = _grads(tuned, x, y)
    enc = {n for n in got if n.startswith("encoder.")}
    assert enc and all(n.startswith("encoder.model.encoder.transformer.layers.1.") for n in enc)
    assert not tuned.encoder.model.encoder.transformer.layers[0].training  # frozen part: no dropout
    groups = tuned.parameter_groups(1e-3)
    assert [g["lr"] for g in groups] == [1e-3, 1e-5]
    assert sum(p.numel() for p in groups[1]["params"]) == sum(
        p.numel() for p in tuned.encoder.model.encoder.transformer.layers[1].parameters())
    with pytest.raises(ConfigError, match="finetune_layers=3"):
        SSLClassifier(1, 3, {"weights": str(w), "config": TINY, "freeze": False, "finetune_layers": 3})
    ckpt = SSLClassifier(1, 3, {"weights": str(w), "config": TINY, "freeze": False, "finetune_layers": 1,
                                "gradient_checkpointing": True})
    ckpt.load_state_dict(tuned.state_dict())
    assert _grads(ckpt, x, y) == got  # the same gradients, recomputed in the backward pass


@pytest.mark.parametrize("pooling", ["stats", "attentive"])
def test_embedding_cache_reuse_and_invalidation(tmp_path, pooling, monkeypatch):
    w0, w1 = tiny_weights(tmp_path / "w0.pth", seed=0), tiny_weights(tmp_path / "w1.pth", seed=1)
    settings = {"weights": str(w0), "config": TINY, "cache": True, "cache_dir": str(tmp_path / "emb")}
    model = SSLClassifier(1, 3, settings, pooling=pooling).eval()
    plain = SSLClassifier(1, 3, {**settings, "cache": False}, pooling=pooling).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(3, 1, 24000)
    with torch.no_grad():
        first = model(x)
        assert (model.cache.hits, model.cache.misses) == (0, 3)
        files = sorted(model.cache.folder.rglob("*.npy"))
        assert len(files) == 3 and np.load(files[0]).dtype == np.float16
        shape = (2, 64) if pooling == "stats" else (2, 74, 32)
        assert np.load(files[0]).shape == shape
        monkeypatch.setattr(model.encoder, "forward", lambda *_: pytest.fail("encoder ran on a cached window"))
        second = model(x)
        assert (model.cache.hits, model.cache.misses) == (3, 3)
        torch.testing.assert_close(first, second)
        torch.testing.assert_close(first, plain(x))  # cached or not, the same float16 representation
        monkeypatch.undo()
        x2 = x.clone()
        x2[0, 0, 100] += 1e-3  # one changed sample: a miss
        model(x2)
        assert model.cache.misses == 4
        other = SSLClassifier(1, 3, {**settings, "weights": str(w1)}, pooling=pooling).eval()
        other(x)  # another weight file: its own folder, all misses
        assert other.cache.folder != model.cache.folder and other.cache.misses == 3
    fine = SSLClassifier(1, 3, {**settings, "freeze": False, "finetune_layers": 1}, pooling=pooling)
    assert fine.cache is None  # a trained encoder is never cached


def test_windows_crop_draws_only_scoring_windows():
    from ser_lightning.data.cache import DecodedAudio

    lengths = [16000 * 7 + 123, 30000, 48000, 20000]
    samples = np.concatenate([np.arange(n, dtype=np.float32) + 1 for n in lengths])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    audio = DecodedAudio.__new__(DecodedAudio)
    audio.samples, audio.offsets = samples, offsets
    ds = ClipDataset(audio, list(range(4)), [0, 1, 0, 1], 48000, train=True, crop="windows")
    torch.manual_seed(0)
    seen = [set() for _ in lengths]
    for _ in range(40):
        waves, _ = ds.__getitems__([0, 1, 2, 3])
        for i, w in enumerate(waves.numpy()):
            seen[i].add(w.tobytes())
    for i, n in enumerate(lengths):
        slicer = WindowSlicer(48000, 24000)
        wave = np.arange(n, dtype=np.float32) + 1
        expected = {w.samples.tobytes() for w in (*slicer.push(wave), *slicer.finish())}
        assert seen[i] == expected, i  # every scoring window drawn, nothing else


def test_download_encoder_resumes_records_and_verifies(torch_home, tmp_path, capsys):
    body = tiny_weights(tmp_path / "src.pth").read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    with file_server() as srv:
        srv.files["/wavlm_base_plus.pth"] = body
        srv.cut_once.add("/wavlm_base_plus.pth")
        assert download_main(["encoder=wavlm_base_plus", f"mirror={srv.url}", "progress=false"]) == 0
        ranges = [r for p, r in srv.log if p == "/wavlm_base_plus.pth"]
        assert ranges[0] is None and ranges[-1] and ranges[-1].startswith("bytes=")  # resumed, not restarted
        target = torch_home / "hub" / "checkpoints" / "wavlm_base_plus.pth"
        assert target.read_bytes() == body
        out = capsys.readouterr().out
        assert digest in out and (target.parent / "wavlm_base_plus.pth.sha256").read_text().split()[0] == digest
        assert download_main(["encoder=wavlm_base_plus", f"mirror={srv.url}"]) == 0  # already there: no request
        assert "already in the cache" in capsys.readouterr().out and len(srv.log) == len(ranges)
        assert download_main(["encoder=wavlm_base_plus", "verify=true"]) == 0
        target.write_bytes(body[:-10] + b"0123456789")
        assert download_main(["encoder=wavlm_base_plus", "verify=true"]) == 1
        assert "not the recorded" in capsys.readouterr().err
        target.unlink()
        assert download_main(["encoder=hubert_base", f"mirror={srv.url}", "progress=false"]) == 1  # 404
        err = capsys.readouterr().err
        assert "HTTP 404" in err and "Traceback" not in err
        assert download_main(["encoder=nope"]) == 1 and "allowed" in capsys.readouterr().err
    # the downloaded file is what model=ssl loads by default
    tiny_target = torch_home / "hub" / "checkpoints" / "wavlm_base_plus.pth"
    tiny_target.write_bytes(body)
    assert SSLEncoder("wavlm_base_plus", config=TINY).sha256 == digest
