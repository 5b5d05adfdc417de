"""python -m ser_lightning.cli.download against a real HTTP server on 127.0.0.1 (no internet).

The server (http.server in a thread, bound to the loopback) serves archives and files
built at test time from a few real recordings of the shared corpora, supports
``Range: bytes=N-`` requests and can cut a connection half-way through a file. A test
manifest points every corpus at it.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import stat
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import write_tone
from ser_lightning.data import download as dl
from ser_lightning.data.corpora import DEFAULT_CORPUS_FOLDERS, read_corpus
from ser_lightning.cli.download import main as cli_main
from tests.helpers.http import file_server


@pytest.fixture
def server():
    """The loopback file server of tests/helpers/http.py."""
    with file_server() as httpd:
        yield httpd


@pytest.fixture(autouse=True)
def _no_mirror(monkeypatch):
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def _ravdess_members(originals: Path) -> dict[str, bytes]:
    files = sorted((originals / "ravdess").rglob("*.wav"))
    return {f"{p.parent.name}/{p.name}": p.read_bytes() for p in files}


def _spec(name: str, **kw) -> dict:
    base = {
        "title": name, "source": "http://127.0.0.1/", "folder": name, "reader_root": name, "checksums": "test",
        "licence": "test licence (non-commercial)", "licence_url": "http://127.0.0.1/licence",
        "accept_licence": True, "implicit": False, "citation": f"Cite {name}.", "name_pattern": r"^.*\.wav$",
    }
    base.update(kw)
    return base


def _manifest(tmp_path: Path, **corpora) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"version": 1, **corpora}))
    return path


@pytest.fixture
def ravdess_setup(server, originals, tmp_path):
    """RAVDESS-like archive (the shared originals, real names) on the server, its manifest, a data root."""
    members = _ravdess_members(originals)
    archive = _zip(members)
    server.files["/zenodo/rav.zip"] = archive
    manifest = _manifest(tmp_path, ravdess=_spec(
        "ravdess", method="archive", base_url=server.url + "/zenodo/", expected_files=len(members),
        name_pattern=r"^\d\d-\d\d-\d\d-\d\d-\d\d-\d\d-\d\d\.wav$",
        archives=[{"name": "rav.zip", "size": len(archive), "hash": _md5(archive), "max_extracted_bytes": 10**8}],
        size_bytes=len(archive)))
    return manifest, tmp_path / "data", members


def _install(name, root, manifest, **kw):
    kw.setdefault("accept_licence", True)
    return dl.install_corpus(name, root, manifest=manifest, interactive=False, retries=0, progress=False,
                             out=kw.pop("out", lambda _m: None), **kw)


def test_download_extract_read_then_second_call_is_noop(server, ravdess_setup, capsys):
    manifest, root, members = ravdess_setup
    result = _install("ravdess", root, manifest, out=print)
    assert result.action == "installed"
    rows = read_corpus("ravdess", root / "ravdess")
    assert len(rows) == len(members)
    assert {Path(r.path).relative_to(root / "ravdess").as_posix() for r in rows} == set(members)
    for rel, data in members.items():  # extracted byte for byte
        assert (root / "ravdess" / rel).read_bytes() == data
    record = json.loads((root / "ravdess" / dl.RECORD_NAME).read_text())
    assert set(record["files"]) == set(members)
    assert not (root / dl.STAGING_DIR).exists() and not (root / ".ravdess.partial").exists()
    first = capsys.readouterr().out
    assert "Cite ravdess." in first and "test licence" in first

    requests_before = len(server.log)
    assert cli_main(["ravdess", f"root={root}", f"manifest={manifest}"]) == 0
    assert len(server.log) == requests_before  # nothing fetched
    assert "already installed" in capsys.readouterr().out


def test_verify_lists_deleted_and_changed_files(ravdess_setup, capsys):
    manifest, root, members = ravdess_setup
    _install("ravdess", root, manifest)
    assert cli_main(["ravdess", f"root={root}", f"manifest={manifest}", "verify=true"]) == 0
    gone, edited = sorted(members)[:2]
    (root / "ravdess" / gone).unlink()
    with (root / "ravdess" / edited).open("r+b") as fh:  # same size, different bytes
        fh.seek(100)
        fh.write(b"\x00\x01\x02\x03")
    capsys.readouterr()
    assert cli_main(["ravdess", f"root={root}", f"manifest={manifest}", "verify=true"]) == 1
    out = capsys.readouterr()
    assert f"1 missing: {gone}" in out.out and f"1 changed: {edited}" in out.out
    assert "verification failed" in out.err
    # a plain second call no longer claims the corpus is installed
    with pytest.raises(dl.DownloadError, match="differs from its installation record"):
        _install("ravdess", root, manifest)


def test_interrupted_download_resumes_with_range(server, ravdess_setup):
    manifest, root, members = ravdess_setup
    server.cut_once.add("/zenodo/rav.zip")
    with pytest.raises(dl.DownloadError, match="connection broke.*run the same command again to resume"):
        _install("ravdess", root, manifest)
    part = root / dl.STAGING_DIR / "ravdess" / "rav.zip.part"
    size = len(server.files["/zenodo/rav.zip"])
    assert 0 < part.stat().st_size < size
    assert not (root / "ravdess").exists()
    kept = part.stat().st_size
    assert _install("ravdess", root, manifest).action == "installed"
    assert server.log[-1] == ("/zenodo/rav.zip", f"bytes={kept}-")
    assert len(read_corpus("ravdess", root / "ravdess")) == len(members)


def test_server_without_range_support_restarts_the_file(server, ravdess_setup):
    manifest, root, members = ravdess_setup
    server.cut_once.add("/zenodo/rav.zip")
    server.ignore_range = True
    with pytest.raises(dl.DownloadError, match="connection broke"):
        _install("ravdess", root, manifest)
    assert _install("ravdess", root, manifest).action == "installed"  # 200 instead of 206: written from byte 0
    assert len(read_corpus("ravdess", root / "ravdess")) == len(members)


def test_wrong_checksum_leaves_nothing(server, ravdess_setup, tmp_path):
    manifest, root, _ = ravdess_setup
    spec = yaml.safe_load(manifest.read_text())
    spec["ravdess"]["archives"][0]["hash"] = "md5:" + "0" * 32
    manifest.write_text(yaml.safe_dump(spec))
    with pytest.raises(dl.DownloadError, match="wrong checksum"):
        _install("ravdess", root, manifest)
    assert not (root / "ravdess").exists()
    assert not any(p.is_file() for p in (root / dl.STAGING_DIR).rglob("*"))


def test_http_404_and_no_server_give_one_message_and_exit_1(server, ravdess_setup, capsys):
    manifest, root, _ = ravdess_setup
    del server.files["/zenodo/rav.zip"]
    assert cli_main(["ravdess", f"root={root}", f"manifest={manifest}", "accept_licence=true", "retries=0",
                     "progress=false"]) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "HTTP 404" in err and "rav.zip" in err
    assert not (root / "ravdess").exists()
    closed = server.url  # a port nothing listens on after shutdown
    server.shutdown()
    server.server_close()
    with pytest.raises(dl.DownloadError, match="cannot connect to 127.0.0.1"):
        _install("ravdess", root, manifest, mirror=closed + "/zenodo/")


@pytest.mark.parametrize(
    "member, message",
    [
        ("../evil.wav", "'../evil.wav' has a '..' component"),
        ("/tmp/evil.wav", "'/tmp/evil.wav' has an absolute path"),
        ("Actor_01/link.wav", "'Actor_01/link.wav' is a symbolic link"),
        ("Actor_01/bomb.wav", "'Actor_01/bomb.wav' is packed"),
    ],
)
def test_unsafe_archive_members_are_refused(server, ravdess_setup, member, message):
    manifest, root, members = ravdess_setup
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if member.endswith("link.wav"):
            info = zipfile.ZipInfo(member)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
        elif member.endswith("bomb.wav"):
            zf.writestr(member, b"\0" * (20 << 20))
        else:
            zf.writestr(member, b"RIFF")
    data = buf.getvalue()
    server.files["/zenodo/rav.zip"] = data
    spec = yaml.safe_load(manifest.read_text())
    spec["ravdess"]["archives"][0]["hash"] = _md5(data)
    manifest.write_text(yaml.safe_dump(spec))
    with pytest.raises(dl.DownloadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _install("ravdess", root, manifest)
    assert not (root / "ravdess").exists() and not (root / ".ravdess.partial").exists()
    assert not (root / "evil.wav").exists() and not (root.parent / "evil.wav").exists()


def test_licence_must_be_accepted(server, ravdess_setup, capsys):
    manifest, root, _ = ravdess_setup
    with pytest.raises(dl.LicenceNotAccepted, match="accept_licence=true"):
        _install("ravdess", root, manifest, accept_licence=False)
    with pytest.raises(dl.LicenceNotAccepted, match="never fetched implicitly"):
        _install("ravdess", root, manifest, accept_licence=False, implicit=True)
    assert server.log == [] and not (root / "ravdess").exists()
    assert cli_main(["ravdess", f"root={root}", f"manifest={manifest}"]) == 1  # stdin is not a terminal
    captured = capsys.readouterr()
    assert "test licence" in captured.out and "not accepted" in captured.err


def test_per_file_corpus_with_pinned_hashes_and_mirror(server, data_dir, tmp_path, monkeypatch):
    """CREMA-D style: one download per file, SHA-256 pinned in a compressed CSV, via SER_DATA_MIRROR."""
    wavs = sorted((data_dir / "crema_d" / "AudioWAV").glob("*.wav"))[::2]  # both actors
    demographics = b"ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n1002,21,Female,Caucasian,Not Hispanic\n"
    rows = [(f"AudioWAV/{p.name}", p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()) for p in wavs]
    text = io.StringIO()
    csv.writer(text).writerows([("path", "size", "sha256"), *rows])
    (tmp_path / "files.csv.gz").write_bytes(gzip.compress(text.getvalue().encode()))
    manifest = _manifest(tmp_path, crema_d=_spec(
        "crema_d", method="files", folder="crema_d", reader_root="crema_d/AudioWAV", accept_licence=False,
        base_url="http://127.0.0.1:9/unused/", file_list="files.csv.gz", expected_files=len(wavs),
        extra_files=[{"path": "VideoDemographics.csv", "url": "http://127.0.0.1:9/unused.csv", "size": len(demographics),
                      "sha256": hashlib.sha256(demographics).hexdigest()}]))
    for p in wavs:
        server.files[f"/lab/crema_d/AudioWAV/{p.name}"] = p.read_bytes()
    server.files["/lab/crema_d/VideoDemographics.csv"] = demographics
    monkeypatch.setenv(dl.MIRROR_ENV, server.url + "/lab")
    root = tmp_path / "data"
    assert _install("crema_d", root, manifest, accept_licence=False, workers=3).action == "installed"
    rows_read = read_corpus("crema_d", root / "crema_d" / "AudioWAV")
    assert len(rows_read) == len(wavs) and {r.gender for r in rows_read} == {"male", "female"}
    assert dl.verify_corpus(dl.load_manifest(manifest)["crema_d"], root).ok

    # the pinned hashes still apply to the mirror: a mirror serving other bytes is refused
    remove = root / "crema_d"
    dl.remove_tree(remove)
    server.files[f"/lab/crema_d/AudioWAV/{wavs[0].name}"] = b"RIFF" + b"\0" * 100
    with pytest.raises(dl.DownloadError, match=f"wrong checksum.*|{wavs[0].name}"):
        _install("crema_d", root, manifest, accept_licence=False, workers=1)
    assert not (root / "crema_d").exists()


def test_dataverse_corpus_uses_published_md5(server, originals, tmp_path):
    """TESS style: the file list and MD5s come from the Dataverse API of a pinned version."""
    files = sorted((originals / "tess").rglob("*.wav"))
    entries = []
    for i, p in enumerate(files):
        server.files[f"/api/access/datafile/{100 + i}"] = p.read_bytes()
        entries.append({"label": p.name, "directoryLabel": p.parent.name,
                        "dataFile": {"id": 100 + i, "filename": p.name, "filesize": p.stat().st_size,
                                     "checksum": {"type": "MD5", "value": hashlib.md5(p.read_bytes()).hexdigest()}}})
    doi = "doi:10.5683/SP2/E8H2MF"
    listing = f"/api/datasets/:persistentId/versions/1.0/files?persistentId={doi}"
    server.files[listing] = json.dumps({"status": "OK", "data": entries}).encode()
    manifest = _manifest(tmp_path, tess=_spec(
        "tess", method="dataverse", implicit=True, expected_files=len(files),
        dataverse={"server": server.url, "doi": doi, "version": "1.0"}))
    root = tmp_path / "data"
    # make train's implicit fetch is allowed for a corpus marked implicit
    assert _install("tess", root, manifest, accept_licence=False, implicit=True).action == "installed"
    assert len(read_corpus("tess", root / "tess")) == len(files)
    assert (root / "tess" / files[0].parent.name / files[0].name).read_bytes() == files[0].read_bytes()


def test_archive_without_published_checksum_records_hashes(server, tmp_path):
    """EmoDB style: no checksum published; count and names are checked and SHA-256s recorded."""
    src = tmp_path / "src"
    names = ["03a01Fa.wav", "08a02Wb.wav", "09b03Tc.wav"]
    members = {f"wav/{n}": write_tone(src / n, seconds=0.2).read_bytes() for n in names}
    members["erkennung.txt"] = b"labels"
    archive = _zip(members)
    server.files["/emodb/download.zip"] = archive
    manifest = _manifest(tmp_path, emodb=_spec(
        "emodb", method="archive", folder="emodb", reader_root="emodb/wav", base_url=server.url + "/emodb/",
        expected_files=3, name_pattern=r"^\d\d[a-z]\d\d[A-Z][a-z]\.wav$",
        archives=[{"name": "download.zip", "size": None, "hash": None}]))
    root = tmp_path / "data"
    _install("emodb", root, manifest)
    record = json.loads((root / "emodb" / dl.RECORD_NAME).read_text())
    assert record["sources"][0]["sha256"] == hashlib.sha256(archive).hexdigest()
    assert record["files"]["wav/03a01Fa.wav"]["sha256"] == hashlib.sha256(members["wav/03a01Fa.wav"]).hexdigest()
    assert [r.label for r in read_corpus("emodb", root / "emodb" / "wav")] == ["happy", "angry", "sad"]

    # an archive that is not the corpus (wrong count) is refused and not kept for the next run
    dl.remove_tree(root / "emodb")
    server.files["/emodb/download.zip"] = _zip({"wav/03a01Fa.wav": members["wav/03a01Fa.wav"]})
    with pytest.raises(dl.DownloadError, match="1 audio files under wav after extraction, 3 expected"):
        _install("emodb", root, manifest)
    assert not (root / "emodb").exists() and not (root / dl.STAGING_DIR / "emodb" / "download.zip").exists()


def test_manual_corpus_unpacks_the_users_archive(originals, tmp_path, capsys):
    """SAVEE: registration only; the user's archive is verified and unpacked, else instructions."""
    manual = {"archive_names": ["AudioData.zip"], "instructions": "Register at http://example.invalid/savee first."}
    members = {f"AudioData/{p.stem.split('_')[0]}/{p.stem.split('_')[1]}.wav": p.read_bytes()
               for p in sorted((originals / "savee" / "ALL").glob("*.wav"))}
    manifest = _manifest(tmp_path, savee=_spec("savee", method="manual", manual=manual, expected_files=len(members),
                                               name_pattern=r"^(?:[A-Z]{2}_)?(?:a|d|f|h|n|sa|su)\d\d\.wav$"))
    root = tmp_path / "data"
    assert cli_main(["savee", f"root={root}", f"manifest={manifest}", "accept_licence=true"]) == 1
    assert "Register at http://example.invalid/savee first." in capsys.readouterr().err
    archive = tmp_path / "AudioData.zip"
    archive.write_bytes(_zip(members))
    _install("savee", root, manifest, archive=archive)
    speakers = {r.speaker for r in read_corpus("savee", root / "savee")}
    assert speakers == {f"savee:{k.split('/')[1]}" for k in members}
    assert archive.exists()  # the user's file is left alone


