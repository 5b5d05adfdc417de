"""``python -m ser_lightning.cli.download encoder=whisper_base|hf:<id>``: Hugging Face encoders
fetched through ``huggingface_hub`` from a hub emulated on 127.0.0.1 (tests/helpers/hf_hub.py),
never the internet."""

from __future__ import annotations

import hashlib
import io
import shutil
import socket
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
hf_constants = pytest.importorskip("huggingface_hub.constants")

from ser_lightning.cli.download import main as download_main  # noqa: E402
from tests.helpers.hf_hub import commit_of, hub_server  # noqa: E402

COMMAND = "python -m ser_lightning.cli.download encoder="
PYPI_HINT = "docs/ENCODERS.md, 'Without the Hugging Face hub'"


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory) -> Path:
    """A random tiny WhisperModel saved by transformers (config.json + model.safetensors)."""
    from tests.helpers.hf_encoders import tiny_whisper as make

    return make(tmp_path_factory.mktemp("tiny_whisper"))


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory) -> Path:
    """A random tiny Wav2Vec2Model with its preprocessor_config.json (do_normalize=true)."""
    from tests.helpers.hf_encoders import tiny_wav2vec2 as make

    return make(tmp_path_factory.mktemp("tiny_wav2vec2"), do_normalize=True)


