// Browser client: microphone -> 16 kHz linear16 -> WebSocket -> text.
//
// Chapter 4, "End-to-end architecture": the client end of capture ->
// codec -> transport. It opens the microphone with the browser's voice
// processing off, lets capture-worklet.js turn the samples into 100 ms
// frames of 16 kHz linear16, and streams them as binary messages to the
// Deepgram dialect at /v1/listen. Interim text is shown grey and
// replaced as it improves; each final becomes a black line, with its
// latency: from sending the frame that held its last word to receiving
// it. `?key=` prefills the key; with none, the page asks its server for
// a short-lived token; `?rate=44100` runs the AudioContext at
// that rate instead of the device's, to try the worklet's resampling.
//
// The other capture, chosen on the page (`?capture=mediarecorder`): the
// browser's own MediaRecorder encodes WebM/Opus, and each 100 ms blob
// goes out as it is, with no encoding in the query, as Deepgram asks
// for containers; the server decodes the WebM as it arrives. An eighth
// of the bytes, but later words: the recorder holds each blob for its
// timeslice and the encoder adds its own frames of delay.

const FRAME_S = 0.1; // each frame carries 100 ms of audio
const OPTIONS = "interim_results=true&vad_events=true";
const QUERY = `encoding=linear16&sample_rate=16000&${OPTIONS}`;
const RECORDER_TYPE = "audio/webm;codecs=opus";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
$("key").value = params.get("key") ?? "";
$("capture").value = params.get("capture") ?? "worklet";
window.interimCount = 0; // interims shown so far, read by the tests

let session = null; // the open stream: socket, audio graph, send times

function setStatus(text) {
  $("status").textContent = text;
}

function listenUrl(recorded) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  // A container says its own encoding and rate: the query leaves them out.
  const query = recorded ? OPTIONS : QUERY;
  return `${scheme}//${location.host}/v1/listen?${query}`;
}

// The microphone as the model wants to hear it: echo cancellation, noise
// suppression and gain control reshape the signal, so they are off.
function openMicrophone() {
  return navigator.mediaDevices.getUserMedia({
    audio: {
      channelCount: 1,
      echoCancellation: false,
      noiseSuppression: false,
      autoGainControl: false,
    },
  });
}

// A short-lived token from this page's own backend, where one serves
// them (chapter 9's service), so the page holds no long-lived key;
// else the key typed in. Either travels as a subprotocol pair: a
// browser cannot set headers on a WebSocket.
async function credential() {
  const key = $("key").value;
  if (key) return ["token", key];
  const answer = await fetch("/v1/auth/page-token").catch(() => null);
  if (!answer?.ok) return null;
  return ["bearer", (await answer.json()).access_token];
}

async function start() {
  const protocols = await credential();
  if (!protocols) return setStatus("enter an API key first");
  window.credentialKind = protocols[0]; // read by the tests
  const recorded = $("capture").value === "mediarecorder";
  if (recorded && !MediaRecorder.isTypeSupported(RECORDER_TYPE)) {
    return setStatus(`error: this browser cannot record ${RECORDER_TYPE}`);
  }
  $("start").disabled = true;
  $("capture").disabled = true;
  setStatus("connecting");
  // The server answers "token" or "bearer", never echoing the secret.
  const socket = new WebSocket(listenUrl(recorded), protocols);
  socket.binaryType = "arraybuffer";
  const s = { socket, context: null, stream: null, recorder: null,
              sent: [], closing: false, error: null };
  session = s;
  socket.onmessage = (event) => show(JSON.parse(event.data));
  socket.onclose = closed;
  const opened = new Promise((resolve) => {
    socket.onopen = () => resolve(true);
    socket.addEventListener("close", () => resolve(false));
  });
  const rate = Number(params.get("rate")) || undefined;
  if (!recorded) s.context = new AudioContext({ sampleRate: rate });
  if (!(await opened)) return; // closed() has shown why
  if (!recorded) {
    await s.context.audioWorklet.addModule("capture-worklet.js");
  }
  // The microphone opens last: no audio is captured before there is a
  // way to send it, so the stream starts at the speaker's first sample.
  s.stream = await openMicrophone();
  if (session !== s) return releaseCapture(s); // closed meanwhile
  if (recorded) return record(s);
  const source = s.context.createMediaStreamSource(s.stream);
  // With no outputs the node is a sink, which the browser runs anyway.
  const worklet = new AudioWorkletNode(s.context, "capture", {
    numberOfOutputs: 0,
  });
  // Frame i holds stream time [i, i + 1) x 100 ms.
  worklet.port.onmessage = (event) => {
    sendFrame(event.data, (s.sent.length + 1) * FRAME_S);
  };
  source.connect(worklet);
  $("stop").disabled = false;
  setStatus(`streaming: ${s.context.sampleRate} Hz -> 16000 Hz`);
}

