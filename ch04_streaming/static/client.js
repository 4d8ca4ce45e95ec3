// Browser client: microphone or fixture -> linear16 -> WebSocket -> text.
//
// Chapter 4, "End-to-end architecture": the client end of capture ->
// codec -> transport, and what the chapters measure, shown live. The
// page asks the server which dialects it offers (`/v1/dialects`) and
// which sample fixtures it has (`/v1/fixtures`); the reader picks a
// dialect and a source. The microphone opens with the browser's voice
// processing off; a fixture plays into the same capture worklet
// (fixture-player.js), at real time. capture-worklet.js frames the
// audio as 100 ms of linear16 at the dialect's rate, with its level;
// dialects.js sends each frame in the dialect's form and reads its
// answers. Interim text is grey and replaced in place; each final is a
// black line with its latency from the end of speech (the frame that
// held its last word, sent, to the final received) and the utterance's
// time to first result, against the book's 300 ms rule. The meter is
// the level the page computes; the VAD state is the server's.
//
// `?key=` prefills the key; with none, the page asks its server for a
// short-lived token (chapter 9's service). `?dialect=`, `?source=`
// (`microphone` or a fixture id) and `?capture=` preselect the choices;
// `?rate=44100` runs the AudioContext at that rate instead of the
// device's, to try the worklet's resampling. The microphone's other
// capture, MediaRecorder (Deepgram only), sends the browser's own
// WebM/Opus blobs as they come; the server decodes them.

import { closeInWords } from "./close-codes.js";
import { CLIENTS } from "./dialects.js";
import { playFixture } from "./fixture-player.js";

const FRAME_S = 0.1; // each frame carries 100 ms of audio
const RECORDER_TYPE = "audio/webm;codecs=opus";
const RULE_MS = 300; // the book's rule: a first result within 300 ms

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
$("key").value = params.get("key") ?? "";
$("capture").value = params.get("capture") ?? "worklet";
window.interimCount = 0; // interims shown so far, read by the tests
window.loudestLevel = 0; // the meter's highest, read by the tests

let session = null; // the open stream: socket, audio graph, send times
const tally = { utterances: 0, withinRule: 0 };

function setStatus(text) {
  $("status").textContent = text;
}

// What the server offers, as it says: dialects with a client on this
// page can be chosen, the others are listed as offered.
async function discover() {
  const [dialects, fixtures] = await Promise.all([
    fetch("/v1/dialects").then((r) => r.json()),
    fetch("/v1/fixtures").then((r) => (r.ok ? r.json() : { fixtures: [] })),
  ]);
  for (const dialect of dialects.dialects) {
    const known = dialect.name in CLIENTS;
    const option = new Option(
      known ? dialect.label : `${dialect.label} (no client on this page)`,
      dialect.name);
    option.dataset.path = dialect.path;
    option.disabled = !known;
    $("dialect").append(option);
  }
  for (const fixture of fixtures.fixtures) {
    const option = new Option(`fixture: ${fixture.id}`, fixture.id);
    option.dataset.url = fixture.url;
    option.title = fixture.text;
    $("source").append(option);
  }
  $("dialect").value = params.get("dialect") ?? "deepgram";
  $("source").value = params.get("source") ?? "microphone";
  chosen();
  $("start").disabled = false;
}

