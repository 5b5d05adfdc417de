// The page of serve.py: the microphone as 16 kHz 16-bit PCM (read by MediaStreamTrackProcessor,
// or by an AudioWorklet where the browser lacks it; the resampler is pcm-worklet.js) to
// WebSocket /stream, a live timeline of speech segments, and file uploads to POST /predict.
// Plain JavaScript, no build step, nothing loaded from another site.
'use strict';

const PALETTE = {
  neutral: '#b0b0b0', calm: '#7fc8c0', happy: '#f3c623', sad: '#4a7bd0', angry: '#d8433b',
  fear: '#8e5bbf', fearful: '#8e5bbf', disgust: '#5a9e4b', surprise: '#f08a24', surprised: '#f08a24',
  boredom: '#a58b6f', silence: '#e6e6e6', uncertain: '#d9d2c3',
};
const state = { classes: [], rate: 16000, keyRequired: false, ws: null, ctx: null, node: null, media: null,
                seconds: 0, segments: new Map(), started: false, stopAt: null };
const $ = (id) => document.getElementById(id);

function colour(label) {
  if (PALETTE[label]) return PALETTE[label];
  let h = 0;
  for (const ch of String(label)) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return `hsl(${h}, 55%, 60%)`;
}

function setStatus(text, error) {
  const el = $('status');
  el.textContent = text;
  el.className = error ? 'error' : '';
}

function bars(probabilities) {
  const box = document.createElement('div');
  box.className = 'bars';
  const entries = Object.entries(probabilities || {}).sort((a, b) => b[1] - a[1]);
  for (const [name, p] of entries) {
    const row = document.createElement('div');
    row.className = 'row';
    row.dataset.cls = name;
    row.innerHTML = '<b></b><i></i><span></span>';
    row.querySelector('b').textContent = name;
    const bar = row.querySelector('i');
    bar.style.width = `${Math.round(p * 300)}px`;
    bar.style.background = colour(name);
    row.querySelector('span').textContent = `${(p * 100).toFixed(1)} %`;
    box.appendChild(row);
  }
  return box;
}

function headers() {
  const key = $('key').value;
  return key ? { 'X-API-Key': key } : {};
}

async function loadModel() {
  try {
    const r = await fetch('/health');
    const h = await r.json();
    state.classes = h.classes;
    state.rate = h.stream_sample_rate;
    state.keyRequired = h.key_required;
    const about = h.model && h.model.name ? `Model: ${h.model.name}` +
      (h.model.licence ? ` (licence ${h.model.licence}${h.model.card ? `, card: ${h.model.card}` : ''})` : '') + '. ' : '';
    $('model').textContent = about + `Classes: ${h.classes.join(', ')}; windows of ${h.window_seconds} s; ` +
      `voice activity detection: ${h.vad}.`;
    $('keybox').hidden = !h.key_required;
    const legend = $('legend');
    legend.textContent = '';
    for (const c of [...h.classes, 'uncertain']) {
      const s = document.createElement('span');
      s.innerHTML = '<i></i>';
      s.querySelector('i').style.background = colour(c);
      s.appendChild(document.createTextNode(c));
      legend.appendChild(s);
    }
  } catch (e) {
    $('model').textContent = 'the server does not answer /health';
  }
}

// --- the live timeline -------------------------------------------------------------------

function span() { return Math.max(10, Math.ceil(state.seconds / 10) * 10); }

function redraw() {
  const total = span();
  for (const seg of state.segments.values()) {
    const end = seg.end !== undefined ? seg.end : state.seconds;
    seg.block.style.left = `${(100 * seg.start / total).toFixed(3)}%`;
    seg.block.style.width = `${(100 * Math.max(end - seg.start, 0.05) / total).toFixed(3)}%`;
  }
  const axis = $('axis');
  axis.textContent = '';
  const step = total <= 30 ? 5 : total <= 120 ? 15 : 60;
  for (let t = 0; t <= total; t += step) {
    const s = document.createElement('span');
    s.style.left = `${(100 * t / total)}%`;
    s.textContent = `${t} s`;
    axis.appendChild(s);
  }
}

