from collections import Counter
from pathlib import Path

import pytest

from ser_lightning.data.corpora import load_manifest_rows, read_corpus, read_crema_d, read_emodb, read_manifest, read_ravdess, read_savee, read_tess, write_manifest
from ser_lightning.errors import CorpusNotFoundError, UnknownLabelError
from tests.conftest import write_tone


def test_tess_labels_speakers_and_quirks(data_dir):
    rows = read_tess(data_dir / "tess")
    assert len(rows) == 2520
    counts = Counter(r.label for r in rows)
    assert set(counts) == {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}
    assert all(n == 360 for n in counts.values())
    # The OA_ prefix of one file is read as speaker OAF: 1260 files per speaker.
    assert Counter(r.speaker for r in rows) == {"tess:OAF": 1260, "tess:YAF": 1260}
    oa = [r for r in rows if Path(r.path).name == "OA_bite_neutral.flac"]
    assert oa and oa[0].speaker == "tess:OAF" and oa[0].label == "neutral"
    # Folder names vary (OAF_Pleasant_surprise / YAF_pleasant_surprised); the file name decides.
    ps = [r for r in rows if Path(r.path).stem.endswith("_ps")]
    assert len(ps) == 360 and {r.label for r in ps} == {"surprise"}
    assert {r.gender for r in rows} == {"female"}


def test_tess_originals_wav_with_aiff_and_96k(originals):
    rows = read_tess(originals / "tess")
    assert len(rows) == 7
    assert {Path(r.path).suffix for r in rows} == {".wav"}
    assert {r.label for r in rows} == {"fear", "surprise", "angry", "neutral"}


def test_ravdess_codes(data_dir):
    rows = read_ravdess(data_dir / "ravdess")
    assert len(rows) == 1200
    assert len({r.speaker for r in rows}) == 20
    assert set(Counter(r.label for r in rows)) == {"neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"}
    for r in rows:
        actor = int(r.speaker.split(":")[1])
        assert r.gender == ("male" if actor % 2 else "female")
        assert Path(r.path).stem.split("-")[-1] == f"{actor:02d}"
    # code 06 = fearful
    assert all(r.label == "fear" for r in rows if Path(r.path).stem.split("-")[2] == "06")


def test_ravdess_skips_song_files(tmp_path):
    write_tone(tmp_path / "Actor_01" / "03-01-05-01-01-01-01.wav")
    write_tone(tmp_path / "Actor_01" / "03-02-05-01-01-01-01.wav")  # song
    rows = read_ravdess(tmp_path)
    assert [Path(r.path).name for r in rows] == ["03-01-05-01-01-01-01.wav"]
    assert rows[0].label == "angry"


def test_savee_flat_and_per_speaker_layouts(data_dir, tmp_path):
    rows = read_savee(data_dir / "savee")
    assert len(rows) == 360
    assert {r.speaker for r in rows} == {"savee:DC", "savee:JE", "savee:JK"}
    assert set(r.label for r in rows) == {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}
    # sa (sadness) and su (surprise) are not confused with a (anger)
    assert {r.label for r in rows if Path(r.path).stem.split("_")[1].startswith("sa")} == {"sad"}
    write_tone(tmp_path / "KL" / "su03.wav")
    write_tone(tmp_path / "KL" / "a01.wav")
    per_speaker = read_savee(tmp_path)
    assert {(r.speaker, r.label) for r in per_speaker} == {("savee:KL", "surprise"), ("savee:KL", "angry")}


def test_crema_d_sample_and_demographics(data_dir, tmp_path):
    rows = read_crema_d(data_dir / "crema_d" / "AudioWAV")
    assert len(rows) == 12
    assert {r.speaker for r in rows} == {"crema_d:1001", "crema_d:1002"}
    assert set(r.label for r in rows) == {"angry", "disgust", "fear", "happy", "neutral", "sad"}
    write_tone(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    (tmp_path / "VideoDemographics.csv").write_text("ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n")
    assert read_crema_d(tmp_path / "AudioWAV")[0].gender == "male"


def test_emodb_names_per_spec(tmp_path):
    for name in ("03a01Fa", "08b02Wb", "16a05Lc"):
        write_tone(tmp_path / "wav" / f"{name}.wav")
    rows = {Path(r.path).stem: r for r in read_emodb(tmp_path / "wav")}
    assert (rows["03a01Fa"].label, rows["03a01Fa"].speaker, rows["03a01Fa"].gender, rows["03a01Fa"].text) == ("happy", "emodb:03", "male", "a01")
    assert (rows["08b02Wb"].label, rows["08b02Wb"].gender) == ("angry", "female")
    assert rows["16a05Lc"].label == "boredom"
    write_tone(tmp_path / "bad" / "03a01Xa.wav")
    with pytest.raises(UnknownLabelError, match="03a01Xa"):
        read_emodb(tmp_path / "bad")


def test_manifest_relative_paths_aliases_and_unknown_label(tmp_path):
    write_tone(tmp_path / "clips" / "one.wav")
    write_tone(tmp_path / "clips" / "two.flac")
    (tmp_path / "m.csv").write_text("path,label,speaker\nclips/one.wav,Anger,s1\nclips/two.flac,happy,s2\n")
    rows = read_manifest(tmp_path / "m.csv")
    assert [(r.label, r.speaker) for r in rows] == [("angry", "manifest:s1"), ("happy", "manifest:s2")]
    assert Path(rows[0].path).is_absolute() and Path(rows[0].path).exists()
    (tmp_path / "bad.csv").write_text("path,label\nclips/one.wav,contempt\n")
    with pytest.raises(UnknownLabelError, match="one.wav"):
        read_manifest(tmp_path / "bad.csv")
    assert read_manifest(tmp_path / "bad.csv", extra_labels=["contempt"])[0].label == "contempt"


def test_missing_root_names_path_and_layout(tmp_path):
    with pytest.raises(CorpusNotFoundError) as err:
        read_corpus("tess", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value) and "OAF" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusNotFoundError, match="no audio files"):
        read_corpus("ravdess", tmp_path / "empty")
    with pytest.raises(ValueError, match="allowed"):
        read_corpus("iemocap", tmp_path)


def test_unknown_tess_emotion_names_file(tmp_path):
    write_tone(tmp_path / "OAF_x" / "OAF_bar_bored.wav")
    with pytest.raises(UnknownLabelError, match="OAF_bar_bored"):
        read_tess(tmp_path)


def test_manifest_round_trip(data_dir, tmp_path):
    rows = read_savee(data_dir / "savee")[:5]
    write_manifest(rows, tmp_path / "out.csv")
    assert load_manifest_rows(tmp_path / "out.csv") == rows