@pytest.fixture
def hf_env(tmp_path, monkeypatch):
    """SER_ENCODERS and the Hugging Face cache under tmp_path; hub requests allowed (whatever
    HF_HUB_OFFLINE the caller's shell has), no proxy for 127.0.0.1."""
    from huggingface_hub.utils import _http

    monkeypatch.setenv("SER_ENCODERS", str(tmp_path / "encoders"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    _http.close_session()  # a new client reads NO_PROXY
    yield tmp_path
    _http.close_session()


def _bin(folder: Path) -> bytes:
    """The model's weights as a pytorch_model.bin (torch.save of the state dict)."""
    from safetensors.torch import load_file

    buf = io.BytesIO()
    torch.save(load_file(str(folder / "model.safetensors")), buf)
    return buf.getvalue()


def _repo_files(folder: Path) -> dict[str, bytes]:
    """The tiny model as its hub repository: plus the files an encoder does not need."""
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    files["tokenizer.json"] = b'{"version": "1.0"}'
    files["vocab.json"] = b'{"a": 0}'
    files["generation_config.json"] = b'{"decoder_start_token_id": 3}'
    files["README.md"] = b"# tiny\n"
    files["pytorch_model.bin"] = _bin(folder)  # with model.safetensors there, never fetched
    return files


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_fetches_only_the_needed_files_records_the_sha256_and_loads(tiny_whisper, tiny_wav2vec2, hf_env, capsys):
    from ser_lightning.encoders.hf import HFEncoder

    encoders = hf_env / "encoders"
    repo = _repo_files(tiny_whisper)
    bin_repo = {"config.json": (tiny_wav2vec2 / "config.json").read_bytes(), "pytorch_model.bin": _bin(tiny_wav2vec2),
                "preprocessor_config.json": (tiny_wav2vec2 / "preprocessor_config.json").read_bytes(),
                "vocab.json": b'{"a": 0}', "tokenizer_config.json": b"{}"}
    digest = hashlib.sha256(repo["model.safetensors"]).hexdigest()
    with hub_server() as hub:
        hub.repos["openai/whisper-base"] = repo
        hub.repos["tiny/wav2vec2-bin"] = bin_repo
        assert download_main(["encoder=whisper_base", f"mirror={hub.url}", "progress=false"]) == 0
        out = capsys.readouterr().out
        target = encoders / "whisper_base"
        assert {p.name for p in target.iterdir() if p.is_file()} == {"config.json", "model.safetensors", "model.safetensors.sha256"}
        for name in ("config.json", "model.safetensors"):
            assert (target / name).read_bytes() == repo[name]
        assert (target / "model.safetensors.sha256").read_text().split()[0] == digest
        assert str(target) in out and digest in out and "published checksum" in out
        fetched = {path.rsplit("/", 1)[-1] for method, path, *_ in hub.log if method == "GET" and "/resolve/" in path}
        assert fetched == {"config.json", "model.safetensors"}  # no tokenizer, no pytorch_model.bin
        assert all(auth is None for *_, auth, _ in hub.log)  # no token sent to a mirror
        assert not (hf_env / "hf_cache" / "models--openai--whisper-base").exists()  # nothing in the HF cache

        # present: no request at all
        requests = len(hub.log)
        assert download_main(["encoder=whisper_base", f"mirror={hub.url}"]) == 0
        assert "already present" in capsys.readouterr().out and len(hub.log) == requests

        # pytorch_model.bin when the repository has no safetensors, preprocessor_config.json when present
        assert download_main(["encoder=hf:tiny/wav2vec2-bin", f"mirror={hub.url}", "progress=false"]) == 0
        bin_dir = encoders / "tiny--wav2vec2-bin"
        assert {p.name for p in bin_dir.iterdir() if p.is_file()} == {
            "config.json", "pytorch_model.bin", "pytorch_model.bin.sha256", "preprocessor_config.json"}
        assert hashlib.sha256(bin_repo["pytorch_model.bin"]).hexdigest() in capsys.readouterr().out

    # what training loads: HFEncoder finds $SER_ENCODERS/whisper_base, with the tiny model's weights
    from safetensors.torch import load_file

    state = load_file(str(tiny_whisper / "model.safetensors"))
    enc = HFEncoder("whisper_base")
    assert enc.weights_path == target.resolve() and enc.sha256 == digest
    assert torch.equal(enc.model.conv1.weight, state["encoder.conv1.weight"])
    with torch.no_grad():
        hidden = enc(torch.randn(1, 16000))
    assert hidden.shape == (1, 3, 50, 64)
    w2v = HFEncoder("hf:tiny/wav2vec2-bin")  # from pytorch_model.bin, do_normalize from preprocessor_config.json
    assert w2v.weights_file.name == "pytorch_model.bin" and w2v.spec.normalize_waveform
    w2v_state = load_file(str(tiny_wav2vec2 / "model.safetensors"))
    key = next(k for k in w2v_state if k.endswith("encoder.layers.1.feed_forward.output_dense.weight"))
    assert torch.equal(w2v.model.encoder.layers[1].feed_forward.output_dense.weight, w2v_state[key])


def test_failed_transfer_is_one_line_and_a_rerun_completes(tiny_whisper, hf_env, capsys):
    repo = _repo_files(tiny_whisper)
    target = hf_env / "encoders" / "whisper_base"
    with hub_server() as hub:
        hub.repos["openai/whisper-base"] = repo
        hub.fail_get.add("model.safetensors")
        assert download_main(["encoder=whisper_base", f"mirror={hub.url}", "progress=false"]) == 1
        line = _one_error_line(capsys.readouterr().err)
        assert "failed" in line and "run the same command again" in line
        assert not (target / "model.safetensors").exists() and not (target / "model.safetensors.sha256").exists()
        hub.fail_get.clear()
        assert download_main(["encoder=whisper_base", f"mirror={hub.url}", "progress=false"]) == 0
        assert (target / "model.safetensors").read_bytes() == repo["model.safetensors"]
        assert (target / "model.safetensors.sha256").is_file()


def test_unreachable_hub_is_one_line_naming_the_three_places_and_the_command(hf_env, capsys, monkeypatch):
    home = hf_env / "encoders" / "whisper_base"
    assert download_main(["encoder=whisper_base", f"mirror=http://127.0.0.1:{_closed_port()}", "progress=false"]) == 1
    line = _one_error_line(capsys.readouterr().err)
    for part in ("cannot be reached", "model.encoder.weights=<dir>", str(home), "$SER_ENCODERS", "Hugging Face cache",
                 str(hf_env / "hf_cache"), COMMAND + "whisper_base", PYPI_HINT):
        assert part in line, part
    assert not home.exists()

    with hub_server() as hub:  # a repository the hub does not have: 404
        assert download_main(["encoder=hf:nobody/missing", f"mirror={hub.url}", "progress=false"]) == 1
        line = _one_error_line(capsys.readouterr().err)
        for part in ("has no model repository nobody/missing", "HTTP 404", "model.encoder.weights=<dir>",
                     str(hf_env / "encoders" / "nobody--missing"), "Hugging Face cache", COMMAND + "hf:nobody/missing"):
            assert part in line, part
        assert PYPI_HINT not in line  # only whisper_base can be built from PyPI packages

        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # a user's HF_HUB_OFFLINE=1: said, not bypassed
        hub.repos["openai/whisper-tiny"] = {"config.json": b"{}"}
        assert download_main(["encoder=whisper_tiny", f"mirror={hub.url}"]) == 1
        line = _one_error_line(capsys.readouterr().err)
        assert "HF_HUB_OFFLINE" in line and COMMAND + "whisper_tiny" in line
        assert [path for _, path, *_ in hub.log] == ["/api/models/nobody/missing"]  # no request in offline mode


def test_verify_and_already_present_need_no_network(tiny_whisper, hf_env, capsys):
    closed = f"mirror=http://127.0.0.1:{_closed_port()}"
    target = hf_env / "encoders" / "whisper_small"
    shutil.copytree(tiny_whisper, target)
    digest = hashlib.sha256((target / "model.safetensors").read_bytes()).hexdigest()

    assert download_main(["encoder=whisper_small", closed]) == 0  # present: the closed port is never tried
    out = capsys.readouterr().out
    assert "already present" in out and str(target) in out and digest in out
    assert download_main(["encoder=whisper_small", "verify=true"]) == 0
    assert "no record to compare with" in capsys.readouterr().out
    (target / "model.safetensors.sha256").write_text(f"{digest}  model.safetensors\n")
    assert download_main(["encoder=whisper_small", "verify=true"]) == 0
    assert f"verified {target / 'model.safetensors'}" in capsys.readouterr().out
    body = (target / "model.safetensors").read_bytes()
    (target / "model.safetensors").write_bytes(body[:-8] + b"01234567")
    assert download_main(["encoder=whisper_small", "verify=true"]) == 1
    assert "not " + digest in _one_error_line(capsys.readouterr().err)

    # verify=true with nothing there: the missing-weights error (three places, the command)
    assert download_main(["encoder=whisper_tiny", "verify=true"]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert str(hf_env / "encoders" / "whisper_tiny") in line and COMMAND + "whisper_tiny" in line

    # a snapshot in the Hugging Face cache counts as present; verify=true checks it against the blob's name
    files = {p.name: p.read_bytes() for p in tiny_whisper.iterdir() if p.is_file()}
    commit = commit_of(files)
    storage = hf_env / "hf_cache" / "models--openai--whisper-medium"
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(commit)
    snapshot = storage / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (storage / "blobs").mkdir()
    for name, data in files.items():
        blob = hashlib.sha256(data).hexdigest() if name.endswith(".safetensors") else hashlib.sha1(data).hexdigest()
        (storage / "blobs" / blob).write_bytes(data)
        (snapshot / name).symlink_to(Path("..", "..", "blobs", blob))
    assert download_main(["encoder=whisper_medium", closed]) == 0
    assert f"already present: {snapshot}" in capsys.readouterr().out
    assert download_main(["encoder=whisper_medium", "verify=true"]) == 0
    assert "the hub's SHA-256" in capsys.readouterr().out
    assert not (hf_env / "encoders" / "whisper_medium").exists()