function segmentStart(msg) {
  const block = document.createElement('div');
  block.className = 'block open';
  block.textContent = '…';
  $('timeline').appendChild(block);
  state.segments.set(msg.index, { start: msg.start, block });
  redraw();
}

function segmentEnd(msg) {
  let seg = state.segments.get(msg.index);
  if (!seg) { segmentStart(msg); seg = state.segments.get(msg.index); }
  seg.end = msg.end;
  const block = seg.block;
  block.className = 'block segment';
  block.dataset.label = msg.label;
  block.dataset.start = msg.start;
  block.dataset.end = msg.end;
  block.style.background = colour(msg.label);
  const conf = msg.confidence == null ? '' : ` ${(msg.confidence * 100).toFixed(0)} %`;
  block.textContent = `${msg.label}${conf}`;
  block.title = `${msg.start.toFixed(2)}–${msg.end.toFixed(2)} s: ${msg.label}${conf}`;
  const li = document.createElement('li');
  li.className = 'segment';
  li.dataset.label = msg.label;
  li.dataset.index = msg.index;
  li.innerHTML = '<span></span>';
  li.querySelector('span').textContent = `${msg.start.toFixed(2)}–${msg.end.toFixed(2)} s: ${msg.label.toUpperCase()}${conf} ` +
    `(${msg.windows} window${msg.windows === 1 ? '' : 's'})`;
  li.appendChild(bars(msg.probabilities));
  $('segments').appendChild(li);
  redraw();
}

function onMessage(event) {
  const msg = JSON.parse(event.data);
  if (msg.type === 'window') {
    state.seconds = Math.max(state.seconds, msg.end);
    if (msg.probabilities && Object.keys(msg.probabilities).length) {
      const now = $('now');
      now.textContent = '';
      now.appendChild(bars(msg.probabilities));
    }
    redraw();
  } else if (msg.type === 'segment_start') {
    segmentStart(msg);
  } else if (msg.type === 'segment') {
    state.seconds = Math.max(state.seconds, msg.end);
    segmentEnd(msg);
  } else if (msg.type === 'issue') {
    setStatus(`${msg.kind}: ${msg.message}`, true);
  } else if (msg.type === 'error') {
    setStatus(msg.message, true);
  } else if (msg.type === 'end') {
    setStatus(`stopped after ${msg.seconds.toFixed(1)} s of audio`);
  }
}

// --- the microphone ------------------------------------------------------------------------
//
// The page streams what the microphone recorded, sample for sample, in order. Where the
// browser has MediaStreamTrackProcessor (Chromium) the page reads the track's frames
// itself: they queue while the page or the machine is busy and are sent late, not lost
// (a renderer stalled for about a second or more loses audio upstream, in the browser).
// The fallback (other browsers, or ?worklet; with ?native the AudioContext runs at the
// device's rate and the worklet resamples) is an AudioWorklet in the real-time audio
// graph: there a busy machine can starve the graph, and the browser then fills the gap
// with silence (inside speech, a pause that splits a segment) and drops the audio that
// queued meanwhile. Everything that takes time (the WebSocket, the AudioContext and its
// module) is ready before the microphone opens, so that no audio is lost while the page
// sets itself up; only then is the microphone opened and read at once.

const MIC = { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false };
// frames (10 ms each in Chromium) the track processor keeps while the page is busy: 30 s
const QUEUED_FRAMES = 3000;

function openStream() {
  return new Promise((resolve, reject) => {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${proto}://${location.host}/stream?windows=true`);
    ws.binaryType = 'arraybuffer';
    state.ws = ws;
    ws.onmessage = onMessage;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: 'start', sample_rate: state.rate, key: $('key').value || undefined }));
      resolve(ws);
    };
    ws.onclose = (e) => {
      if (e.code !== 1000 && e.code !== 1005) setStatus(`stream closed: ${e.reason || e.code}`, true);
      cleanup();
      reject(new Error(`the server closed the stream (${e.reason || e.code})`));  // ignored once open
    };
  });
}

