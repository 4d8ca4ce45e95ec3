// Browser client: microphone -> 16 kHz linear16 -> WebSocket -> text.
//
// Chapter 4, "End-to-end architecture": the client end of capture ->
// codec -> transport. It opens the microphone with the browser's voice
// processing off, lets capture-worklet.js turn the samples into 100 ms
// frames of 16 kHz linear16, and streams them as binary messages to the
// Deepgram dialect at /v1/listen. Interim text is shown grey and
// replaced as it improves; each final becomes a black line, with its
// latency: from sending the frame that held its last word to receiving
// it. `?key=` prefills the key; `?rate=44100` runs the AudioContext at
// that rate instead of the device's, to try the worklet's resampling.

const FRAME_S = 0.1; // each frame carries 100 ms of audio
const QUERY = "encoding=linear16&sample_rate=16000"
  + "&interim_results=true&vad_events=true";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
$("key").value = params.get("key") ?? "";
window.interimCount = 0; // interims shown so far, read by the tests

let session = null; // the open stream: socket, audio graph, send times

function setStatus(text) {
  $("status").textContent = text;
}

function listenUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/v1/listen?${QUERY}`;
}

async function start() {
  const key = $("key").value;
  if (!key) return setStatus("enter an API key first");
  $("start").disabled = true;
  setStatus("connecting");
  // A browser cannot set headers on a WebSocket, so the key travels as
  // a subprotocol; the server answers "token", never echoing the key.
  const socket = new WebSocket(listenUrl(), ["token", key]);
  socket.binaryType = "arraybuffer";
  const s = { socket, context: null, stream: null, sentAt: [],
              closing: false, error: null };
  session = s;
  socket.onmessage = (event) => show(JSON.parse(event.data));
  socket.onclose = closed;
  const opened = new Promise((resolve) => {
    socket.onopen = () => resolve(true);
    socket.addEventListener("close", () => resolve(false));
  });
  const rate = Number(params.get("rate")) || undefined;
  s.context = new AudioContext({ sampleRate: rate });
  if (!(await opened)) return; // closed() has shown why
  await s.context.audioWorklet.addModule("capture-worklet.js");
  // The microphone opens last: no audio is captured before there is a
  // way to send it, so the stream starts at the speaker's first sample.
  s.stream = await navigator.mediaDevices.getUserMedia({
    audio: {
      channelCount: 1,
      // Echo cancellation, noise suppression and gain control reshape
      // the signal; the model wants the sound as the microphone heard it.
      echoCancellation: false,
      noiseSuppression: false,
      autoGainControl: false,
    },
  });
  if (session !== s) return releaseCapture(s); // closed meanwhile
  const source = s.context.createMediaStreamSource(s.stream);
  // With no outputs the node is a sink, which the browser runs anyway.
  const worklet = new AudioWorkletNode(s.context, "capture", {
    numberOfOutputs: 0,
  });
  worklet.port.onmessage = (event) => sendFrame(event.data);
  source.connect(worklet);
  $("stop").disabled = false;
  setStatus(`streaming: ${s.context.sampleRate} Hz -> 16000 Hz`);
}

function sendFrame(frame) {
  if (!session || session.closing) return;
  session.socket.send(frame);
  // Frame i holds stream time [i, i + 1) x 100 ms: its send time dates
  // the results about it. Ten numbers a second is little to keep.
  session.sentAt.push(performance.now());
}

function stop() {
  if (!session || session.closing) return;
  session.closing = true;
  releaseCapture(session);
  // The server finalizes the open utterance, sends Metadata, closes.
  session.socket.send(JSON.stringify({ type: "CloseStream" }));
  $("stop").disabled = true;
  setStatus("closing");
}

function releaseCapture(s) {
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
  const sentAt = session.sentAt;
  // The frame holding `end`; the epsilon keeps an end exactly on a
  // frame boundary (0.3 s) in the frame it closes, not the next one.
  const frame = Math.ceil(end / FRAME_S - 1e-6) - 1;
  const index = Math.max(0, Math.min(frame, sentAt.length - 1));
  return performance.now() - sentAt[index];
}

function fail(error) {
  if (session) {
    session.error = error.message;
    session.socket.close(); // closed() shows the error with the code
  } else {
    $("start").disabled = false;
    setStatus(`error: ${error.message}`);
  }
}

$("controls").onsubmit = (event) => {
  event.preventDefault(); // stay on this page
  start().catch(fail);
};
$("stop").onclick = stop;
