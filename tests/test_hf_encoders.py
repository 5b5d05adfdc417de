"""Hugging Face speech encoders (encoders/hf.py, whisper_features.py, embedding.py) with tiny
random Whisper and wav2vec 2.0 models saved as model directories: Whisper's log-mel against
transformers' own feature extractor, the short-window encoder against transformers' encoder,
weight resolution and its errors, the utterance embedding and its cache, corpus
standardisation and input-set statistics. Nothing is downloaded."""

from __future__ import annotations

import hashlib
import json
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from ser_lightning.encoders.embedding import EncoderEmbedding  # noqa: E402
from ser_lightning.encoders.encoder import build_encoder  # noqa: E402
from ser_lightning.encoders.hf import HFEncoder, home_dir, resolve_model_dir  # noqa: E402
from ser_lightning.encoders.whisper import load_whisper_encoder  # noqa: E402
from ser_lightning.encoders.whisper_features import WhisperLogMel  # noqa: E402
from ser_lightning.errors import ConfigError, EncoderWeightsError  # noqa: E402
from tests.helpers.hf_encoders import tiny_wav2vec2, tiny_whisper  # noqa: E402


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    return tiny_whisper(tmp_path_factory.mktemp("hf") / "whisper")


@pytest.fixture(scope="module")
def wav2vec2_dir(tmp_path_factory):
    return tiny_wav2vec2(tmp_path_factory.mktemp("hf") / "wav2vec2", do_normalize=True)


def _speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(t.shape)).astype(np.float32)


def test_whisper_log_mel_equals_the_feature_extractor():
    from transformers import WhisperFeatureExtractor

    wave = _speech_like(3.0)
    ref = WhisperFeatureExtractor()(wave, sampling_rate=16000, return_tensors="pt").input_features  # padded to 30 s
    padded = WhisperLogMel()(torch.from_numpy(np.pad(wave, (0, 480000 - len(wave))))[None])
    assert padded.shape == ref.shape == (1, 80, 3000)
    assert (padded - ref).abs().max() < 1e-4
    # the window alone: every frame of the audio but the last equals the padded computation
    cut = WhisperLogMel()(torch.from_numpy(wave)[None])
    assert cut.shape == (1, 80, 300)
    assert (cut[..., :-1] - ref[..., :299]).abs().max() < 1e-4
    with pytest.raises(ValueError, match="at least 160 samples"):
        WhisperLogMel()(torch.zeros(1, 100))