function chosen() {
  const client = CLIENTS[$("dialect").value];
  const microphone = $("source").value === "microphone";
  // Only Deepgram's dialect takes a container as it comes.
  $("capture").disabled = !(microphone && client?.containers);
  if ($("capture").disabled) $("capture").value = "worklet";
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
// else the key typed in.
async function credential() {
  const key = $("key").value;
  if (key) return { kind: "token", secret: key };
  const answer = await fetch("/v1/auth/page-token").catch(() => null);
  if (!answer?.ok) return null;
  return { kind: "bearer", secret: (await answer.json()).access_token };
}

function streamUrl(path, query) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}?${query}`;
}

async function start() {
  const given = await credential();
  if (!given) return setStatus("enter an API key first");
  window.credentialKind = given.kind; // read by the tests
  const option = $("dialect").selectedOptions[0];
  const client = { ...CLIENTS[option.value] }; // per stream: it may keep
  const fixture = $("source").selectedOptions[0].dataset.url ?? null;
  const recorded = !fixture && $("capture").value === "mediarecorder";
  if (recorded && !MediaRecorder.isTypeSupported(RECORDER_TYPE)) {
    return setStatus(`error: this browser cannot record ${RECORDER_TYPE}`);
  }
  enableChoices(false);
  setStatus("connecting");
  const auth = client.credentials(given.kind, given.secret);
  const query = [client.query(recorded), auth.query].filter(Boolean);
  const url = streamUrl(option.dataset.path, query.join("&"));
  // The server answers the subprotocol's kind, never echoing a secret.
  const socket = new WebSocket(url, auth.protocols);
  socket.binaryType = "arraybuffer";
  const s = { socket, client, given, url, context: null, stream: null,
              recorder: null, player: null, sent: [], closing: false,
              error: null, opened: false, utterance: null };
  session = s;
  socket.onmessage = (event) => heard(s, JSON.parse(event.data));
  socket.onclose = (event) => closed(s, event);
  const opened = new Promise((resolve) => {
    socket.onopen = () => resolve(true);
    socket.addEventListener("close", () => resolve(false));
  });
  const rate = Number(params.get("rate")) || undefined;
  if (!recorded) s.context = new AudioContext({ sampleRate: rate });
  if (!(await opened)) return; // closed() has shown why
  s.opened = true;
  if (recorded) {
    s.stream = await openMicrophone();
    return session === s ? record(s) : releaseCapture(s);
  }
  await s.context.audioWorklet.addModule("capture-worklet.js");
  // With no outputs the node is a sink, which the browser runs anyway.
  const worklet = new AudioWorkletNode(s.context, "capture", {
    numberOfOutputs: 0, processorOptions: { targetRate: client.rate },
  });
  // Frame i holds stream time [i, i + 1) x 100 ms.
  worklet.port.onmessage = ({ data }) => {
    showLevel(data.rms);
    sendFrame(s, client.frame(data.pcm), (s.sent.length + 1) * FRAME_S);
  };
  // The source opens last: no audio is captured before there is a
  // way to send it, so the stream starts at its first sample.
  if (fixture) {
    s.player = await playFixture(s.context, fixture, worklet);
    s.player.ended.then(() => stop(s));
  } else {
    s.stream = await openMicrophone();
    if (session !== s) return releaseCapture(s); // closed meanwhile
    s.context.createMediaStreamSource(s.stream).connect(worklet);
  }
  $("stop").disabled = false;
  const from = fixture ? ` (fixture ${$("source").value})` : "";
  setStatus(`streaming: ${s.context.sampleRate} Hz -> ${client.rate} Hz`
            + from);
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
    if (event.data.size) sendFrame(s, event.data, recordedS);
  };
  // The last blob comes after stop(); only then is the stream complete.
  s.recorder.onstop = () => {
    if (s.socket.readyState === WebSocket.OPEN) {
      s.client.finish((text) => s.socket.send(text));
    }
  };
  s.recorder.start(FRAME_S * 1000); // a blob every 100 ms
  s.recordingSince = performance.now();
  $("stop").disabled = false;
  setStatus(`streaming: MediaRecorder ${RECORDER_TYPE}`);
}

// `untilS`: the stream time the frame's audio reaches. Its send time
// dates the results about it; ten pairs a second is little to keep.
function sendFrame(s, frame, untilS) {
  // A recorder's last blob comes after Stop: it is the stream's end.
  if (session !== s || (s.closing && !s.recorder)) return;
  if (s.socket.readyState !== WebSocket.OPEN) return;
  s.socket.send(frame);
  s.sent.push({ untilS, at: performance.now() });
}

function stop(s = session) {
  if (!s || s.closing || session !== s) return;
  s.closing = true;
  // The recorder ends the stream after its last blob (onstop).
  const recording = s.recorder?.state === "recording";
  releaseCapture(s);
  if (!recording && s.socket.readyState === WebSocket.OPEN) {
    const ending = s.client.finish((text) => s.socket.send(text)) ?? {};
    // A dialect whose server does not close the stream: the page does,
    // at once, or after the last final (or 5 s, should it not come).
    if (ending.closeAfterFinal === false) s.socket.close(1000);
    if (ending.closeAfterFinal) {
      s.closeAfterFinal = true;
      setTimeout(() => s.socket.close(1000), 5000);
    }
  }
  $("stop").disabled = true;
  setStatus("closing");
}

function releaseCapture(s) {
  if (s.recorder?.state === "recording") s.recorder.stop();
  s.player?.stop();
  s.stream?.getTracks().forEach((track) => track.stop());
  if (s.context?.state !== "closed") s.context?.close();
}

function enableChoices(enabled) {
  for (const id of ["start", "dialect", "source", "key"]) {
    $(id).disabled = !enabled;
  }
  if (enabled) chosen(); else $("capture").disabled = true;
}

async function closed(s, event) {
  if (!s.closing) releaseCapture(s);
  if (session === s) session = null;
  $("interim").textContent = "";
  showVad(null);
  enableChoices(true);
  $("stop").disabled = true;
  let words = closeInWords(event.code, event.reason);
  // A browser hides a refused upgrade (401, 429, 503) behind 1006; the
  // page asks the same URL over plain HTTP for the server's reason.
  if (event.code === 1006 && !s.opened) {
    const refusal = await whyRefused(s);
    if (refusal) words += `; the server refused it: ${refusal}`;
  }
  const error = s.error ? `, after ${s.error}` : "";
  setStatus(`closed: ${words}${error}`);
}

async function whyRefused(s) {
  const headers = s.client.header(s.given.kind, s.given.secret);
  const answer = await fetch(s.url.replace(/^ws/, "http"), { headers })
    .catch(() => null);
  if (!answer || answer.ok) return null;
  const body = await answer.json().catch(() => ({}));
  return `${answer.status} ${body.reason ?? answer.statusText}`;
}

// The meter: the frame's level in dBFS, from -60 (silence) to 0.
function showLevel(rms) {
  const db = rms > 0 ? 20 * Math.log10(rms) : -Infinity;
  $("level").value = Math.max(0, 60 + Math.max(db, -60));
  window.loudestLevel = Math.max(window.loudestLevel, $("level").value);
  $("level-db").textContent = Number.isFinite(db)
    ? `${db.toFixed(0)} dBFS` : "silence";
}

function showVad(speech) {
  const state = speech === null ? "" : speech ? "speech" : "silence";
  $("vad").dataset.state = state;
  $("vad").textContent = state || "-";
}

function heard(s, message) {
  const result = s.client.read(message);
  if (result.speech !== undefined && result.speech !== null) {
    showVad(result.speech);
  }
  if (result.kind === "error") {
    s.error = result.error;
    setStatus(`server error: ${result.error}`);
  } else if (result.kind === "interim" && result.text) {
    firstResult(s, result);
    $("interim").textContent = result.text;
    window.interimCount += 1;
  } else if (result.kind === "final") {
    $("interim").textContent = "";
    if (result.text) showFinal(s, result);
    if (s.closing && s.closeAfterFinal) s.socket.close(1000);
  }
}

// The utterance's first result: from sending the audio of its first
// word (or, without word times, of the start of speech) to now.
function firstResult(s, result) {
  if (s.utterance) return;
  const spoken = result.firstEndS ?? result.startS;
  s.utterance = { firstMs: spoken === null ? null : sinceSent(s, spoken) };
}

function showFinal(s, result) {
  firstResult(s, result);
  const firstMs = s.utterance.firstMs;
  s.utterance = null;
  const line = document.createElement("div");
  line.className = "final";
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = result.text;
  const latency = document.createElement("span");
  latency.className = "latency";
  latency.title = "from sending the last word's audio to this final";
  latency.textContent = result.endS === null ? "? ms"
    : `${Math.round(sinceSent(s, result.endS))} ms`;
  const first = document.createElement("span");
  first.className = "first";
  first.title = "time to first result: the first word's audio sent to"
    + " the utterance's first result";
  if (firstMs !== null) {
    tally.utterances += 1;
    const within = firstMs <= RULE_MS;
    if (within) tally.withinRule += 1;
    first.classList.add(within ? "within" : "over");
    first.textContent = `first ${Math.round(firstMs)} ms`;
  }
  line.append(text, " ", latency, " ", first);
  $("finals").append(line);
  $("rule").textContent = `${tally.withinRule} of ${tally.utterances}`
    + ` utterances had a first result within ${RULE_MS} ms`;
}

// Milliseconds since the frame that reached stream time `seconds` was
// sent: the first frame that reaches it, searched from the newest; the
// epsilon keeps a time on a frame boundary (0.3 s) in the frame it
// closes, not the next one.
function sinceSent(s, seconds) {
  const sent = s.sent;
  let index = sent.length - 1;
  while (index > 0 && sent[index - 1].untilS >= seconds - 1e-6) index -= 1;
  return performance.now() - sent[index].at;
}

function fail(error) {
  if (session) {
    session.error = error.message;
    session.socket.close(); // closed() shows the error with the code
  } else {
    enableChoices(true);
    setStatus(`error: ${error.message}`);
  }
}

$("controls").onsubmit = (event) => {
  event.preventDefault(); // stay on this page
  start().catch(fail);
};
$("stop").onclick = () => stop();
$("dialect").onchange = chosen;
$("source").onchange = chosen;
discover().catch((error) => setStatus(`error: ${error.message}`));
