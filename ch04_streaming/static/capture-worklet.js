// Capture worklet: microphone samples -> linear16, 100 ms frames.
//
// Chapter 4, "End-to-end architecture": the codec step of client capture
// -> codec -> transport, done on the audio thread so the page's own work
// can never make it drop samples. The browser delivers float samples at
// the AudioContext's rate (48 kHz on most machines, 44.1 kHz on some);
// the service wants 16-bit PCM at 16 kHz. Decimating without a filter
// would fold everything above 8 kHz back into the speech band, so each
// sample first goes through a low-pass FIR; output samples then fall
// between filtered input samples (at 44.1 kHz the ratio is 2.75625) and
// are interpolated linearly. Whole 100 ms frames go to the main thread,
// each with the level of the audio it holds, for the page's meter. The
// rate is the dialect's: 16 kHz for Deepgram and AssemblyAI, 24 kHz for
// OpenAI (`processorOptions.targetRate`).

const FRAME_S = 0.1; // 100 ms: 1600 samples (3200 B) at 16 kHz
const CUTOFF_SHARE = 0.875; // of the target's Nyquist: 7 kHz at 16 kHz

// A windowed-sinc low-pass, normalised to a gain of exactly 1 at 0 Hz so
// the level reaching the server is the level the microphone gave. With
// about 2 ms of taps at any rate it is flat to 6 kHz, 6 dB down at 7 kHz
// and 75 dB down from 8.4 kHz: what could fold back lands above 7.6 kHz,
// far from the speech band.
function lowPassTaps(rate, targetRate) {
  const n = 2 * Math.round(rate / 1000) + 1; // odd: a centre tap
  const middle = (n - 1) / 2;
  const fc = CUTOFF_SHARE * targetRate / 2 / rate; // cycles per sample
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
  constructor(options) {
    super();
    const targetRate = options.processorOptions?.targetRate ?? 16000;
    // `sampleRate` is the AudioContext's rate, a worklet-scope global.
    this.taps = lowPassTaps(sampleRate, targetRate);
    this.history = new Float32Array(this.taps.length); // newest last
    this.step = sampleRate / targetRate; // input samples per output
    this.frameSamples = Math.round(targetRate * FRAME_S);
    // Where the next output sample falls, in input samples after the
    // previous filtered sample (`this.previous`).
    this.position = 1;
    this.previous = 0;
    this.newFrame();
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

  // --8<-- [start:capture_framing]
  newFrame() {
    this.frame = new DataView(new ArrayBuffer(2 * this.frameSamples));
    this.filled = 0;
    this.energy = 0; // sum of squares: the level of this frame
  }

  emit(sample) {
    const clipped = Math.max(-1, Math.min(1, sample));
    this.energy += clipped * clipped;
    // The wire format is little-endian whatever this CPU is: say so.
    this.frame.setInt16(2 * this.filled, Math.round(clipped * 32767), true);
    this.filled += 1;
    if (this.filled === this.frameSamples) {
      const rms = Math.sqrt(this.energy / this.filled);
      // Transfer, not copy: the buffer moves to the main thread.
      const pcm = this.frame.buffer;
      this.port.postMessage({ pcm, rms }, [pcm]);
      this.newFrame();
    }
  }
  // --8<-- [end:capture_framing]

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
