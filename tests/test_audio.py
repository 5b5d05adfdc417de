import numpy as np
import pytest
import soundfile as sf

from ser_lightning.data.audio import fit_length, load_audio, to_mono_resampled
from ser_lightning.errors import AudioDecodeError
from ser_lightning.data.cache import cache_key, decode_files, load_or_decode
from ser_lightning.data.streaming import AudioStream
from tests.conftest import corrupt_middle, write_tone


def test_flac_at_16k_is_read_as_is(data_dir):
    path = next((data_dir / "tess" / "YAF_happy").glob("*.flac"))
    info = sf.info(str(path))
    wave = load_audio(path, 16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert wave.shape[0] == info.frames


def test_tess_original_24414_hz_is_resampled(originals):
    path = originals / "tess" / "OAF_angry" / "OAF_bar_angry.wav"
    info = sf.info(str(path))
    assert info.samplerate == 24414
    wave = load_audio(path, 16000)
    assert abs(wave.shape[0] - info.frames * 16000 / 24414) <= 2


def test_aiff_behind_wav_name_decodes(originals):
    path = originals / "tess" / "YAF_angry" / "YAF_germ_angry.wav"
    assert path.read_bytes()[:4] == b"FORM"  # AIFF container
    wave = load_audio(path, 16000)
    assert wave.shape[0] > 16000 * 0.5 and np.abs(wave).max() > 0.01


def test_96k_file(originals):
    path = originals / "tess" / "OAF_Fear" / "OAF_food_fear.wav"
    info = sf.info(str(path))
    assert info.samplerate == 96000
    assert abs(load_audio(path, 16000).shape[0] - info.frames / 6) <= 2


def test_stereo_48k_is_downmixed(originals):
    stereo = [p for p in (originals / "ravdess").rglob("*.wav") if sf.info(str(p)).channels == 2]
    assert stereo, "the originals hold a stereo RAVDESS file"
    info = sf.info(str(stereo[0]))
    raw, _ = sf.read(str(stereo[0]), dtype="float32")
    wave = load_audio(stereo[0], 16000)
    assert wave.ndim == 1 and abs(wave.shape[0] - info.frames / 3) <= 2
    expected = to_mono_resampled(raw.mean(axis=1), 48000, 16000)
    np.testing.assert_allclose(wave, expected, atol=1e-6)


def test_bad_inputs_raise_specific_errors(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty.wav"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "text.wav").write_text("this is not audio" * 50)
    with pytest.raises(AudioDecodeError, match="cannot decode"):
        load_audio(tmp_path / "text.wav")
    with pytest.raises(AudioDecodeError, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioDecodeError, match="NaN"):
        to_mono_resampled(np.array([0.1, np.nan, 0.2], dtype=np.float32), 16000, 16000)
    with pytest.raises(AudioDecodeError, match="zero-length"):
        to_mono_resampled(np.zeros(0, dtype=np.float32), 16000, 16000)


def test_fit_length_crops_and_pads():
    wave = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(wave, 4), [3, 4, 5, 6])  # centred
    np.testing.assert_array_equal(fit_length(wave, 4, offset=0), [0, 1, 2, 3])
    padded = fit_length(wave[:3], 7)
    np.testing.assert_array_equal(padded, [0, 0, 0, 1, 2, 0, 0])
    np.testing.assert_array_equal(fit_length(wave[:3], 5, offset=2), [0, 0, 0, 1, 2])


def test_cache_records_bad_files_and_reuses_decoded_audio(tmp_path):
    good = write_tone(tmp_path / "a.wav", seconds=0.5, sr=22050)
    short = write_tone(tmp_path / "b.wav", seconds=0.01)
    broken = tmp_path / "c.wav"
    broken.write_bytes(b"RIFF\x00\x00")
    paths = [str(good), str(short), str(broken)]
    first = load_or_decode(paths, 16000, tmp_path / "cache", min_seconds=0.1)
    assert set(first.errors) == {str(short), str(broken)}
    assert "too short" in first.errors[str(short)]
    assert first.wave(0).shape[0] == 8000 and first.wave(1).shape[0] == 0
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    second = load_or_decode(paths, 16000, tmp_path / "cache", min_seconds=0.1)
    assert isinstance(second.samples, np.memmap)  # read from the cache, not decoded
    np.testing.assert_array_equal(second.wave(0), first.wave(0))
    # a changed sample rate or file gives a new key
    assert cache_key(paths, 8000) != cache_key(paths, 16000)
    key_before = cache_key(paths, 16000)
    write_tone(good, seconds=0.6, sr=22050)
    assert cache_key(paths, 16000) != key_before
    third = load_or_decode(paths, 16000, tmp_path / "cache", min_seconds=0.1)
    assert third.wave(0).shape[0] == 9600


def test_cached_and_uncached_decoding_agree(data_dir, tmp_path):
    paths = [str(p) for p in sorted((data_dir / "savee" / "ALL").glob("DC_a0*.flac"))]
    direct = decode_files(paths, 16000)
    load_or_decode(paths, 16000, tmp_path)
    cached = load_or_decode(paths, 16000, tmp_path)
    np.testing.assert_array_equal(np.asarray(cached.samples), direct.samples)
    np.testing.assert_array_equal(cached.offsets, direct.offsets)


# --- damage after a valid header (issue 14: "flac decoder lost sync") ------------------


def _libsndfile_reason(path) -> str:
    """What plain ``soundfile.read`` says about ``path`` (it must fail)."""
    with pytest.raises(sf.LibsndfileError) as info:
        sf.read(str(path))
    return str(info.value).split(": ", 1)[-1]


def test_flac_corrupted_mid_stream_is_a_decode_error_for_whole_file_and_block_decoding(data_dir, tmp_path):
    src = data_dir / "savee" / "ALL" / "DC_a01.flac"
    bad = corrupt_middle(src, tmp_path / "DC_a01.flac")
    header = sf.info(str(bad))  # the header is intact: the damage only shows while decoding
    assert header.frames == sf.info(str(src)).frames and header.duration > 3
    reason = _libsndfile_reason(bad)
    assert "lost sync" in reason
    with pytest.raises(AudioDecodeError) as whole:
        load_audio(bad)
    assert str(bad) in str(whole.value) and reason in str(whole.value)
    blocks = []
    with AudioStream(bad, 16000, block_seconds=0.5) as stream:  # opening succeeds
        with pytest.raises(AudioDecodeError) as streamed:
            for block in stream.blocks():
                blocks.append(block)
    assert blocks, "the first blocks (before the damage at 40 % of the file) decode"
    assert sum(map(len, blocks)) < header.frames
    assert str(bad) in str(streamed.value) and reason in str(streamed.value) and "corrupted after" in str(streamed.value)


def test_cache_lists_mid_stream_and_cut_header_flac_and_keeps_the_others(data_dir, tmp_path):
    good = [data_dir / "savee" / "ALL" / f"JE_h0{i}.flac" for i in (1, 2)]
    bad = corrupt_middle(data_dir / "savee" / "ALL" / "DC_a01.flac", tmp_path / "DC_a01.flac")
    cut = tmp_path / "cut_header.flac"
    cut.write_bytes(good[0].read_bytes()[:30])  # header cut before the audio data
    paths = [str(good[0]), str(bad), str(cut), str(good[1])]
    first = load_or_decode(paths, 16000, tmp_path / "cache")
    assert set(first.errors) == {str(bad), str(cut)}
    assert _libsndfile_reason(bad) in first.errors[str(bad)] and "cannot decode as audio" in first.errors[str(cut)]
    for i in (0, 3):
        np.testing.assert_array_equal(first.wave(i), load_audio(paths[i]))
    assert first.wave(1).shape[0] == 0 and first.wave(2).shape[0] == 0
    again = load_or_decode(paths, 16000, tmp_path / "cache")  # reused cache: same errors, same waves
    assert isinstance(again.samples, np.memmap) and again.errors == first.errors
    np.testing.assert_array_equal(again.wave(3), first.wave(3))


def test_a_damaged_cache_is_decoded_again_not_trusted(data_dir, tmp_path, caplog):
    paths = [str(p) for p in sorted((data_dir / "savee" / "ALL").glob("JK_n0[12].flac"))]
    assert len(paths) == 2
    first = load_or_decode(paths, 16000, tmp_path)
    expected = np.array(first.samples)  # a copy: the memory map's file is damaged below
    del first.samples
    npy = next(tmp_path.glob("*.npy"))
    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])  # e.g. a disk that filled up
    again = load_or_decode(paths, 16000, tmp_path)
    assert "damaged" in caplog.text
    np.testing.assert_array_equal(np.asarray(again.samples), expected)
    np.testing.assert_array_equal(again.offsets, first.offsets)
