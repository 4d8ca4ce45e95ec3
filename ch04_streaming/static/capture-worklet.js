// Capture worklet: microphone samples -> 16 kHz linear16, 100 ms frames.
//
// Chapter 4, "End-to-end architecture": the codec step of client capture
// -> codec -> transport, done on the audio thread so the page's own work
// can never make it drop samples. The browser delivers float samples at
// the AudioContext's rate (48 kHz on most machines, 44.1 kHz on some);
// the service wants 16-bit PCM at 16 kHz. Decimating without a filter
// would fold everything above 8 kHz back into the speech band, so each
// sample first goes through a low-pass FIR; output samples then fall
// between filtered input samples (at 44.1 kHz the ratio is 2.75625) and
// are interpolated linearly. Whole 100 ms frames go to the main thread.

const TARGET_RATE = 16000;
const FRAME_SAMPLES = TARGET_RATE / 10; // 100 ms: 1600 samples, 3200 B
const CUTOFF_HZ = 7000; // under the 8 kHz Nyquist limit of 16 kHz audio

// A windowed-sinc low-pass, normalised to a gain of exactly 1 at 0 Hz so
// the level reaching the server is the level the microphone gave. With
// about 2 ms of taps at any rate it is flat to 6 kHz, 6 dB down at 7 kHz
// and 75 dB down from 8.4 kHz: what could fold back lands above 7.6 kHz,
// far from the speech band.
function lowPassTaps(rate) {
  const n = 2 * Math.round(rate / 1000) + 1; // odd: a centre tap
  const middle = (n - 1) / 2;
  const fc = CUTOFF_HZ / rate; // cycles per input sample
  const taps = new Float32Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const x = i - middle;
    const sinc = x === 0 ? 2 * fc
      : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x);
    // The Blackman window trades a wider transition for a deep stopband.
    const w = 0.42 - 0.5 * Math.cos(2 * Math.PI * i / (n - 1))
      + 0.08 * Math.cos(4 * Math.PI * i / (n - 1));
    taps[i] = sinc * w;
    sum += taps[i];
  }
  return taps.map((t) => t / sum);
}

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    // `sampleRate` is the AudioContext's rate, a worklet-scope global.
    this.taps = lowPassTaps(sampleRate);
    this.history = new Float32Array(this.taps.length); // newest last
    this.step = sampleRate / TARGET_RATE; // input samples per output
    // Where the next output sample falls, in input samples after the
    // previous filtered sample (`this.previous`).
    this.position = 1;
    this.previous = 0;
    this.newFrame();
  }

  newFrame() {
    this.frame = new DataView(new ArrayBuffer(2 * FRAME_SAMPLES));
    this.filled = 0;
  }

  filter(sample) {
    this.history.copyWithin(0, 1);
    this.history[this.history.length - 1] = sample;
    let y = 0;
    for (let i = 0; i < this.taps.length; i++) {
      y += this.taps[i] * this.history[i];
    }
    return y;
  }

  emit(sample) {
    const clipped = Math.max(-1, Math.min(1, sample));
    // The wire format is little-endian whatever this CPU is: say so.
    this.frame.setInt16(2 * this.filled, Math.round(clipped * 32767), true);
    this.filled += 1;
    if (this.filled === FRAME_SAMPLES) {
      // Transfer, not copy: the buffer moves to the main thread.
      this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
      this.newFrame();
    }
  }

  process(inputs) {
    const channel = inputs[0][0]; // mono; absent until the mic is live
    if (channel === undefined) return true;
    for (const sample of channel) {
      const y = this.filter(sample);
      while (this.position <= 1) {
        this.emit(this.previous + this.position * (y - this.previous));
        this.position += this.step;
      }
      this.position -= 1;
      this.previous = y;
    }
    return true; // keep running until the page closes the context
  }
}

registerProcessor("capture", CaptureProcessor);