function send(data) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(data);
}

// MediaStreamTrackProcessor: the track's frames -> mono -> 16 kHz chunks -> /stream, until
// stop() asks for the end: the frames recorded before the click are sent, then 'end'.
async function readTrack(track) {
  const reader = new MediaStreamTrackProcessor({ track, maxBufferSize: QUEUED_FRAMES }).readable.getReader();
  let resampler = null, mono = null, plane = null, clock = null;
  for (;;) {
    const { value: frame, done } = await reader.read();
    if (done) break;
    try {
      // frame.timestamp (µs) is its capture time; clock maps it to performance.now() (ms),
      // from the first frame, read as soon as it was captured
      if (clock === null) clock = performance.now() - frame.timestamp / 1000;
      if (state.stopAt !== null && frame.timestamp / 1000 + clock >= state.stopAt) break;  // recorded after the click
      const n = frame.numberOfFrames, channels = frame.numberOfChannels;
      if (!resampler) resampler = new Pcm16Resampler(frame.sampleRate, state.rate, 0.1, send);
      if (!mono || mono.length !== n) { mono = new Float32Array(n); plane = new Float32Array(n); }
      // the mean of the channels, as the server and stream.py downmix
      const as = frame.format === 'f32-planar' ? {} : { format: 'f32-planar' };
      frame.copyTo(mono, { planeIndex: 0, ...as });
      for (let c = 1; c < channels; c++) {
        frame.copyTo(plane, { planeIndex: c, ...as });
        for (let i = 0; i < n; i++) mono[i] += plane[i];
      }
      if (channels > 1) for (let i = 0; i < n; i++) mono[i] /= channels;
      resampler.push(mono);
    } finally {
      frame.close();
    }
  }
  reader.cancel().catch(() => {});
  if (resampler) resampler.flush();
  finish();
}

// The fallback's node on an AudioContext (a real-time one here; tests render an
// OfflineAudioContext through it): the worklet module, its node, chunks sent as they come.
async function workletNode(ctx) {
  await ctx.audioWorklet.addModule('/static/pcm-worklet.js');
  const node = new AudioWorkletNode(ctx, 'pcm-resampler',
    { numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1, channelCountMode: 'explicit',
      processorOptions: { targetRate: state.rate, chunkSeconds: 0.1 } });
  node.port.onmessage = (e) => { if (e.data === 'flushed') finish(); else send(e.data); };
  const mute = ctx.createGain();
  mute.gain.value = 0;  // keeps the worklet pulled without playing the microphone back
  node.connect(mute).connect(ctx.destination);
  return node;
}

async function start() {
  $('start').disabled = true;
  state.stopAt = null;
  const params = new URLSearchParams(location.search);
  const processor = typeof MediaStreamTrackProcessor === 'function' && !params.has('worklet');
  try {
    await openStream();
    if (!processor) {  // the fallback's graph, built before the microphone opens
      try {  // the browser's own resampler when it can run the graph at 16 kHz
        state.ctx = params.has('native') ? new AudioContext() : new AudioContext({ sampleRate: state.rate });
      } catch (e) {
        state.ctx = new AudioContext();
      }
      state.node = await workletNode(state.ctx);
    }
    const media = await navigator.mediaDevices.getUserMedia({ audio: MIC });
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {  // closed meanwhile (its status says why)
      media.getTracks().forEach((t) => t.stop());
      return;
    }
    state.media = media;
    const track = media.getAudioTracks()[0];
    let how;
    if (processor) {
      readTrack(track).catch((e) => { setStatus(`microphone: ${e.message || e}`, true); finish(); });
      how = `${track.getSettings().sampleRate || '?'} Hz microphone read by the page`;
    } else {
      state.ctx.createMediaStreamSource(state.media).connect(state.node);
      how = `${state.ctx.sampleRate} Hz audio graph`;
    }
    state.started = true;
    $('stop').disabled = false;
    setStatus(`listening (${how}, sent at ${state.rate} Hz)`);
  } catch (e) {
    setStatus(`cannot use the microphone: ${e.message || e}`, true);
    if (state.ws) state.ws.close(1000);
    cleanup();
  }
}

