"""Readers of ASED, nEMO and TurEV-DB (on the shared copies), EMOVO and URDU (on files
synthesised with their names), data=combined over every corpus present, and the
speaker-independent splits of the new corpora."""

from collections import Counter

import pytest
from conftest import write_tone

from ser_lightning.data.corpora import (
    DEFAULT_CORPUS_FOLDERS,
    present_corpora,
    read_ased,
    read_combined,
    read_corpus,
    read_emovo,
    read_nemo,
    read_turev,
    read_urdu,
)
from ser_lightning.data.splits import make_split
from ser_lightning.errors import CorpusNotFoundError, UnknownLabelError
from ser_lightning.labels import EMOTIONS


def _need(data_dir, folder):
    if not (data_dir / folder).is_dir():
        pytest.skip(f"{folder}/ not in the shared data")
    return data_dir / folder


def test_ased_counts_genders_and_quirks(data_dir):
    rows = read_ased(_need(data_dir, "ased"))
    assert len(rows) == 2474
    genders = {r.speaker: r.gender for r in rows}
    assert len(genders) == 65  # speaker numbers, not the 70 speaker-gender pairs of the names
    assert Counter(genders.values()) == {"male": 40, "female": 25}  # the corpus paper's counts
    # speakers 09, 15, 21, 23, 25 carry both gender codes; the majority (female here) wins
    assert {genders[f"ased:{s}"] for s in ("09", "15", "21", "23", "25")} == {"female"}
    assert Counter(r.label for r in rows) == {"neutral": 522, "fear": 510, "happy": 486, "angry": 486, "sad": 470}
    upper = [r for r in rows if r.path.endswith("S4-04-02-01-29.ogg")]
    assert len(upper) == 1 and upper[0].label == "sad"
    # the emotion code agrees with the release's folder for every file
    folder = {"01Neutral": "neutral", "02Fearful": "fear", "03Happy": "happy", "04Sad": "sad", "05Angry": "angry"}
    assert all(folder[r.path.split("/")[-2]] == r.label for r in rows)


def test_nemo_counts_genders_and_tsv(data_dir):
    rows = read_nemo(_need(data_dir, "nemo"))
    assert len(rows) == 2245
    genders = {r.speaker: r.gender for r in rows}
    assert genders == {**{f"nemo:{s}": "female" for s in ("EB0", "IC0", "KD0", "MK0")},
                       **{f"nemo:{s}": "male" for s in ("KS0", "MP0", "SM0", "TP0", "WR0")}}
    assert set(Counter(r.label for r in rows)) == {"angry", "fear", "happy", "neutral", "sad", "surprise"}
    assert all(r.text for r in rows)  # the transcription of data.tsv


def test_nemo_tsv_must_agree_with_the_name(tmp_path):
    write_tone(tmp_path / "samples" / "EB0_anger_1.wav")
    (tmp_path / "data.tsv").write_text(
        "file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage\n"
        "EB0_anger_1.wav\tsadness\tTak.\ttak\t        EB0\tfemale\t27\n")
    with pytest.raises(UnknownLabelError, match="data.tsv"):
        read_nemo(tmp_path)
    (tmp_path / "data.tsv").unlink()  # without the table: gender from the documentation
    (row,) = read_nemo(tmp_path / "samples")
    assert (row.label, row.speaker, row.gender, row.text) == ("angry", "nemo:EB0", "female", None)


def test_turev_counts_calm_and_speaker_1157(data_dir):
    rows = read_turev(_need(data_dir, "turev"))
    assert len(rows) == 1735
    assert len({r.speaker for r in rows}) == 6
    assert Counter(r.label for r in rows) == {"angry": 487, "sad": 483, "calm": 408, "happy": 357}
    assert {r.label for r in rows if r.speaker == "turev:1157"} == {"angry", "sad"}
    assert "calm" in EMOTIONS  # the same class RAVDESS's calm maps to


def test_emovo_synthesised_names(tmp_path):
    for spk in ("f1", "m3"):
        for code in ("dis", "gio", "neu", "pau", "rab", "sor", "tri"):
            write_tone(tmp_path / spk / f"{code}-{spk}-b1.wav", seconds=0.2)
    rows = read_emovo(tmp_path)
    assert len(rows) == 14
    by_name = {r.path.rsplit("/", 1)[-1]: r for r in rows}
    assert by_name["gio-f1-b1.wav"].label == "happy" and by_name["gio-f1-b1.wav"].gender == "female"
    assert by_name["pau-m3-b1.wav"].label == "fear" and by_name["pau-m3-b1.wav"].speaker == "emovo:m3"
    assert by_name["rab-m3-b1.wav"].gender == "male" and by_name["rab-m3-b1.wav"].text == "b1"
    assert {r.label for r in rows} == {"disgust", "happy", "neutral", "fear", "angry", "surprise", "sad"}
    write_tone(tmp_path / "f2" / "xyz-f2-b1.wav", seconds=0.2)
    with pytest.raises(UnknownLabelError, match="xyz-f2-b1"):
        read_emovo(tmp_path)


def test_urdu_synthesised_names(tmp_path):
    write_tone(tmp_path / "Angry" / "SM1_F10_A010.wav", seconds=0.2)
    write_tone(tmp_path / "Sad" / "SF6_F3_S03.wav", seconds=0.2)
    write_tone(tmp_path / "Neutral" / "SM1_F2_N02.wav", seconds=0.2)
    rows = sorted(read_urdu(tmp_path), key=lambda r: r.path)
    assert [(r.label, r.speaker, r.gender) for r in rows] == [
        ("angry", "urdu:SM1", "male"), ("neutral", "urdu:SM1", "male"), ("sad", "urdu:SF6", "female")]
    write_tone(tmp_path / "Bored" / "SM2_F1_B01.wav", seconds=0.2)
    with pytest.raises(UnknownLabelError, match="Bored"):
        read_urdu(tmp_path)