def test_list_shows_status(ravdess_setup, capsys):
    manifest, root, _ = ravdess_setup
    assert cli_main(["--list", f"root={root}", f"manifest={manifest}"]) == 0
    assert "absent" in capsys.readouterr().out
    _install("ravdess", root, manifest)
    assert cli_main(["--list", f"root={root}", f"manifest={manifest}"]) == 0
    assert "installed, verified" in capsys.readouterr().out


def test_shipped_manifest_is_complete():
    """Every corpus the framework reads has a pinned entry whose reader root matches conf/data."""
    specs = dl.load_manifest()
    assert set(specs) == {"ravdess", "tess", "crema_d", "emodb", "savee", "ased", "nemo", "turev", "urdu", "emovo"}
    for name in ("ased", "nemo", "turev", "urdu"):  # GitHub archives pinned to a full commit id
        (archive,) = specs[name].archives
        commit = archive["name"].removesuffix(".zip")
        assert re.fullmatch(r"[0-9a-f]{40}", commit) and commit in archive["subdir"] and specs[name].accept_licence
    assert specs["ravdess"].archives[0]["hash"] == "md5:bc696df654c87fed845eb13823edef8a"
    crema = dl.pinned_file_list(specs["crema_d"])
    assert len(crema) == specs["crema_d"].expected_files == 7442
    assert all(len(h) == 64 for _, _, h in crema)
    assert specs["tess"].implicit and not any(s.implicit for n, s in specs.items() if n != "tess")
    repo = Path(__file__).resolve().parents[1]
    default_root = yaml.safe_load((repo / "conf" / "data" / "default.yaml").read_text())["root"]
    for name, spec in specs.items():
        assert spec.reader_root == DEFAULT_CORPUS_FOLDERS[name]
        root = yaml.safe_load((repo / "conf" / "data" / f"{name}.yaml").read_text()).get("root", default_root)
        assert root.replace("${data.corpus}", name) == "${paths.data_dir}/" + spec.reader_root


