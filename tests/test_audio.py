import numpy as np
import pytest
import soundfile as sf

from ser_lightning.data.audio import AudioDecodeError, fit_length, load_audio, to_mono_resampled
from ser_lightning.data.cache import cache_key, decode_files, load_or_decode
from tests.conftest import write_tone


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