def test_new_readers_reject_missing_roots(tmp_path):
    for name in ("ased", "nemo", "turev", "emovo", "urdu"):
        with pytest.raises(CorpusNotFoundError, match=name):
            read_corpus(name, tmp_path / "nowhere")


@pytest.mark.parametrize("folder,corpus", [("turev", "turev"), ("nemo", "nemo"), ("ased", "ased")])
def test_speaker_independent_split_of_each_new_corpus(data_dir, folder, corpus):
    rows = read_corpus(corpus, _need(data_dir, folder))
    split = make_split(rows, "speaker", 0.15, 0.15, seed=0)
    spk = {part: {r.speaker for r in getattr(split, part)} for part in ("train", "val", "test")}
    assert spk["val"] and spk["test"] and spk["train"]
    assert not (spk["train"] & spk["test"]) and not (spk["train"] & spk["val"]) and not (spk["val"] & spk["test"])
    assert len(split.train) + len(split.val) + len(split.test) == len(rows)


def test_combined_defaults_to_every_corpus_present(tmp_path):
    write_tone(tmp_path / "turev" / "Angry" / "1157_kz_beste.wav", seconds=0.2)
    write_tone(tmp_path / "turev" / "Calm" / "1234_sk_beste.wav", seconds=0.2)
    write_tone(tmp_path / "urdu" / "Happy" / "SF1_F1_H01.wav", seconds=0.2)
    write_tone(tmp_path / "emovo" / "m1" / "dis-m1-l1.wav", seconds=0.2)
    (tmp_path / "ased").mkdir()  # an empty folder is not a corpus
    assert present_corpora(tmp_path) == ["turev", "emovo", "urdu"]
    rows = read_combined(tmp_path, calm="keep")
    assert {r.corpus for r in rows} == {"turev", "emovo", "urdu"}
    assert {r.label for r in rows} == {"angry", "calm", "happy", "disgust"}  # the union
    assert "calm" not in {r.label for r in read_combined(tmp_path)}  # the function's default policy drops it
    with pytest.raises(CorpusNotFoundError, match="no corpus folder"):
        read_combined(tmp_path / "ased")


def test_default_folders_name_every_new_corpus():
    assert {"ased", "nemo", "turev", "emovo", "urdu"} <= set(DEFAULT_CORPUS_FOLDERS)


def test_loco_run_scores_the_held_out_corpus_on_its_own_classes(tmp_path):
    """classes=target in train.py, on synthesised TurEV-DB and EMOVO trees: the model has
    the union of the labels (8, TurEV-DB's calm kept), the held-out EMOVO is scored over its
    7 classes only, so calm is never predicted for it."""
    import json

    import numpy as np

    from ser_lightning.training.pipeline import train
    from tests.helpers.configs import FAST, compose_train

    for i, spk in enumerate(("1157", "1234", "1358")):
        for j, (folder, code) in enumerate((("Angry", "kz"), ("Calm", "sk"), ("Happy", "mt"), ("Sad", "hl"))):
            for word in ("beste", "okul"):
                write_tone(tmp_path / "data" / "turev" / folder / f"{spk}_{code}_{word}.wav", seconds=0.5,
                           freq=150.0 + 60 * j + 7 * i + len(word))
    for i, spk in enumerate(("f1", "m1")):
        for j, code in enumerate(("dis", "gio", "neu", "pau", "rab", "sor", "tri")):
            write_tone(tmp_path / "data" / "emovo" / spk / f"{code}-{spk}-b1.wav", seconds=0.5, freq=140.0 + 50 * j + 5 * i)
    overrides = ["data=combined", "data.reader_args.calm=keep", "data.split=corpus", "data.test_corpus=emovo",
                 "classes=target", "model=cnn1d", "features=mfcc", "features.normalize=utterance", "augment=none",
                 "logger=csv", "report_stats=[]", *[o for o in FAST if "limit_test" not in o], "data.clip_seconds=0.5"]
    train(compose_train(overrides, tmp_path / "run", tmp_path / "data", tmp_path / "cache"))
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert report["test_classes"] == "target"
    assert report["split"].startswith("loco-emovo")  # data=combined found both corpora by itself
    assert "calm" in report["class_names"] and len(report["class_names"]) == 8
    calm = report["class_names"].index("calm")
    confusion = np.asarray(report["confusion_matrix"])
    assert confusion.sum() == report["n_test"] == 14
    assert confusion[:, calm].sum() == 0  # never predicted: EMOVO has no calm


def test_target_classes_mask():
    from ser_lightning.errors import ConfigError
    from ser_lightning.evaluation.run_scoring import target_classes_mask

    names = ["neutral", "calm", "happy", "sad", "angry"]
    assert target_classes_mask(names, ["sad", "angry", "sad"], "all") is None
    assert target_classes_mask(names, ["sad", "angry", "calm"], "target").tolist() == [False, True, False, True, True]
    assert target_classes_mask(names, names, "target") is None  # every class present: nothing to restrict
    assert target_classes_mask(names, ["sad"], "target") is None  # one class: nothing to choose between
    with pytest.raises(ConfigError, match="classes='some'"):
        target_classes_mask(names, ["sad"], "some")
