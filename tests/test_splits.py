from collections import Counter

import pytest

from ser_lightning.data.corpora import Utterance, read_ravdess, read_tess
from ser_lightning.data.splits import kfold_split, loso_split, make_split, random_split, speaker_split


def _paths(rows):
    return {r.path for r in rows}


def test_random_split_is_stratified_disjoint_and_seeded(data_dir):
    rows = read_tess(data_dir / "tess")
    s = random_split(rows, 0.15, 0.15, seed=0)
    assert len(s.train) + len(s.val) + len(s.test) == len(rows)
    assert not (_paths(s.train) & _paths(s.test)) and not (_paths(s.val) & _paths(s.test)) and not (_paths(s.train) & _paths(s.val))
    for part in (s.val, s.test):
        counts = Counter(r.label for r in part)
        assert max(counts.values()) - min(counts.values()) <= 1, counts
    again = random_split(rows, 0.15, 0.15, seed=0)
    assert [r.path for r in again.test] == [r.path for r in s.test]
    other = random_split(rows, 0.15, 0.15, seed=1)
    assert _paths(other.test) != _paths(s.test)


def test_speaker_split_has_no_shared_speaker(data_dir):
    rows = read_ravdess(data_dir / "ravdess")
    s = speaker_split(rows, 0.2, 0.2, seed=3)
    spk = [{r.speaker for r in part} for part in (s.train, s.val, s.test)]
    assert not (spk[0] & spk[1]) and not (spk[0] & spk[2]) and not (spk[1] & spk[2])
    assert len(spk[1]) == 4 and len(spk[2]) == 4 and len(spk[0]) == 12
    # gender-balanced held-out parts
    assert Counter(r.gender for r in s.test if r.speaker) .keys() == {"male", "female"}
    assert speaker_split(rows, 0.2, 0.2, seed=3).test == s.test


def test_speaker_split_needs_three_speakers(data_dir):
    rows = read_tess(data_dir / "tess")
    with pytest.raises(ValueError, match="at least 3 speakers"):
        speaker_split(rows, 0.15, 0.15, 0)
    assert make_split(rows, "auto").protocol == "random"


def test_kfold_tests_every_speaker_once(data_dir):
    rows = read_ravdess(data_dir / "ravdess")
    tested = []
    for k in range(5):
        s = kfold_split(rows, k, 5, seed=0)
        val_spk, test_spk = {r.speaker for r in s.val}, {r.speaker for r in s.test}
        assert not val_spk & test_spk and not {r.speaker for r in s.train} & (val_spk | test_spk)
        tested += sorted(test_spk)
    assert sorted(tested) == sorted({r.speaker for r in rows})
    with pytest.raises(ValueError, match="out of range"):
        kfold_split(rows, 5, 5, 0)


def test_loso_holds_out_one_speaker():
    rows = [Utterance(f"/x/{s}{i}.wav", "happy" if i % 2 else "sad", f"c:{s}", "c") for s in "ABCD" for i in range(4)]
    s = loso_split(rows, 2)
    assert {r.speaker for r in s.test} == {"c:C"} and {r.speaker for r in s.val} == {"c:D"}
    assert s.protocol == "loso-c:C"
    with pytest.raises(ValueError, match="allowed 0..3"):
        loso_split(rows, 4)


def test_unknown_protocol():
    rows = [Utterance(f"/x/{i}.wav", "sad", f"c:{i}", "c") for i in range(5)]
    with pytest.raises(ValueError, match="allowed"):
        make_split(rows, "bogus")
