// Browser client: microphone or fixture -> audio -> transport -> text.
//
// Chapter 4, "End-to-end architecture": the client end of capture ->
// codec -> transport, and what the chapters measure, shown live. The
// page asks the server which dialects it offers, over which transport
// (`/v1/dialects`), and which sample fixtures it has (`/v1/fixtures`);
// the reader picks a dialect and a source. The microphone opens with
// the browser's voice processing off; a fixture plays into the same
// audio graph (fixture-player.js), at real time. Over a WebSocket
// (websocket.js), capture-worklet.js frames the audio as 100 ms of
// linear16 at the dialect's rate and dialects.js sends each frame in
// the dialect's form; over WebRTC (webrtc.js, chapter 5's service) the
// graph's output is the call's track, and the browser sends it as Opus.
// Either way dialects.js reads the answers. Interim text is grey and
// replaced in place; each final is a black line with its latency from
// the end of speech (the audio of its last word sent, to the final
// received) and the utterance's time to first result, against the
// book's 300 ms rule. The meter is the level the page computes (the
// worklet's, per 100 ms); the VAD state is the server's.
//
// `?key=` prefills the key; with none, the page asks its server for a
// short-lived token (chapter 9's service). `?dialect=`, `?source=`
// (`microphone` or a fixture id) and `?capture=` preselect the choices;
// `?rate=44100` runs the AudioContext at that rate instead of the
// device's, to try the worklet's resampling. The microphone's other
// capture, MediaRecorder (Deepgram's WebSocket only), sends the
// browser's own WebM/Opus blobs as they come; the server decodes them.

import { CLIENTS } from "./dialects.js";
import { playFixture } from "./fixture-player.js";
import { clientSecret, openCall } from "./webrtc.js";
import { openSocket } from "./websocket.js";

const FRAME_S = 0.1; // each frame carries 100 ms of audio
const RECORDER_TYPE = "audio/webm;codecs=opus";
const RULE_MS = 300; // the book's rule: a first result within 300 ms
// The transports this page speaks, and how an option names each.
const OVER = { websocket: "", webrtc: " over WebRTC" };

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
$("key").value = params.get("key") ?? "";
$("capture").value = params.get("capture") ?? "worklet";
window.interimCount = 0; // interims shown so far, read by the tests
window.loudestLevel = 0; // the meter's highest, read by the tests

let session = null; // the open stream: its link, audio graph, dialect
const tally = { utterances: 0, withinRule: 0 };

function setStatus(text) {
  $("status").textContent = text;
}

// What the server offers, as it says: dialects with a client on this
// page, over a transport it speaks, can be chosen; the others are
// listed as offered.
async function discover() {
  const [dialects, fixtures] = await Promise.all([
    fetch("/v1/dialects").then((r) => r.json()),
    fetch("/v1/fixtures").then((r) => (r.ok ? r.json() : { fixtures: [] })),
  ]);
  for (const { name, label, path, transport } of dialects.dialects) {
    const known = name in CLIENTS && transport in OVER;
    const text = label + (OVER[transport] ?? ` over ${transport}`);
    const option = new Option(
      known ? text : `${text} (no client on this page)`,
      transport === "websocket" ? name : `${name}-${transport}`);
    Object.assign(option.dataset, { name, path, transport });
    option.disabled = !known;
    $("dialect").append(option);
  }
  for (const fixture of fixtures.fixtures) {
    const option = new Option(`fixture: ${fixture.id}`, fixture.id);
    option.dataset.url = fixture.url;
    option.title = fixture.text;
    $("source").append(option);
  }
  choose($("dialect"), params.get("dialect") ?? "deepgram");
  choose($("source"), params.get("source") ?? "microphone");
  chosen();
  $("start").disabled = !$("dialect").value;
  if (!$("dialect").value) setStatus("no dialect this page can speak");
}

// The option asked for, if it can be chosen; else the first that can.
function choose(select, value) {
  const open = [...select.options].filter((o) => !o.disabled);
  select.value = (open.find((o) => o.value === value) ?? open[0])?.value
    ?? "";
}