// MediaRecorder: WebM/Opus blobs, each sent as it comes. The first one
// opens the container (its header); the server decodes them in order.
function record(s) {
  s.recorder = new MediaRecorder(s.stream, {
    mimeType: RECORDER_TYPE,
    audioBitsPerSecond: 32000, // speech: an eighth of 16 kHz linear16
  });
  // A blob holds what was recorded until it came, less what the
  // encoder still holds: its time is the recording's, roughly.
  s.recorder.ondataavailable = (event) => {
    const recordedS = (performance.now() - s.recordingSince) / 1000;
    if (event.data.size) sendFrame(event.data, recordedS);
  };
  // The last blob comes after stop(); only then is the stream complete.
  s.recorder.onstop = () => {
    if (s.socket.readyState === WebSocket.OPEN) {
      s.socket.send(JSON.stringify({ type: "CloseStream" }));
    }
  };
  s.recorder.start(FRAME_S * 1000); // a blob every 100 ms
  s.recordingSince = performance.now();
  $("stop").disabled = false;
  setStatus(`streaming: MediaRecorder ${RECORDER_TYPE}`);
}

// `untilS`: the stream time the frame's audio reaches. Its send time
// dates the results about it; ten pairs a second is little to keep.
function sendFrame(frame, untilS) {
  // A recorder's last blob comes after Stop: it is the stream's end.
  if (!session || (session.closing && !session.recorder)) return;
  if (session.socket.readyState !== WebSocket.OPEN) return;
  session.socket.send(frame);
  session.sent.push({ untilS, at: performance.now() });
}

function stop() {
  if (!session || session.closing) return;
  session.closing = true;
  // The recorder sends CloseStream after its last blob (onstop).
  const recording = session.recorder?.state === "recording";
  releaseCapture(session);
  // The server finalizes the open utterance, sends Metadata, closes.
  if (!recording) {
    session.socket.send(JSON.stringify({ type: "CloseStream" }));
  }
  $("stop").disabled = true;
  setStatus("closing");
}

function releaseCapture(s) {
  if (s.recorder?.state === "recording") s.recorder.stop();
  s.stream?.getTracks().forEach((track) => track.stop());
  s.context?.close();
}

function closed(event) {
  const why = event.reason || "(no reason given)";
  const error = session.error ? `, after ${session.error}` : "";
  if (!session.closing) releaseCapture(session);
  session = null;
  $("interim").textContent = "";
  $("start").disabled = false;
  $("capture").disabled = false;
  $("stop").disabled = true;
  setStatus(`closed: ${event.code} ${why}${error}`);
}

function show(message) {
  if (message.type !== "Results") return; // SpeechStarted, Metadata, ...
  const best = message.channel.alternatives[0];
  if (!message.is_final) {
    $("interim").textContent = best.transcript;
    if (best.transcript) window.interimCount += 1;
    return;
  }
  $("interim").textContent = "";
  if (!best.transcript) return; // an utterance may end with no words
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = best.transcript;
  const latency = document.createElement("span");
  latency.className = "latency";
  latency.title = "from sending the last word's audio to this final";
  latency.textContent = `${Math.round(latencyMs(best.words))} ms`;
  const line = document.createElement("div");
  line.className = "final";
  line.append(text, " ", latency);
  $("finals").append(line);
}

function latencyMs(words) {
  const end = words[words.length - 1].end; // seconds of stream time
  const sent = session.sent;
  // The first frame that reaches `end`, searched from the newest; the
  // epsilon keeps an end exactly on a frame boundary (0.3 s) in the
  // frame it closes, not the next one.
  let index = sent.length - 1;
  while (index > 0 && sent[index - 1].untilS >= end - 1e-6) index -= 1;
  return performance.now() - sent[index].at;
}

function fail(error) {
  if (session) {
    session.error = error.message;
    session.socket.close(); // closed() shows the error with the code
  } else {
    $("start").disabled = false;
    $("capture").disabled = false;
    setStatus(`error: ${error.message}`);
  }
}

$("controls").onsubmit = (event) => {
  event.preventDefault(); // stay on this page
  start().catch(fail);
};
$("stop").onclick = stop;