def test_interactive_yes_accepts_the_licence(ravdess_setup, monkeypatch):
    manifest, root, members = ravdess_setup
    answers = iter(["yes"])
    monkeypatch.setattr("builtins.input", lambda _prompt: next(answers))
    result = dl.install_corpus("ravdess", root, manifest=manifest, interactive=True, retries=0, progress=False,
                               out=lambda _m: None)
    assert result.action == "installed" and len(read_corpus("ravdess", root / "ravdess")) == len(members)


def test_disk_full_and_interrupt_leave_no_corpus(ravdess_setup, monkeypatch, capsys):
    manifest, root, _ = ravdess_setup
    usage = dl.shutil.disk_usage(root.parent)
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda _p: usage._replace(free=1000))
    with pytest.raises(dl.DownloadError, match="not enough free disk space"):
        _install("ravdess", root, manifest)
    monkeypatch.undo()

    def full(self, url, output_file, pooch_obj, check_only=False):
        self.part.write_bytes(b"x" * 10)
        raise OSError(28, "No space left on device")  # ENOSPC while writing

    monkeypatch.setattr(dl.ResumingDownloader, "__call__", full)
    with pytest.raises(dl.DownloadError, match="the disk is full.*run the same command again"):
        _install("ravdess", root, manifest)
    assert not (root / "ravdess").exists()

    def interrupted(self, url, output_file, pooch_obj, check_only=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(dl.ResumingDownloader, "__call__", interrupted)
    capsys.readouterr()
    assert cli_main(["ravdess", f"root={root}", f"manifest={manifest}", "accept_licence=true", "retries=0"]) == 1
    assert "interrupted" in capsys.readouterr().err
    assert not (root / "ravdess").exists() and not (root / ".ravdess.partial").exists()


def test_github_archive_keeps_only_the_pinned_subfolder(server, tmp_path):
    """TurEV-DB style: GitHub's archive of a commit wraps the tree in <repo>-<commit>/ and
    holds other audio (model outputs) beside "Sound Source/"; only that folder is installed."""
    src = tmp_path / "src"
    top = "TurEV-DB-" + "a" * 40
    members = {}
    for i, (folder, code) in enumerate((("Angry", "kz"), ("Calm", "sk"), ("Happy", "mt"), ("Sad", "hl"))):
        for spk in ("1157", "1234", "1358"):
            name = f"{spk}_{code}_beste.wav"
            members[f"{top}/Sound Source/{folder}/{name}"] = write_tone(src / name, seconds=0.2, freq=200.0 + 40 * i).read_bytes()
    members[f"{top}/Model Output for Test Data/sound/Angry/1157_kz_beste.wav"] = members[f"{top}/Sound Source/Angry/1157_kz_beste.wav"]
    members[f"{top}/README.md"] = b"TurEV-DB"
    archive = _zip(members)
    server.files[f"/Xeonen/TurEV-DB/archive/{'a' * 40}.zip"] = archive
    spec = _spec("turev", method="archive", base_url=server.url + "/Xeonen/TurEV-DB/archive/", expected_files=12,
                 name_pattern=r"^\d{4}_(kz|sk|mt|hl)_[a-z0-9]+\.wav$",
                 archives=[{"name": f"{'a' * 40}.zip", "size": None, "hash": None, "subdir": f"{top}/Sound Source"}])
    manifest = _manifest(tmp_path, turev=spec)
    root = tmp_path / "data"
    lines = []
    assert _install("turev", root, manifest, out=lines.append).action == "installed"
    assert any("CC BY" in line or "test licence" in line for line in lines)  # the licence is printed
    assert sorted(p.name for p in (root / "turev").iterdir() if not p.name.startswith(".")) == ["Angry", "Calm", "Happy", "Sad"]
    rows = read_corpus("turev", root / "turev")
    assert len(rows) == 12 and {r.label for r in rows} == {"angry", "calm", "happy", "sad"}
    record = json.loads((root / "turev" / dl.RECORD_NAME).read_text())
    assert record["sources"][0]["sha256"] == hashlib.sha256(archive).hexdigest()  # recorded on first download
    assert not (root / ".turev.unpack").exists() and not (root / ".turev.partial").exists()
    assert dl.verify_corpus(dl.load_manifest(manifest)["turev"], root).ok

    # an archive without the pinned folder is not the release: refused, nothing installed
    dl.remove_tree(root / "turev")
    spec["archives"][0]["subdir"] = "TurEV-DB-other/Sound Source"
    manifest = _manifest(tmp_path, turev=spec)
    with pytest.raises(dl.DownloadError, match="has no folder 'TurEV-DB-other/Sound Source'"):
        _install("turev", root, manifest)
    assert not (root / "turev").exists() and not (root / ".turev.unpack").exists()
    with pytest.raises(dl.LicenceNotAccepted):
        _install("turev", root, manifest, accept_licence=False)
