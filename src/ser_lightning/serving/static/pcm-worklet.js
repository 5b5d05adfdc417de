// Microphone samples (at the microphone's or the AudioContext's rate) -> 16 kHz mono 16-bit
// PCM in chunks of 100 ms (ArrayBuffers). One resampler, loaded twice:
//  - by index.html as a plain script: the page reads the microphone track's frames with
//    MediaStreamTrackProcessor and resamples them on the main thread (app.js);
//  - by AudioWorklet.addModule: the fallback for browsers without MediaStreamTrackProcessor,
//    the AudioWorkletProcessor at the end of this file.
// At 16 kHz input samples pass through; otherwise a windowed-sinc low-pass (Blackman window,
// cut-off 0.9 x 8 kHz) removes what 16 kHz cannot hold and linear interpolation reads the
// filtered signal at the 16 kHz instants.
'use strict';

class Pcm16Resampler {
  // emit(buffer): called with each full chunk (an ArrayBuffer of Int16 samples) and by flush().
  constructor(inputRate, targetRate, chunkSeconds, emit) {
    this.target = targetRate || 16000;
    this.chunk = Math.round(this.target * (chunkSeconds || 0.1));
    this.step = inputRate / this.target;           // input samples per output sample
    this.emitChunk = emit;
    this.out = new Int16Array(this.chunk);
    this.n = 0;
    this.taps = null;
    if (this.step > 1.0001) {
      const half = 32, cutoff = 0.9 * 0.5 / this.step; // cycles per input sample
      this.taps = new Float32Array(2 * half + 1);
      let sum = 0;
      for (let k = -half; k <= half; k++) {
        const x = 2 * cutoff * k;
        const sinc = k === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
        const w = 0.42 + 0.5 * Math.cos(Math.PI * k / half) + 0.08 * Math.cos(2 * Math.PI * k / half);
        this.taps[k + half] = 2 * cutoff * sinc * w;
        sum += this.taps[k + half];
      }
      for (let i = 0; i < this.taps.length; i++) this.taps[i] /= sum;  // unit gain at 0 Hz
      this.hist = new Float32Array(this.taps.length);  // ring of the last inputs
      this.h = 0;
      this.prevY = 0;      // the filtered sample before the current one
      this.t = 0;          // position of the next output, in filtered samples after prevY
    }
  }

  emit(v) {
    const s = Math.max(-1, Math.min(1, v));
    this.out[this.n++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    if (this.n === this.chunk) this.flush();
  }

  // the samples not yet sent, as a (shorter) chunk
  flush() {
    if (this.n === 0) return;
    const buf = this.out.slice(0, this.n).buffer;
    this.n = 0;
    this.emitChunk(buf);
  }

  // x: Float32Array of mono samples at inputRate
  push(x) {
    if (!this.taps) {
      for (let i = 0; i < x.length; i++) this.emit(x[i]);
      return;
    }
    const taps = this.taps, len = taps.length;
    for (let i = 0; i < x.length; i++) {
      this.hist[this.h] = x[i];
      this.h = (this.h + 1) % len;
      let y = 0;
      for (let k = 0, j = this.h; k < len; k++, j = (j + 1) % len) y += taps[k] * this.hist[j];
      // outputs that fall between prevY (position 0) and y (position 1)
      while (this.t <= 1) {
        this.emit(this.prevY + (y - this.prevY) * this.t);
        this.t += this.step;
      }
      this.t -= 1;
      this.prevY = y;
    }
  }
}

if (typeof AudioWorkletProcessor === 'function') {
  // The fallback: the real-time audio graph calls process() with 128 samples at a time at
  // the AudioContext's rate; chunks are posted to the page (transferred, not copied). A
  // 'flush' message sends what is left, then 'flushed'.
  class PcmResamplerProcessor extends AudioWorkletProcessor {
    constructor(options) {
      super();
      const opts = (options && options.processorOptions) || {};
      this.resampler = new Pcm16Resampler(sampleRate, opts.targetRate, opts.chunkSeconds,
        (buf) => this.port.postMessage(buf, [buf]));
      this.port.onmessage = (e) => {
        if (e.data === 'flush') {
          this.resampler.flush();
          this.port.postMessage('flushed');
        }
      };
    }

    process(inputs) {
      const input = inputs[0];
      if (input && input.length > 0) this.resampler.push(input[0]);
      return true;
    }
  }

  registerProcessor('pcm-resampler', PcmResamplerProcessor);
}