function chosen() {
  const option = $("dialect").selectedOptions[0];
  const client = CLIENTS[option?.dataset.name];
  const microphone = $("source").value === "microphone";
  // Only Deepgram's WebSocket takes a container as it comes.
  $("capture").disabled = !(microphone && client?.containers
                            && option.dataset.transport === "websocket");
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

async function start() {
  const option = $("dialect").selectedOptions[0];
  const given = await credential();
  if (!given) return setStatus("enter an API key first");
  window.credentialKind = given.kind; // read by the tests
  const fixture = $("source").selectedOptions[0].dataset.url ?? null;
  const webrtc = option.dataset.transport === "webrtc";
  const recorded = !fixture && !webrtc
    && $("capture").value === "mediarecorder";
  if (recorded && !MediaRecorder.isTypeSupported(RECORDER_TYPE)) {
    return setStatus(`error: this browser cannot record ${RECORDER_TYPE}`);
  }
  enableChoices(false);
  setStatus("connecting");
  // Per stream: a dialect's client may keep state.
  const client = { ...CLIENTS[option.dataset.name] };
  const s = { link: null, client, context: null, stream: null,
              recorder: null, player: null, closing: false, error: null,
              utterance: null };
  session = s;
  const rate = Number(params.get("rate")) || undefined;
  if (!recorded) s.context = new AudioContext({ sampleRate: rate });
  const on = { message: (message) => heard(s, message),
               closed: (words) => closed(s, words) };
  const path = option.dataset.path;
  if (webrtc) return startCall(s, { path, given, fixture }, on);
  s.link = openSocket({ path, client, given, recorded }, on);
  if (!(await s.link.opened) || session !== s) return; // closed
  if (recorded) {
    s.stream = await openMicrophone();
    return session === s ? record(s) : releaseCapture(s);
  }
  // The source opens last: no audio is captured before there is a
  // way to send it, so the stream starts at its first sample.
  await playSource(s, fixture, await captureWorklet(s, true));
  streaming(s, `${s.context.sampleRate} Hz -> ${client.rate} Hz`);
}

// Over WebRTC the audio graph ends in the call's track; the worklet
// only measures the level. A typed key is traded for a client secret.
async function startCall(s, { path, given, fixture }, on) {
  let secret = given.secret;
  if (given.kind === "token") {
    secret = await clientSecret(given.secret);
    window.credentialKind = "client_secret";
  }
  const input = new GainNode(s.context); // where the source plays
  const track = new MediaStreamAudioDestinationNode(
    s.context, { channelCount: 1 });
  input.connect(await captureWorklet(s, false));
  input.connect(track);
  // Chromium sends no RTP while no source plays in the graph: a
  // source of zeros keeps the track going, so that silence is sent as
  // silence and the stream's clock runs on.
  const zeros = new ConstantSourceNode(s.context, { offset: 0 });
  zeros.connect(input);
  zeros.start();
  s.link = await openCall({ path, client: s.client, secret,
                           track: track.stream.getAudioTracks()[0] }, on);
  window.callId = s.link.id; // read by the tests
  if (!(await s.link.opened) || session !== s) return; // closed
  await playSource(s, fixture, input);
  streaming(s, `${s.context.sampleRate} Hz -> Opus over WebRTC`);
}

// The capture worklet: each 100 ms frame's level to the meter, and
// the frame itself to the link, where the page sends the audio.
async function captureWorklet(s, sendsFrames) {
  await s.context.audioWorklet.addModule("capture-worklet.js");
  // With no outputs the node is a sink, which the browser runs anyway.
  const worklet = new AudioWorkletNode(s.context, "capture", {
    numberOfOutputs: 0, processorOptions: { targetRate: s.client.rate },
  });
  let frames = 0;
  worklet.port.onmessage = ({ data }) => {
    showLevel(data.rms);
    frames += 1;
    if (!sendsFrames || session !== s || s.closing) return;
    // Frame i holds stream time [i, i + 1) x 100 ms.
    s.link.send(s.client.frame(data.pcm), frames * FRAME_S);
  };
  return worklet;
}

async function playSource(s, fixture, node) {
  if (fixture) {
    s.player = await playFixture(s.context, fixture, node);
    s.player.ended.then(() => stop(s));
  } else {
    s.stream = await openMicrophone();
    if (session !== s) return releaseCapture(s); // closed meanwhile
    s.context.createMediaStreamSource(s.stream).connect(node);
  }
}

function streaming(s, how) {
  if (session !== s) return;
  $("stop").disabled = false;
  const source = $("source").value;
  const from = source === "microphone" ? "" : ` (fixture ${source})`;
  setStatus(`streaming: ${how}${from}`);
}

// MediaRecorder: WebM/Opus blobs, each sent as it comes. The first one
// opens the container (its header); the server decodes them in order.
function record(s) {
  s.recorder = new MediaRecorder(s.stream, {
    mimeType: RECORDER_TYPE,
    audioBitsPerSecond: 32000, // speech: an eighth of 16 kHz linear16
  });
  // A blob holds what was recorded until it came, less what the
  // encoder still holds: its time is the recording's, roughly. The
  // last blob comes after Stop: it is the stream's end.
  s.recorder.ondataavailable = (event) => {
    const recordedS = (performance.now() - s.recordingSince) / 1000;
    if (event.data.size && session === s) {
      s.link.send(event.data, recordedS);
    }
  };
  s.recorder.onstop = () => s.link.finish();
  s.recorder.start(FRAME_S * 1000); // a blob every 100 ms
  s.recordingSince = performance.now();
  $("stop").disabled = false;
  setStatus(`streaming: MediaRecorder ${RECORDER_TYPE}`);
}

function stop(s = session) {
  if (!s || s.closing || session !== s) return;
  s.closing = true;
  // The recorder ends the stream after its last blob (onstop).
  const recording = s.recorder?.state === "recording";
  stopSources(s); // the graph runs on: a track sends its silence
  if (!recording) s.link.finish();
  $("stop").disabled = true;
  setStatus("closing");
}

function stopSources(s) {
  if (s.recorder?.state === "recording") s.recorder.stop();
  s.player?.stop();
  s.stream?.getTracks().forEach((track) => track.stop());
}

function releaseCapture(s) {
  stopSources(s);
  if (s.context?.state !== "closed") s.context?.close();
}

function enableChoices(enabled) {
  for (const id of ["start", "dialect", "source", "key"]) {
    $(id).disabled = !enabled;
  }
  if (enabled) chosen(); else $("capture").disabled = true;
}

function closed(s, words) {
  releaseCapture(s);
  if (session === s) session = null;
  $("interim").textContent = "";
  showVad(null);
  enableChoices(true);
  $("stop").disabled = true;
  const error = s.error ? `, after ${s.error}` : "";
  setStatus(`closed: ${words}${error}`);
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
    if (s.closing) s.link.finalShown();
  }
}

// The utterance's first result: from sending the audio of its first
// word (or, without word times, of the start of speech) to now.
function firstResult(s, result) {
  if (s.utterance) return;
  const spoken = result.firstEndS ?? result.startS;
  s.utterance = { firstMs: spoken === null ? null
    : s.link.sinceSent(spoken) };
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
  const ms = result.endS === null ? null : s.link.sinceSent(result.endS);
  latency.textContent = ms === null ? "? ms" : `${Math.round(ms)} ms`;
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

function fail(error) {
  const s = session;
  if (s?.link) {
    s.error = error.message;
    s.link.close(); // closed() shows the error with how it closed
    return;
  }
  if (s) releaseCapture(s);
  session = null;
  enableChoices(true);
  setStatus(`error: ${error.message}`);
}

$("controls").onsubmit = (event) => {
  event.preventDefault(); // stay on this page
  start().catch(fail);
};
$("stop").onclick = () => stop();
$("dialect").onchange = chosen;
$("source").onchange = chosen;
discover().catch((error) => setStatus(`error: ${error.message}`));