function stop() {
  $('stop').disabled = true;
  state.stopAt = performance.now();  // the track processor sends the frames recorded before it
  if (state.node) state.node.port.postMessage('flush');  // the fallback: what it holds, then 'flushed'
  const media = state.media;
  setTimeout(() => {  // a track that delivers no more frames: ending it ends the reader
    if (media && state.media === media) media.getTracks().forEach((t) => t.stop());
  }, 3000);
}

// all audio is sent: stop the microphone, ask for the last segment
function finish() {
  if (state.media) state.media.getTracks().forEach((t) => t.stop());
  send(JSON.stringify({ type: 'end' }));
}

function cleanup() {
  if (state.media) state.media.getTracks().forEach((t) => t.stop());
  if (state.ctx) state.ctx.close().catch(() => {});
  state.media = state.ctx = state.node = null;
  state.started = false;
  $('start').disabled = false;
  $('stop').disabled = true;
}

// --- files ---------------------------------------------------------------------------------

function fileStrip(result) {
  const strip = document.createElement('div');
  strip.className = 'strip';
  const total = Math.max(result.duration_seconds || 0, 0.01);
  const windows = result.timeline || [];
  windows.forEach((w, i) => {
    // windows overlap (hop < window): each block runs to the next window's start
    const end = i + 1 < windows.length ? Math.min(windows[i + 1].start, w.end) : w.end;
    const b = document.createElement('div');
    b.className = 'block window';
    b.dataset.label = w.label;
    b.style.left = `${(100 * w.start / total).toFixed(3)}%`;
    b.style.width = `${(100 * Math.max(end - w.start, 0.01) / total).toFixed(3)}%`;
    b.style.background = colour(w.label);
    b.style.opacity = w.confidence == null ? 0.5 : 0.4 + 0.6 * w.confidence;
    b.title = `${w.start.toFixed(2)}–${w.end.toFixed(2)} s: ${w.label}`;
    b.textContent = w.label;
    strip.appendChild(b);
  });
  return strip;
}

async function upload(event) {
  event.preventDefault();
  const files = $('file').files;
  const out = $('files');
  if (!files.length) return;
  const form = new FormData();
  for (const f of files) form.append('file', f, f.name);
  out.textContent = 'analysing…';
  try {
    const r = await fetch('/predict?timeline=true', { method: 'POST', body: form, headers: headers() });
    const body = await r.json();
    out.textContent = '';
    if (!r.ok && !body.results) {
      out.innerHTML = '<p class="error"></p>';
      out.firstChild.textContent = `${r.status}: ${body.error}`;
      return;
    }
    for (const res of body.results) {
      const div = document.createElement('div');
      div.className = 'file';
      div.dataset.label = res.label || '';
      const head = document.createElement('p');
      if (res.error) {
        head.className = 'error';
        head.textContent = `${res.file}: ${res.error}`;
      } else {
        const conf = res.confidence == null ? '' : ` (${(res.confidence * 100).toFixed(1)} %)`;
        head.textContent = `${res.file}: ${String(res.label).toUpperCase()}${conf}, ${res.duration_seconds.toFixed(2)} s` +
          (res.note ? ` — ${res.note}` : '');
      }
      div.appendChild(head);
      if (!res.error) {
        div.appendChild(fileStrip(res));
        div.appendChild(bars(res.probabilities));
      }
      out.appendChild(div);
    }
  } catch (e) {
    out.innerHTML = '<p class="error"></p>';
    out.firstChild.textContent = `upload failed: ${e.message || e}`;
  }
}

$('start').addEventListener('click', start);
$('stop').addEventListener('click', stop);
$('upload').addEventListener('submit', upload);
loadModel();
redraw();
