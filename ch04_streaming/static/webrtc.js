// The WebRTC transport: the audio as a call's track, events beside it.
//
// Chapter 5, "WebRTC: jitter buffers, NAT traversal, codec negotiation",
// from the browser's side, as OpenAI's browser examples do it. A typed
// API key is traded for a short-lived client secret first (a page's own
// backend would do that, so that the page never holds the key). The
// page's audio graph ends in a MediaStreamAudioDestinationNode, whose
// track the browser encodes as Opus, exactly as a microphone's. The
// offer, with every ICE candidate gathered, is POSTed to the service's
// signalling route; the dialect's events arrive as JSON on the
// `oai-events` data channel, where the page's own events go too. When
// the input is over, the track sends a tail of silence, and the page
// ends the stream as the dialect does on a WebSocket (a browser has no
// way to send the RTCP BYE that ends a track). It has the same methods
// as websocket.js, bar `send`: the track carries the audio, not the
// page.

import { closeInWords } from "./close-codes.js";
import { endInput } from "./dialects.js";

const EVENTS_LABEL = "oai-events"; // the channel OpenAI's clients open
const SECRET_TTL_S = 60; // a client secret opens calls for a minute
// Silence after the input, to push its last frames out of the
// service's jitter buffer before the page says the input is over.
const TAIL_MS = 500;

async function refusal(reply) {
  const body = await reply.json().catch(() => ({}));
  const message = body.error?.message ?? reply.statusText;
  return new Error(`${reply.status} ${message}`);
}

export async function clientSecret(key) {
  const reply = await fetch("/v1/realtime/client_secrets", {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`,
               "Content-Type": "application/json" },
    body: JSON.stringify({
      expires_after: { anchor: "created_at", seconds: SECRET_TTL_S },
      session: { type: "transcription" },
    }),
  });
  if (!reply.ok) throw await refusal(reply);
  return (await reply.json()).value;
}

// The service takes no trickled candidates: the offer carries them all.
function gathered(pc) {
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") resolve();
    };
    pc.addEventListener("icegatheringstatechange", check);
    check();
  });
}

// The last event of a call the service ends carries its close code and
// reason ("1011 internal error"), which a channel's close cannot.
function closingOf(event) {
  if (event.type !== "error" || event.error?.code !== "session_closed") {
    return null;
  }
  const [, code, reason] = event.error.message.match(/^(\d+) ?(.*)$/)
    ?? [null, null, event.error.message];
  return { code: Number(code), reason };
}

// `on.message(json)` for each event; `on.closed(words)` once: the
// service's close code and reason, if it gave them, or what happened.
export async function openCall({ path, client, secret, track }, on) {
  const pc = new RTCPeerConnection();
  pc.addTransceiver(track, { direction: "sendonly" });
  const channel = pc.createDataChannel(EVENTS_LABEL);
  let mediaSince = null; // when RTP began to flow: stream time 0
  let closing = null;
  let ended = false;
  let finalShown = () => {};
  const end = (words) => {
    if (ended) return;
    ended = true;
    pc.close();
    on.closed(closing ? closeInWords(closing.code, closing.reason)
      : words);
  };
  const opened = new Promise((resolve) => {
    channel.onopen = () => resolve(true);
    channel.addEventListener("close", () => resolve(false));
  });
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") {
      mediaSince ??= performance.now();
    } else if (pc.connectionState === "failed") {
      end("the connection failed (ICE or DTLS)");
    }
  };
  channel.onmessage = ({ data }) => {
    const event = JSON.parse(data);
    const last = closingOf(event);
    if (last) closing = last;
    else on.message(event);
  };
  channel.onclose = () => end("the service ended the call");
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const reply = await fetch(path, {
    method: "POST",
    body: pc.localDescription.sdp,
    headers: { Authorization: `Bearer ${secret}`,
               "Content-Type": "application/sdp" },
  });
  if (reply.status !== 201) {
    pc.close();
    throw await refusal(reply);
  }
  await pc.setRemoteDescription({ type: "answer",
                                  sdp: await reply.text() });
  return {
    opened,
    id: reply.headers.get("Location")?.split("/").pop() ?? null,
    finish() {
      setTimeout(() => {
        if (channel.readyState !== "open") return;
        finalShown = endInput(client, (text) => channel.send(text),
                              () => end("hung up by this page at"
                                        + " the end of the input"));
      }, TAIL_MS);
    },
    finalShown: () => finalShown(),
    close: () => end("hung up by this page"),
    // RTP gives the page no receipt for the audio it sends, so the
    // stream's clock starts when the connection came up: the track
    // flows from then on (silence until a source plays into it).
    sinceSent(seconds) {
      if (mediaSince === null) return null;
      return performance.now() - mediaSince - seconds * 1000;
    },
  };
}