def test_our_whisper_encoder_equals_transformers_encoder_on_30_s(whisper_dir):
    from transformers import WhisperModel

    reference = WhisperModel.from_pretrained(whisper_dir).encoder.eval()
    ours_module = load_whisper_encoder(whisper_dir, whisper_dir / "model.safetensors")
    assert set(ours_module.state_dict()) == set(reference.state_dict())  # transformers' names: the file loads as published
    mel = WhisperLogMel()(torch.from_numpy(_speech_like(30.0))[None])
    with torch.no_grad():
        out = reference(mel, output_hidden_states=True)
        ours = ours_module(mel)
    assert len(ours) == len(out.hidden_states) == 3  # convolution output + 2 blocks
    for a, b in zip(ours, out.hidden_states, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(ours[-1], out.last_hidden_state, atol=1e-5)  # the last state is after the final LayerNorm


def test_whisper_encoder_cut_and_pad30_windows(whisper_dir):
    from transformers import WhisperModel

    wave = torch.from_numpy(_speech_like(3.0))[None]
    cut, pad = HFEncoder(f"hf:{whisper_dir}"), HFEncoder(f"hf:{whisper_dir}", window="pad30")
    with torch.no_grad():
        a, b = cut(wave), pad(wave)
    assert a.shape == b.shape == (1, 3, 150, 64)  # [batch, 1 + layers, 20-ms positions, d_model]
    assert not torch.allclose(a[:, 1:], b[:, 1:])  # attention over 27 s of padding changes the states
    # pad30 is transformers' own encoder on Whisper's padded input, cut to the window's positions
    reference = WhisperModel.from_pretrained(whisper_dir).encoder.eval()
    mel = WhisperLogMel()(torch.nn.functional.pad(wave, (0, 480000 - wave.shape[1])))
    with torch.no_grad():
        states = reference(mel, output_hidden_states=True).hidden_states
    assert torch.allclose(b, torch.stack([h[:, :150] for h in states], dim=1), atol=1e-5)
    with pytest.raises(ValueError, match="at most 30 s"):
        cut(torch.zeros(1, 31 * 16000))
    # a window of any length: the same as transformers' encoder built for that many positions
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    config = WhisperConfig.from_pretrained(whisper_dir)
    config.max_source_positions = 150
    short = WhisperEncoder(config).eval()
    state = {k: v for k, v in reference.state_dict().items()}
    state["embed_positions.weight"] = state["embed_positions.weight"][:150]
    short.load_state_dict(state)
    with torch.no_grad():
        expected = torch.stack(short(WhisperLogMel()(wave), output_hidden_states=True).hidden_states, dim=1)
    assert torch.allclose(a, expected, atol=1e-5)
    with pytest.raises(ConfigError, match="window"):
        HFEncoder(f"hf:{whisper_dir}", window="full")


def test_wav2vec2_family_returns_every_hidden_state_as_transformers(wav2vec2_dir):
    from transformers import Wav2Vec2Model

    enc = build_encoder(f"hf:{wav2vec2_dir}")
    assert isinstance(enc, HFEncoder) and enc.spec.normalize_waveform and (enc.num_layers, enc.dim) == (3, 64)
    waves = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        ours = enc(waves)
        normed = (waves - waves.mean(1, keepdim=True)) / torch.sqrt(waves.var(1, keepdim=True, unbiased=False) + 1e-7)
        ref = Wav2Vec2Model.from_pretrained(wav2vec2_dir).eval()(normed, output_hidden_states=True).hidden_states
    assert ours.shape == (2, 3, 49, 64)
    assert torch.allclose(ours, torch.stack(ref, dim=1), atol=1e-5)
    assert enc.frozen_parameter_names() and not any(p.requires_grad for p in enc.parameters())
    tuned = build_encoder(f"hf:{wav2vec2_dir}", freeze=False, finetune_layers=1)
    assert {n.split(".")[3] for n, p in tuned.named_parameters() if p.requires_grad} == {"1"}  # model.encoder.layers.1


def test_weights_are_found_in_order_and_missing_or_wrong_ones_are_one_clear_error(whisper_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SER_ENCODERS", str(tmp_path / "encoders"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(EncoderWeightsError) as err:
        resolve_model_dir("whisper_base")
    msg = str(err.value)
    assert str(tmp_path / "encoders" / "whisper_base") in msg and "Hugging Face cache (openai/whisper-base)" in msg
    assert "python -m ser_lightning.cli.download encoder=whisper_base" in msg and "model.encoder.weights" in msg
    # weights=<dir> first, then $SER_ENCODERS/<name>
    assert resolve_model_dir("whisper_base", whisper_dir) == whisper_dir.resolve()
    home = tiny_whisper(home_dir("whisper_base"), seed=1)
    assert home == tmp_path / "encoders" / "whisper_base"
    enc = HFEncoder("whisper_base")
    assert enc.weights_path == home.resolve()
    assert enc.sha256 == hashlib.sha256((home / "model.safetensors").read_bytes()).hexdigest()
    # another file of the same architecture: a warning (float16 vs float32 copies), never silence
    with pytest.warns(UserWarning, match="not the .* this model was trained with"):
        HFEncoder("whisper_base", sha256="0" * 64)
    # a directory whose tensors do not fit its own config, and a damaged file: one error each
    wrong = tmp_path / "wrong"
    tiny_whisper(wrong, d_model=32)
    (wrong / "config.json").write_text((whisper_dir / "config.json").read_text())
    with pytest.raises(EncoderWeightsError, match="does not fit"):
        HFEncoder(f"hf:{wrong}")
    (wrong / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(EncoderWeightsError, match="corrupt"):
        HFEncoder(f"hf:{wrong}")
    with pytest.raises(EncoderWeightsError, match="not a Hugging Face model directory"):
        HFEncoder(f"hf:{tmp_path / 'nowhere'}")


def test_utterance_embedding_pools_frames_over_pieces(whisper_dir):
    emb = EncoderEmbedding(f"hf:{whisper_dir}", chunk_seconds=4)
    assert emb.n_features == 3 * 64 + 64 and len(emb.names()) == emb.n_features
    short = _speech_like(3.0)
    with torch.no_grad():
        hidden = emb.encoder(torch.from_numpy(short)[None])[0].double()
    expected = torch.cat([hidden.mean(1).flatten(), hidden[-1].std(0, unbiased=False)]).float().numpy()
    assert np.allclose(emb(short), expected, atol=1e-5)
    # 10 s in 3 pieces of 3.33 s: the statistics of all their frames together
    long = _speech_like(10.0, seed=1)
    pieces = emb.pieces(len(long))
    assert len(pieces) == 3 and pieces[0][0] == 0 and pieces[-1][1] == len(long)
    with torch.no_grad():
        frames = torch.cat([emb.encoder(torch.from_numpy(long[s:e])[None])[0] for s, e in pieces], dim=1).double()
    expected = torch.cat([frames.mean(1).flatten(), frames[-1].std(0, unbiased=False)]).float().numpy()
    assert np.allclose(emb(long), expected, atol=1e-4)
    full = EncoderEmbedding(f"hf:{whisper_dir}", stats="mean+std")
    assert full(short).shape == (3 * 128,)
    from ser_lightning.errors import AudioDecodeError

    with pytest.raises(AudioDecodeError, match="at least 400 samples"):
        emb(np.zeros(100, np.float32))
    with pytest.raises(ConfigError, match="stats"):
        EncoderEmbedding(f"hf:{whisper_dir}", stats="max")


def test_embedding_cache_reuses_files_and_misses_on_another_encoder(whisper_dir, tmp_path):
    import soundfile as sf

    from ser_lightning.data.cache import load_or_decode
    from ser_lightning.data.feature_cache import load_or_extract

    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"clip{i}.wav"))
        sf.write(paths[-1], _speech_like(1.0 + i, seed=i), 16000)
    audio = load_or_decode(paths, 16000, tmp_path / "waves")
    emb = EncoderEmbedding(f"hf:{whisper_dir}")
    first = load_or_extract(paths, audio, emb, "functionals", tmp_path / "feats")
    again = load_or_extract(paths, audio, emb, "functionals", tmp_path / "feats")
    assert (first.computed, again.hits, again.computed) == (3, 3, 0)
    assert np.array_equal(first.values, again.values) and first.values.shape == (3, 256)
    other = EncoderEmbedding(f"hf:{whisper_dir}", window="pad30")  # another window mode: other embeddings, a miss
    assert load_or_extract(paths, audio, other, "functionals", tmp_path / "feats").computed == 3


def test_input_set_statistics_need_a_minimum_count(whisper_dir, tmp_path):
    from ser_lightning.inference.functionals import MIN_INPUT_SET, FunctionalsPredictor
    from ser_lightning.models.mlp import MLPHead

    emb = EncoderEmbedding(f"hf:{whisper_dir}")
    head = MLPHead(emb.n_features, 2, [], 0.0, 0.0)
    stats = (torch.zeros(emb.n_features), torch.ones(emb.n_features))
    predictor = FunctionalsPredictor(head, "encoder", ["happy", "sad"], 16000, "corpus", stats, speaker_stats="inputs",
                                     extractor=emb, silence_dbfs=None)
    few = [(_speech_like(0.5, seed=i), 16000) for i in range(3)]
    with pytest.raises(ConfigError, match=f"at least {MIN_INPUT_SET} recordings"):
        predictor.predict(few)
    many = [(_speech_like(0.5, seed=i), 16000) for i in range(MIN_INPUT_SET)]
    preds = predictor.predict(many)
    assert all(p.error is None for p in preds)
    # the input set's own statistics, not the training ones: the logits are those of the z-scored embeddings
    x = np.stack([emb(w) for w, _ in many])
    z = (x - x.mean(0)) / np.where(x.std(0) > 1e-8, x.std(0), 1.0)
    with torch.no_grad():
        expected = head(torch.from_numpy(z.astype(np.float32))).numpy()
    assert np.allclose(np.concatenate([p.logits for p in preds]), expected, atol=1e-3)


def test_scoring_mode_inputset_takes_each_corpus_statistics(whisper_dir):
    from ser_lightning.evaluation.scoring import parse_stats_mode, score_utterances

    assert parse_stats_mode("inputset") == ("inputset", None)
    seen = []

    class Recorder(SimpleNamespace):
        def statistics(self, waves):
            waves = list(waves)
            seen.append(len(waves))
            return (torch.full((1,), float(len(waves))), torch.ones(1))

        def predict(self, inputs, batch_size=32, stats=None):
            from ser_lightning.inference.outputs import Prediction

            return [Prediction("x", "a", 1.0, {"a": 1.0, "b": 0.0}, logits=np.zeros((1, 2))) for _ in inputs]

    predictor = Recorder(speaker_normalized=True, sample_rate=16000, class_names=["a", "b"], temperature=1.0, allowed=None,
                         training_stats=None)
    corpora = ["c1"] * 25 + ["c2"] * 30
    part = score_utterances(predictor, [f"f{i}" for i in range(55)], [f"s{i % 5}" for i in range(55)], [0] * 55,
                            lambda i: np.zeros(16000, np.float32), "inputset", corpora=corpora)
    assert sorted(seen) == [25, 30] and len(part.paths) == 55  # one statistics per corpus, nothing left out
    # a corpus below the minimum is not scored (a warning names it); the others still are
    seen.clear()
    part = score_utterances(predictor, [f"f{i}" for i in range(30)], ["s"] * 30, [0] * 30, lambda i: np.zeros(16000, np.float32),
                            "inputset", corpora=["small"] * 5 + ["big"] * 25)
    assert seen == [25]


def test_ssl_classifier_takes_a_whisper_encoder_and_caches_its_windows(whisper_dir, tmp_path):
    from ser_lightning.models.ssl import SSLClassifier

    model = SSLClassifier(1, 4, encoder={"name": f"hf:{whisper_dir}", "cache": True, "cache_dir": str(tmp_path / "emb")}).eval()
    waves = torch.from_numpy(np.stack([_speech_like(1.0, seed=i) for i in range(3)]))[:, None]
    first = model(waves)
    assert first.shape == (3, 4) and model.cache.misses == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = model(waves)
    assert model.cache.hits == 3 and torch.allclose(first, again)
    record = model.encoder_record({"name": f"hf:{whisper_dir}"})
    assert record["weights"] == str(whisper_dir.resolve()) and len(record["sha256"]) == 64
    with pytest.raises(ConfigError, match="Whisper encoders only"):
        build_encoder("wavlm_base_plus", window="pad30")


def test_mlp_head_layer_weights_combine_an_embeddings_layers():
    from ser_lightning.models.mlp import MLPHead

    torch.manual_seed(0)
    blocks = {"layers": 3, "dim": 4, "std_layers": 1}
    head = MLPHead(16, 2, [], 0.0, 0.0, blocks)
    x = torch.randn(5, 16)
    # weights start equal: the layers' mean vectors are averaged, the last layer's deviations pass through
    combined = torch.cat([x[:, :12].reshape(5, 3, 4).mean(1), x[:, 12:]], dim=1)
    assert torch.allclose(head(x), head.layers(combined), atol=1e-6)
    with torch.no_grad():
        head.layer_weights.weights.copy_(torch.tensor([0.0, 0.0, 50.0]))  # all weight on the last layer
    assert torch.allclose(head(x), head.layers(torch.cat([x[:, 8:12], x[:, 12:]], dim=1)), atol=1e-5)
    with pytest.raises(ConfigError, match="do not describe"):
        MLPHead(20, 2, [], 0.0, 0.0, blocks)


def test_weight_hashes_are_remembered_across_processes_and_renewed_when_the_file_changes(tmp_path, monkeypatch):
    from ser_lightning.encoders import weights

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 1000)
    first = weights.file_sha256(f)
    assert first == hashlib.sha256(b"a" * 1000).hexdigest()
    assert json.loads(weights.hash_record().read_text())[str(f.resolve())][0] == first
    monkeypatch.setattr(weights, "_HASHES", {})  # a new process: the record answers
    monkeypatch.setattr(hashlib, "sha256", lambda *a: pytest.fail("hashed again"))
    assert weights.file_sha256(f) == first
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    f.write_bytes(b"b" * 1001)  # changed in place: another size, another hash
    assert weights.file_sha256(f) == hashlib.sha256(b"b" * 1001).hexdigest()


def test_a_predictors_own_memo_stays_bounded():
    from ser_lightning.inference.functionals import BoundedMemo

    memo = BoundedMemo(3)
    for k in "abcd":
        memo[k] = k
    assert list(memo) == ["b", "c", "d"]
    assert memo["b"] == "b" and list(memo) == ["c", "d", "b"]  # a hit is the most recent
    memo["e"] = "e"
    assert "c" not in memo and len(memo) == 3
