"""Device-side augmentation as ``nn.Module``s, applied to training batches only.

Every module draws its random values per example (never one draw for the whole batch)
and works on the batch where it is (CPU or GPU). The DataModule applies the waveform
chain before the feature front-end and the spectrogram chain after it, only while the
trainer is training: validation, test and prediction data are never augmented.
"""

from __future__ import annotations

import inspect
import math
from fractions import Fraction

import torch
import torchaudio
from torch import nn

from ser_lightning.errors import ConfigError


def _apply_mask(batch_size: int, p: float, device: torch.device) -> torch.Tensor:
    """``[batch]`` bool: which examples an augmentation with probability ``p`` touches."""
    return torch.rand(batch_size, device=device) < p


def _uniform(batch_size: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    return low + (high - low) * torch.rand(batch_size, device=device)


class AdditiveNoise(nn.Module):
    """Add white Gaussian noise at a random signal-to-noise ratio per example.

    SNR (dB) = 10 log10(P_signal / P_noise), with P the mean power of the example.

    Args:
        snr_db: ``(low, high)`` range of the SNR in dB, drawn uniformly per example.
        p: probability that an example is augmented.
    """

    def __init__(self, snr_db: tuple[float, float] = (10.0, 40.0), p: float = 0.5):
        super().__init__()
        self.snr_db = tuple(snr_db)
        self.p = p

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``[batch, time]`` -> ``[batch, time]``."""
        b = waves.shape[0]
        snr = _uniform(b, *self.snr_db, waves.device)
        signal_power = waves.pow(2).mean(dim=-1).clamp_min(1e-10)
        noise_std = torch.sqrt(signal_power / (10.0 ** (snr / 10.0)))
        noise = torch.randn_like(waves) * noise_std[:, None]
        on = _apply_mask(b, self.p, waves.device)[:, None]
        return torch.where(on, waves + noise, waves)


class RandomGain(nn.Module):
    """Scale each example by a random gain in dB (amplitude factor ``10^(g/20)``).

    Nothing is clipped: with positive gains samples can exceed +-1, which the float
    feature front-end takes as it is (the later channel augmentations do not clip either).

    Args:
        gain_db: ``(low, high)`` in dB, drawn uniformly per example.
        p: probability that an example is augmented.
    """

    def __init__(self, gain_db: tuple[float, float] = (-6.0, 6.0), p: float = 0.5):
        super().__init__()
        self.gain_db = tuple(gain_db)
        self.p = p

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``[batch, time]`` -> ``[batch, time]``."""
        b = waves.shape[0]
        gain = 10.0 ** (_uniform(b, *self.gain_db, waves.device) / 20.0)
        gain = torch.where(_apply_mask(b, self.p, waves.device), gain, torch.ones_like(gain))
        return waves * gain[:, None]


def _crop_or_pad(waves: torch.Tensor, length: int, random_offset: bool) -> torch.Tensor:
    """``[batch, n]`` -> ``[batch, length]``: a crop (random start per example when
    ``random_offset``, else from the start) or zero padding at the end."""
    b, n = waves.shape
    if n < length:
        return nn.functional.pad(waves, (0, length - n))
    if n == length or not random_offset:
        return waves[:, :length]
    start = (torch.rand(b, device=waves.device) * (n - length + 1)).long().clamp_max(n - length)
    idx = start[:, None] + torch.arange(length, device=waves.device)[None, :]
    return torch.gather(waves, 1, idx)


def _ratio(value: float, max_denominator: int = 20) -> tuple[int, int]:
    """Small-integer ``(p, q)`` with ``p / q ~= value``: resampling by small integers keeps
    torchaudio's sinc kernel short (rates with no common factor make it huge)."""
    frac = Fraction(value).limit_denominator(max_denominator)
    return frac.numerator, frac.denominator


class TimeShift(nn.Module):
    """Shift each example in time by a random amount, filling with zeros (no wrap-around).

    Args:
        max_shift_seconds: shifts are drawn uniformly in ``[-max, +max]`` seconds.
        sample_rate: Hz.
        p: probability that an example is shifted.
    """

    def __init__(self, max_shift_seconds: float = 0.25, sample_rate: int = 16000, p: float = 0.5):
        super().__init__()
        self.max_shift = int(round(max_shift_seconds * sample_rate))
        self.p = p

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``[batch, time]`` -> ``[batch, time]``."""
        b, n = waves.shape
        shift = ((torch.rand(b, device=waves.device) * 2 - 1) * self.max_shift).round().long()
        shift = torch.where(_apply_mask(b, self.p, waves.device), shift, torch.zeros_like(shift))
        src = torch.arange(n, device=waves.device)[None, :] - shift[:, None]  # output t reads input t - shift
        valid = (src >= 0) & (src < n)
        return torch.where(valid, torch.gather(waves, 1, src.clamp(0, n - 1)), torch.zeros_like(waves))


class SpeedPerturb(nn.Module):
    """Speed perturbation (Ko et al., 2015, Interspeech): play each example at a random
    factor from ``factors`` (tempo and pitch change together), by resampling.

    A factor ``f`` resamples from ``f * k`` to ``k`` (``torchaudio.functional.resample``,
    on the batch's device), so ``n`` samples become ``n / f``; the result is cropped at a
    random offset per example (``f < 1``) or zero-padded (``f > 1``) back to ``n``.
    Examples are grouped by factor, one resampling call per group.

    Args:
        factors: speed factors to draw from uniformly, e.g. ``(0.9, 1.0, 1.1)``.
        p: probability that an example is perturbed at all.
    """

    def __init__(self, factors: tuple[float, ...] = (0.9, 1.0, 1.1), p: float = 0.5):
        super().__init__()
        if not factors or min(factors) <= 0:
            raise ConfigError(f"augment.speed.factors must be positive, got {factors}")
        self.factors = tuple(float(f) for f in factors)
        self.p = p

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``[batch, time]`` -> ``[batch, time]``."""
        b, n = waves.shape
        choice = torch.randint(len(self.factors), (b,), device=waves.device)
        choice = torch.where(_apply_mask(b, self.p, waves.device), choice, torch.full_like(choice, -1))
        out = waves.clone()
        for k, factor in enumerate(self.factors):
            rows = (choice == k).nonzero(as_tuple=True)[0]
            if factor == 1.0 or rows.numel() == 0:
                continue
            orig, new = _ratio(factor)
            moved = torchaudio.functional.resample(waves[rows], orig, new)
            out[rows] = _crop_or_pad(moved, n, random_offset=True)
        return out


class PitchShift(nn.Module):
    """Shift the pitch of each example by a random number of semitones, keeping its
    duration: phase-vocoder time stretch by ``r = 2^(s/12)``, then resampling by ``1/r``
    (the method of ``torchaudio.functional.pitch_shift``, with ``r`` rounded to a
    small-integer ratio, within 0.05 semitone for |s| <= 2, so resampling stays cheap).

    Examples are grouped by their shift, one call per group, on the batch's device.

    Args:
        semitones: shifts to draw from uniformly, e.g. ``(-2, -1, 1, 2)``.
        n_fft: STFT size of the phase vocoder in samples (hop ``n_fft // 4``).
        p: probability that an example is shifted.
    """

    def __init__(self, semitones: tuple[float, ...] = (-2.0, -1.0, 1.0, 2.0), n_fft: int = 512, p: float = 0.3):
        super().__init__()
        if not semitones:
            raise ConfigError("augment.pitch.semitones is empty")
        self.semitones = tuple(float(s) for s in semitones)
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.p = p
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        phase_advance = torch.linspace(0, torch.pi * self.hop, n_fft // 2 + 1)[..., None]
        self.register_buffer("phase_advance", phase_advance, persistent=False)

    def shift(self, waves: torch.Tensor, semitones: float) -> torch.Tensor:
        """Pitch-shift all of ``waves [batch, time]`` by ``semitones``; same shape."""
        n = waves.shape[-1]
        up, down = _ratio(2.0 ** (semitones / 12.0))
        window = self.window.to(waves.device)
        spec = torch.stft(waves, self.n_fft, self.hop, window=window, return_complex=True)
        stretched = torchaudio.functional.phase_vocoder(spec, down / up, self.phase_advance.to(waves.device))
        longer = torch.istft(stretched, self.n_fft, self.hop, window=window, length=int(round(n * up / down)))
        return _crop_or_pad(torchaudio.functional.resample(longer, up, down), n, random_offset=False)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``[batch, time]`` -> ``[batch, time]``."""
        b = waves.shape[0]
        choice = torch.randint(len(self.semitones), (b,), device=waves.device)
        choice = torch.where(_apply_mask(b, self.p, waves.device), choice, torch.full_like(choice, -1))
        out = waves.clone()
        for k, steps in enumerate(self.semitones):
            rows = (choice == k).nonzero(as_tuple=True)[0]
            if steps == 0 or rows.numel() == 0:
                continue
            out[rows] = self.shift(waves[rows], steps)
        return out


# --- recording channel: equaliser, room, telephone ----------------------------------------


def _check_probability(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"augment.{name}.p must be in [0, 1], got {p}")


def _check_band(name: str, band: tuple[float, float] | None, sample_rate: int) -> tuple[float, float] | None:
    """A ``(low, high)`` frequency range in Hz with ``0 < low <= high < sample_rate / 2``."""
    if band is None:
        return None
    low, high = (float(v) for v in band)
    if not 0.0 < low <= high < sample_rate / 2:
        raise ConfigError(f"augment.{name} must satisfy 0 < low <= high < Nyquist ({sample_rate / 2:g} Hz at "
                          f"data.sample_rate={sample_rate}), got {list(band)} Hz")
    return low, high


def _check_range(name: str, values: tuple[float, float], minimum: float = float("-inf")) -> tuple[float, float]:
    low, high = (float(v) for v in values)
    if not minimum <= low <= high:
        raise ConfigError(f"augment.{name} must be a range [low, high] with {minimum:g} <= low <= high, got {list(values)}")
    return low, high


def _log_uniform(batch_size: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    """Frequencies drawn uniformly on a log scale (octaves are equally likely)."""
    return torch.exp(_uniform(batch_size, math.log(low), math.log(high), device))


def _biquad_coefficients(kind: str, freq_hz: torch.Tensor, sample_rate: int, q: torch.Tensor | float = 0.707,
                         gain_db: torch.Tensor | float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example biquad ``(b, a)``, each ``[batch, 3]``, normalised so ``a[:, 0] = 1``.

    The formulas of R. Bristow-Johnson's "Audio EQ Cookbook", as in
    ``torchaudio.functional.highpass_biquad`` / ``lowpass_biquad`` / ``equalizer_biquad``
    (which take one filter for the whole batch; here ``freq_hz [batch]`` gives a row each).
    ``kind``: ``"highpass"``, ``"lowpass"`` or ``"peaking"`` (gain ``gain_db`` at ``freq_hz``).
    """
    q = torch.as_tensor(q, dtype=freq_hz.dtype, device=freq_hz.device).expand_as(freq_hz)
    w0 = 2 * math.pi * freq_hz / sample_rate
    cos, alpha = torch.cos(w0), torch.sin(w0) / (2 * q)
    if kind == "highpass":
        b = torch.stack([(1 + cos) / 2, -(1 + cos), (1 + cos) / 2], dim=-1)
        a = torch.stack([1 + alpha, -2 * cos, 1 - alpha], dim=-1)
    elif kind == "lowpass":
        b = torch.stack([(1 - cos) / 2, 1 - cos, (1 - cos) / 2], dim=-1)
        a = torch.stack([1 + alpha, -2 * cos, 1 - alpha], dim=-1)
    elif kind == "peaking":
        amp = 10.0 ** (torch.as_tensor(gain_db, dtype=freq_hz.dtype, device=freq_hz.device).expand_as(freq_hz) / 40.0)
        b = torch.stack([1 + alpha * amp, -2 * cos, 1 - alpha * amp], dim=-1)
        a = torch.stack([1 + alpha / amp, -2 * cos, 1 - alpha / amp], dim=-1)
    else:
        raise ValueError(f"unknown biquad kind {kind!r}")
    return b / a[:, :1], a / a[:, :1]


def _filter(waves: torch.Tensor, coefficients: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``[batch, time]`` filtered by its own biquad row, one batched ``lfilter`` call.
    ``clamp=False``: lfilter would otherwise clip to [-1, 1], and a gain augmentation
    before this one may legitimately push samples beyond."""
    b, a = (c.to(waves.dtype) for c in coefficients)
    return torchaudio.functional.lfilter(waves, a, b, clamp=False, batching=True)


def _on_selected(waves: torch.Tensor, p: float, transform) -> torch.Tensor:
    """``[batch, time]`` with ``transform`` (``[k, time]`` -> ``[k, time]``) applied to the
    examples an augmentation with probability ``p`` touches, and only to them (the others
    cost nothing); ``waves`` itself is left unchanged."""
    rows = _apply_mask(waves.shape[0], p, waves.device).nonzero(as_tuple=True)[0]
    if rows.numel() == 0:
        return waves
    out = waves.clone()
    out[rows] = transform(waves[rows])
    return out


class RandomEqualizer(nn.Module):
    """A random microphone / channel frequency response per example: band limits and
    peaking bands, as different recording set-ups impose on the same voice.

    Per touched example, drawn independently (frequencies log-uniformly, in Hz):
    a high-pass cutoff in ``highpass_hz``, a low-pass cutoff in ``lowpass_hz`` (both
    2nd-order Butterworth, Q = 0.707), and ``num_peaks`` (an integer drawn in the range)
    peaking bands at a centre in ``peak_hz`` with gain in ``peak_gain_db`` (dB) and Q in
    ``peak_q``. Coefficients follow the Audio EQ Cookbook (Bristow-Johnson), as
    torchaudio's ``*_biquad`` functions; each stage is one ``torchaudio.functional.lfilter``
    call with a coefficient row per example (``batching=True``), on the batch's device.
    The filters are stable for every allowed draw (cutoffs strictly inside (0, Nyquist)),
    so the output is finite; it is not clipped.

    Args:
        highpass_hz: ``(low, high)`` range of the high-pass cutoff in Hz, or ``None`` for none.
        lowpass_hz: ``(low, high)`` range of the low-pass cutoff in Hz, or ``None`` for none.
        num_peaks: ``(min, max)`` number of peaking bands per example (0 for none).
        peak_hz: ``(low, high)`` range of a peaking band's centre in Hz.
        peak_gain_db: ``(low, high)`` range of its gain in dB (negative: a notch).
        peak_q: ``(low, high)`` range of its quality factor.
        sample_rate: Hz.
        p: probability that an example is equalised.

    Raises:
        ConfigError: a frequency range not inside (0, Nyquist), a high-pass range reaching
            the low-pass range, a count or Q range below 0, or ``p`` outside [0, 1].
    """

    def __init__(self, highpass_hz: tuple[float, float] | None = (50.0, 400.0),
                 lowpass_hz: tuple[float, float] | None = (3000.0, 7500.0), num_peaks: tuple[int, int] = (1, 2),
                 peak_hz: tuple[float, float] = (150.0, 5000.0), peak_gain_db: tuple[float, float] = (-12.0, 12.0),
                 peak_q: tuple[float, float] = (0.5, 2.0), sample_rate: int = 16000, p: float = 0.5):
        super().__init__()
        _check_probability("eq", p)
        self.highpass_hz = _check_band("eq.highpass_hz", highpass_hz, sample_rate)
        self.lowpass_hz = _check_band("eq.lowpass_hz", lowpass_hz, sample_rate)
        if self.highpass_hz and self.lowpass_hz and self.highpass_hz[1] >= self.lowpass_hz[0]:
            raise ConfigError(f"augment.eq.highpass_hz {list(highpass_hz)} must lie below augment.eq.lowpass_hz {list(lowpass_hz)}")
        low, high = _check_range("eq.num_peaks", num_peaks, minimum=0)
        if low != int(low) or high != int(high):
            raise ConfigError(f"augment.eq.num_peaks must be whole numbers, got {list(num_peaks)}")
        self.num_peaks = (int(low), int(high))
        self.peak_hz = _check_band("eq.peak_hz", peak_hz, sample_rate)
        self.peak_gain_db = _check_range("eq.peak_gain_db", peak_gain_db)
        self.peak_q = _check_range("eq.peak_q", peak_q, minimum=1e-3)
        self.sample_rate, self.p = sample_rate, p

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``[batch, time]`` -> ``[batch, time]``, same dtype and device."""
        return _on_selected(waves, self.p, self._equalise)

    def _equalise(self, x: torch.Tensor) -> torch.Tensor:
        k, device, sr = x.shape[0], x.device, self.sample_rate
        if self.highpass_hz:
            x = _filter(x, _biquad_coefficients("highpass", _log_uniform(k, *self.highpass_hz, device), sr))
        if self.lowpass_hz:
            x = _filter(x, _biquad_coefficients("lowpass", _log_uniform(k, *self.lowpass_hz, device), sr))
        count = torch.randint(self.num_peaks[0], self.num_peaks[1] + 1, (k,), device=device)
        for band in range(self.num_peaks[1]):
            # Examples with fewer bands get 0 dB here: the peaking biquad is then exactly b = a (identity).
            gain = torch.where(band < count, _uniform(k, *self.peak_gain_db, device), torch.zeros(k, device=device))
            coefficients = _biquad_coefficients("peaking", _log_uniform(k, *self.peak_hz, device), sr,
                                                q=_uniform(k, *self.peak_q, device), gain_db=gain)
            x = _filter(x, coefficients)
        return x


def _fast_fft_length(n: int) -> int:
    """The smallest ``m >= n`` whose only prime factors are 2, 3 and 5 (fast FFT sizes)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


class SyntheticReverb(nn.Module):
    """Room reverberation: convolve each example with its own synthetic room impulse
    response (RIR), keeping the clip's length and loudness.

    The RIR is the statistical model of a diffuse late reverberation: Gaussian noise
    under an exponential energy decay of 60 dB over the reverberation time RT60 (Polack,
    1993, Applied Acoustics 38; the diffuse-tail model of Lehmann & Johansson, 2008, JASA
    124(1)): ``h[t] = n[t] * 10^(-3 t / RT60)``, ``n ~ N(0, 1)``. The direct path is a unit
    impulse at ``t = 0`` (so the speech stays time-aligned), the tail starts after a
    random pre-delay, and it is scaled so the direct-to-reverberant energy ratio
    (DRR, dB) is the drawn value. Convolution: ``torchaudio.functional.fftconvolve``,
    the tail past the clip's end is cut; the result is scaled back to the example's RMS.
    A generated RIR needs no new dependency and runs batched on the device; an image-source
    simulator (pyroomacoustics) would run per room on the CPU in NumPy, and early
    reflections matter less for a random-channel augmentation than RT60 and DRR do.

    Args:
        rt60_seconds: ``(low, high)`` range of RT60 in seconds, drawn uniformly per example.
        drr_db: ``(low, high)`` range of the direct-to-reverberant ratio in dB (lower: more reverberant).
        predelay_seconds: ``(low, high)`` range of the gap between direct path and tail, seconds.
        sample_rate: Hz.
        p: probability that an example is reverberated.

    Raises:
        ConfigError: RT60 not positive, a negative pre-delay, a reversed range, or ``p`` outside [0, 1].
    """

    def __init__(self, rt60_seconds: tuple[float, float] = (0.1, 0.8), drr_db: tuple[float, float] = (0.0, 15.0),
                 predelay_seconds: tuple[float, float] = (0.0, 0.02), sample_rate: int = 16000, p: float = 0.3):
        super().__init__()
        _check_probability("reverb", p)
        self.rt60 = _check_range("reverb.rt60_seconds", rt60_seconds, minimum=1e-3)
        self.drr_db = _check_range("reverb.drr_db", drr_db)
        self.predelay = _check_range("reverb.predelay_seconds", predelay_seconds, minimum=0.0)
        self.sample_rate, self.p = sample_rate, p

    def impulse_responses(self, count: int, length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``[count, length]`` random RIRs (direct path ``h[:, 0] = 1``), one per row."""
        t = torch.arange(length, device=device, dtype=dtype)[None, :] / self.sample_rate  # seconds
        rt60 = _uniform(count, *self.rt60, device).to(dtype)[:, None]
        predelay = _uniform(count, *self.predelay, device).to(dtype)[:, None]
        tail = torch.randn(count, length, device=device, dtype=dtype) * 10.0 ** (-3.0 * t / rt60)
        tail = torch.where(t > predelay, tail, torch.zeros_like(tail))  # silence up to the first reflections
        tail[:, 0] = 0.0
        drr = _uniform(count, *self.drr_db, device).to(dtype)[:, None]
        tail_energy = tail.pow(2).sum(dim=-1, keepdim=True).clamp_min(1e-12)
        tail = tail * torch.sqrt(10.0 ** (-drr / 10.0) / tail_energy)  # direct energy is 1
        tail[:, 0] = 1.0
        return tail

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``[batch, time]`` -> ``[batch, time]``, same dtype and device."""
        return _on_selected(waves, self.p, self._reverberate)

    def _reverberate(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        # Output sample t only sees h[0..t]: an RIR longer than the clip changes nothing.
        length = max(1, min(n, int(math.ceil(self.rt60[1] * self.sample_rate))))
        rir = self.impulse_responses(x.shape[0], length, x.device, x.dtype)
        # fftconvolve transforms n + length - 1 points: zero-pad the RIR so that is a 2-3-5-smooth
        # size (4x faster on the CPU than a size with a large prime factor, same result).
        rir = nn.functional.pad(rir, (0, _fast_fft_length(n + length - 1) - (n + length - 1)))
        wet = torchaudio.functional.fftconvolve(x, rir)[:, :n]
        rms_in = x.pow(2).mean(dim=-1, keepdim=True).sqrt()
        rms_out = wet.pow(2).mean(dim=-1, keepdim=True).sqrt().clamp_min(1e-8)
        return wet * (rms_in / rms_out)


class TelephoneChannel(nn.Module):
    """A narrow-band telephone line: 8 kHz sampling, the 300-3400 Hz voice band and
    8-bit mu-law companding (ITU-T G.711 / G.712 nominal values).

    Per touched example: resample to 8 kHz (``torchaudio.functional.resample``, whose
    anti-aliasing low-pass removes everything above 4 kHz), band-pass with a high-pass
    cutoff drawn in ``low_hz`` and a low-pass cutoff drawn in ``high_hz`` (each edge two
    cascaded Butterworth biquads, 24 dB/octave; the draw mimics handsets and lines that
    differ around the nominal band), mu-law encode / decode with ``quantization_channels``
    levels (``torchaudio.functional.mu_law_encoding`` / ``mu_law_decoding``; mu = channels - 1,
    255 for G.711), and resample back to ``sample_rate`` at the same length. The codec sees
    each example scaled to peak 1 (like a line's level control) and the original scale is
    restored afterwards, so loudness differences from earlier augmentations survive.

    Args:
        low_hz: ``(low, high)`` range of the lower band edge in Hz.
        high_hz: ``(low, high)`` range of the upper band edge in Hz (below 4000 Hz).
        quantization_channels: mu-law levels (256: 8 bits).
        sample_rate: Hz of the input (at least 8000).
        p: probability that an example goes through the telephone.

    Raises:
        ConfigError: ``sample_rate`` below 8000 Hz, band edges not inside (0, 4000) Hz or
            overlapping, fewer than 2 quantisation levels, or ``p`` outside [0, 1].
    """

    PHONE_RATE = 8000  #: Hz, narrow-band telephony

    def __init__(self, low_hz: tuple[float, float] = (250.0, 350.0), high_hz: tuple[float, float] = (3000.0, 3400.0),
                 quantization_channels: int = 256, sample_rate: int = 16000, p: float = 0.2):
        super().__init__()
        _check_probability("telephone", p)
        if sample_rate < self.PHONE_RATE:
            raise ConfigError(f"augment.telephone needs data.sample_rate >= {self.PHONE_RATE} Hz, got {sample_rate}")
        self.low_hz = _check_band("telephone.low_hz", low_hz, self.PHONE_RATE)
        self.high_hz = _check_band("telephone.high_hz", high_hz, self.PHONE_RATE)
        if self.low_hz[1] >= self.high_hz[0]:
            raise ConfigError(f"augment.telephone.low_hz {list(low_hz)} must lie below augment.telephone.high_hz {list(high_hz)}")
        if quantization_channels < 2:
            raise ConfigError(f"augment.telephone.quantization_channels must be >= 2, got {quantization_channels}")
        self.quantization_channels, self.sample_rate, self.p = int(quantization_channels), sample_rate, p

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``[batch, time]`` -> ``[batch, time]``, same dtype and device."""
        return _on_selected(waves, self.p, self._transmit)

    def _transmit(self, x: torch.Tensor) -> torch.Tensor:
        dtype, (k, n), device = x.dtype, x.shape, x.device
        if self.sample_rate != self.PHONE_RATE:
            x = torchaudio.functional.resample(x, self.sample_rate, self.PHONE_RATE)
        highpass = _biquad_coefficients("highpass", _uniform(k, *self.low_hz, device), self.PHONE_RATE)
        lowpass = _biquad_coefficients("lowpass", _uniform(k, *self.high_hz, device), self.PHONE_RATE)
        for coefficients in (highpass, highpass, lowpass, lowpass):
            x = _filter(x, coefficients)
        peak = x.abs().amax(dim=-1, keepdim=True).clamp_min(1e-8)
        codes = torchaudio.functional.mu_law_encoding((x / peak).clamp(-1.0, 1.0), self.quantization_channels)
        x = torchaudio.functional.mu_law_decoding(codes, self.quantization_channels).to(dtype) * peak
        if self.sample_rate != self.PHONE_RATE:
            x = _crop_or_pad(torchaudio.functional.resample(x, self.PHONE_RATE, self.sample_rate), n, random_offset=False)
        return x


class Mixup(nn.Module):
    """Mixup (Zhang et al., 2018, ICLR) on feature batches, per example.

    Example ``i`` is mixed with a random partner ``j`` (a permutation of the batch):
    ``x_i' = lam_i x_i + (1 - lam_i) x_j`` and the target becomes the same mixture of
    one-hot labels. ``lam_i ~ Beta(alpha, alpha)`` per example, folded to
    ``max(lam, 1 - lam)`` so each example keeps its own label as the larger part;
    examples not drawn (probability ``1 - p``) keep ``lam = 1``.

    Args:
        alpha: Beta distribution parameter.
        p: probability that an example is mixed.
    """

    def __init__(self, alpha: float = 0.4, p: float = 0.5):
        super().__init__()
        if alpha <= 0:
            raise ConfigError(f"augment.mixup.alpha must be > 0, got {alpha}")
        self.alpha, self.p = alpha, p

    def forward(self, feats: torch.Tensor, targets: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: feats ``[batch, ...]``, targets ``[batch]`` class indices.

        Returns: mixed feats (same shape) and soft targets ``[batch, n_classes]``.
        """
        b, device = feats.shape[0], feats.device
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((b,)).to(device)
        lam = torch.maximum(lam, 1 - lam)
        lam = torch.where(_apply_mask(b, self.p, device), lam, torch.ones_like(lam))
        perm = torch.randperm(b, device=device)
        shape = (b,) + (1,) * (feats.dim() - 1)
        mixed = lam.view(shape) * feats + (1 - lam.view(shape)) * feats[perm]
        onehot = nn.functional.one_hot(targets, n_classes).to(feats.dtype)
        soft = lam[:, None] * onehot + (1 - lam[:, None]) * onehot[perm]
        return mixed, soft


def _mask_along(feats: torch.Tensor, max_width: int, n_masks: int, dim: int, on: torch.Tensor) -> torch.Tensor:
    """Zero ``n_masks`` random bands of width ``[0, max_width]`` along ``dim`` per example."""
    b, size = feats.shape[0], feats.shape[dim]
    if max_width <= 0 or n_masks <= 0 or size == 0:
        return feats
    idx = torch.arange(size, device=feats.device)
    keep = torch.ones(b, size, dtype=torch.bool, device=feats.device)
    for _ in range(n_masks):
        width = (torch.rand(b, device=feats.device) * (min(max_width, size) + 1)).long()
        start = (torch.rand(b, device=feats.device) * (size - width + 1).float()).long()
        band = (idx[None, :] >= start[:, None]) & (idx[None, :] < (start + width)[:, None])
        keep &= ~(band & on[:, None])
    shape = [b, 1, 1]
    shape[dim] = size
    # Masked cells take the example's mean (0 after per-utterance normalisation).
    fill = feats.mean(dim=(1, 2), keepdim=True)
    return torch.where(keep.view(shape), feats, fill)


class SpecAugment(nn.Module):
    """SpecAugment frequency and time masking (Park et al., 2019, Interspeech).

    Masks are drawn independently per example; masked cells are set to the example's
    mean value.

    Args:
        freq_mask: maximum width of a frequency mask in bins (F in the paper).
        time_mask: maximum width of a time mask in frames (T in the paper).
        num_freq_masks, num_time_masks: masks of each kind per example.
        p: probability that an example is masked at all.
    """

    def __init__(self, freq_mask: int = 8, time_mask: int = 20, num_freq_masks: int = 2, num_time_masks: int = 2, p: float = 1.0):
        super().__init__()
        self.freq_mask, self.time_mask = freq_mask, time_mask
        self.num_freq_masks, self.num_time_masks = num_freq_masks, num_time_masks
        self.p = p

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``[batch, n_features, frames]`` -> same shape."""
        on = _apply_mask(feats.shape[0], self.p, feats.device)
        feats = _mask_along(feats, self.freq_mask, self.num_freq_masks, 1, on)
        return _mask_along(feats, self.time_mask, self.num_time_masks, 2, on)


#: Name in ``conf/augment/*.yaml`` -> module class, per stage.
#: ``sample_rate`` is passed to the modules that take it (from ``data.sample_rate``).
WAVEFORM_AUGMENTS = {"noise": AdditiveNoise, "gain": RandomGain, "time_shift": TimeShift, "speed": SpeedPerturb, "pitch": PitchShift,
                     "eq": RandomEqualizer, "reverb": SyntheticReverb, "telephone": TelephoneChannel}
SPECTROGRAM_AUGMENTS = {"specaugment": SpecAugment}
#: Augmentations that also change the targets (soft labels).
TARGET_AUGMENTS = {"mixup": Mixup}


def build_chain(cfg: dict | None, registry: dict[str, type[nn.Module]], sample_rate: int | None = None) -> nn.Sequential:
    """Build the enabled augmentations of ``registry`` from an augment config.

    A config entry is ``{name: {p: ..., <module args>...}}``; an entry that is ``None``,
    has ``enabled: false`` or ``p: 0`` is left out. Order follows the config.

    Raises:
        ValueError: an entry names no known augmentation.
    """
    modules = []
    for name in enabled_augments(cfg, registry):
        args = dict(cfg[name])
        args.pop("enabled", None)
        if sample_rate is not None and "sample_rate" in inspect.signature(registry[name]).parameters:
            args.setdefault("sample_rate", sample_rate)
        modules.append(registry[name](**args))
    return nn.Sequential(*modules)


def enabled_augments(cfg, registry: dict[str, type[nn.Module]]) -> list[str]:
    """The entries of an augment config (a dict or DictConfig) that :func:`build_chain`
    builds from ``registry``, in config order: not ``None``, no ``enabled: false``, ``p > 0``.

    Raises:
        ConfigError: an entry names no known augmentation.
    """
    all_known = {**WAVEFORM_AUGMENTS, **SPECTROGRAM_AUGMENTS, **TARGET_AUGMENTS}
    names = []
    for name, args in (cfg or {}).items():
        if name not in all_known:
            raise ConfigError(f"augment.{name} is unknown; allowed: {sorted(all_known)}")
        if name not in registry or not args:
            continue
        if not args.get("enabled", True) or args.get("p", 1.0) <= 0:
            continue
        names.append(name)
    return names


def descriptor_augment_problem(kind: str | None, augment) -> str | None:
    """Why ``augment`` cannot train a model on openSMILE descriptors (``features=egemaps|compare``),
    or ``None``: their descriptors are computed once per file and cached, so a waveform
    augmentation cannot change them. Those feature groups pick ``augment=specaugment``
    themselves (conf/features/egemaps.yaml); this is what an explicit waveform choice gets.

    Raises:
        ConfigError: an entry names no known augmentation.
    """
    if kind not in ("egemaps", "compare"):
        return None
    on = enabled_augments(augment, WAVEFORM_AUGMENTS)
    if not on:
        return None
    return (f"features={kind}: the openSMILE descriptors are computed once per file and cached, so waveform "
            f"augmentation ({', '.join(f'augment.{k}' for k in on)}) cannot change them; use augment=specaugment "
            f"(time/feature masks on the descriptors; features={kind} picks it when augment= is not given) or "
            f"augment=none, or set {' '.join(f'augment.{k}=null' for k in on)}")
