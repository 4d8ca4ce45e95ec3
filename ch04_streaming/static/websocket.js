// The WebSocket transport: each 100 ms frame in the dialect's form.
//
// Chapter 4, "End-to-end architecture": the transport step of capture ->
// codec -> transport. A browser cannot set headers on a WebSocket, so
// each dialect says how its credential travels (a subprotocol or the
// query; the server answers the subprotocol's kind, never echoing a
// secret). The send time of every frame is kept, to date the results
// about its audio. A close is told in words (close-codes.js); when a
// browser hides a refused upgrade behind 1006, the page asks the same
// URL over plain HTTP, with the same credential, for the server's
// reason. webrtc.js is the other transport, with the same methods.

import { closeInWords } from "./close-codes.js";
import { endInput } from "./dialects.js";

function streamUrl(path, query) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}?${query}`;
}

async function whyRefused(url, headers) {
  const answer = await fetch(url.replace(/^ws/, "http"), { headers })
    .catch(() => null);
  if (!answer || answer.ok) return null;
  const body = await answer.json().catch(() => ({}));
  return `${answer.status} ${body.reason ?? answer.statusText}`;
}

// `on.message(json)` for each answer; `on.closed(words)` once.
export function openSocket({ path, client, given, recorded }, on) {
  const auth = client.credentials(given.kind, given.secret);
  const query = [client.query(recorded), auth.query].filter(Boolean);
  const url = streamUrl(path, query.join("&"));
  const socket = new WebSocket(url, auth.protocols);
  socket.binaryType = "arraybuffer";
  const sent = []; // { untilS, at }: ten pairs a second is little
  let wasOpen = false;
  let finalShown = () => {};
  const opened = new Promise((resolve) => {
    socket.onopen = () => {
      wasOpen = true;
      resolve(true);
    };
    socket.addEventListener("close", () => resolve(false));
  });
  socket.onmessage = (event) => on.message(JSON.parse(event.data));
  socket.onclose = async ({ code, reason }) => {
    let words = closeInWords(code, reason);
    if (code === 1006 && !wasOpen) {
      const headers = client.header(given.kind, given.secret);
      const refusal = await whyRefused(url, headers);
      if (refusal) words += `; the server refused it: ${refusal}`;
    }
    on.closed(words);
  };
  const open = () => socket.readyState === WebSocket.OPEN;
  return {
    opened,
    // `untilS`: the stream time the frame's audio reaches.
    send(frame, untilS) {
      if (!open()) return;
      socket.send(frame);
      sent.push({ untilS, at: performance.now() });
    },
    finish() {
      if (!open()) return;
      finalShown = endInput(client, (text) => socket.send(text),
                            () => socket.close(1000));
    },
    finalShown: () => finalShown(),
    close: () => socket.close(),
    // Milliseconds since the frame that reached stream time `seconds`
    // was sent: the first frame that reaches it, searched from the
    // newest; the epsilon keeps a time on a frame boundary (0.3 s) in
    // the frame it closes, not the next one.
    sinceSent(seconds) {
      let index = sent.length - 1;
      while (index > 0 && sent[index - 1].untilS >= seconds - 1e-6) {
        index -= 1;
      }
      return index < 0 ? null : performance.now() - sent[index].at;
    },
  };
}
