// The page's client for each dialect the server may offer.
//
// Chapter 4, "Reference architectures from production providers": three
// providers (and chapter 5's own protocol) stream the same audio and
// answer with the same kind of results, but each names, shapes,
// authenticates and ends its stream in its own way. Each client here
// says how: the URL and subprotocols of its WebSocket (a browser cannot
// set headers on one), the rate it wants, how a 100 ms frame of
// linear16 goes out, how a stream ends, and how an answer reads as a
// common `Result`: interim or final text, the stream times of its first
// and last words, and the VAD's word on speech. The page lists what
// `/v1/dialects` says the server offers and uses a client from here
// where it has one; webrtc.js carries the same clients' events over a
// data channel.

// What the page reads from any dialect's message; null fields: unknown.
// { kind: "interim" | "final" | "vad" | "error" | "other",
//   text, startS, endS, speech: true | false | null, error }
const other = { kind: "other" };
const CLOSE_WAIT_MS = 5000; // for the close, once the input is over

function base64(buffer) {
  let binary = "";
  for (const byte of new Uint8Array(buffer)) {
    binary += String.fromCharCode(byte);
  }
  return btoa(binary);
}

const deepgram = {
  rate: 16000,
  containers: true, // MediaRecorder's WebM goes out as it is
  query(recorded) {
    const options = "interim_results=true&vad_events=true";
    return recorded ? options
      : `encoding=linear16&sample_rate=16000&${options}`;
  },
  // Deepgram's browser form: the key as the subprotocol pair `token`,
  // a short-lived token as `bearer`.
  credentials: (kind, secret) => ({ protocols: [kind, secret] }),
  // The same credential as a header, for a plain HTTP request.
  header: (kind, secret) => ({
    Authorization: `${kind === "bearer" ? "Bearer" : "Token"} ${secret}`,
  }),
  frame: (pcm) => pcm,
  finish: (send) => send(JSON.stringify({ type: "CloseStream" })),
  read(message) {
    if (message.type === "SpeechStarted") {
      return { kind: "vad", speech: true };
    }
    if (message.type === "UtteranceEnd") {
      return { kind: "vad", speech: false };
    }
    if (message.type !== "Results") return other;
    const best = message.channel.alternatives[0];
    const words = best.words ?? [];
    return {
      kind: message.is_final ? "final" : "interim",
      text: best.transcript,
      startS: words.length ? words[0].start : null,
      firstEndS: words.length ? words[0].end : null,
      endS: words.length ? words[words.length - 1].end : null,
      speech: message.speech_final ? false : null,
    };
  },
};

const assemblyai = {
  rate: 16000,
  containers: false,
  query: () => "sample_rate=16000&encoding=pcm_s16le",
  // AssemblyAI's browser form: the (temporary) token in the query.
  credentials: (kind, secret) => ({
    query: `token=${encodeURIComponent(secret)}`,
  }),
  header: () => ({}), // the query carries it
  frame: (pcm) => pcm,
  finish: (send) => send(JSON.stringify({ type: "Terminate" })),
  read(message) {
    if (message.type !== "Turn") return other;
    const words = message.words ?? [];
    const final = message.end_of_turn;
    return {
      kind: final ? "final" : "interim",
      text: message.transcript,
      // AssemblyAI's word times are whole milliseconds.
      startS: words.length ? words[0].start / 1000 : null,
      firstEndS: words.length ? words[0].end / 1000 : null,
      endS: words.length ? words[words.length - 1].end / 1000 : null,
      speech: !final, // a turn in progress is speech
    };
  },
};

const openai = {
  rate: 24000, // OpenAI's PCM16 is 24 kHz
  containers: false,
  query: () => "intent=transcription",
  // OpenAI's own browser form: the key as a subprotocol beside realtime.
  credentials: (kind, secret) => ({
    protocols: ["realtime", `openai-insecure-api-key.${secret}`],
  }),
  header: (kind, secret) => ({ Authorization: `Bearer ${secret}` }),
  frame: (pcm) => JSON.stringify({
    type: "input_audio_buffer.append", audio: base64(pcm),
  }),
  // The server's VAD commits each utterance; one still in speech is
  // committed here. The server does not close the stream: the page
  // does, once the transcript of any utterance begun is in.
  finish(send) {
    if (this.speaking) {
      send(JSON.stringify({ type: "input_audio_buffer.commit" }));
    }
    return { closeAfterFinal: Boolean(this.utterance) };
  },
  read(message) {
    switch (message.type) {
      case "input_audio_buffer.speech_started":
        this.speaking = true;
        this.utterance = { text: "", startS: message.audio_start_ms / 1000,
                           endS: null };
        return { kind: "vad", speech: true, startS: this.utterance.startS };
      case "input_audio_buffer.speech_stopped":
        this.speaking = false;
        if (this.utterance) this.utterance.endS = message.audio_end_ms / 1000;
        return { kind: "vad", speech: false };
      case "conversation.item.input_audio_transcription.delta":
        this.utterance ??= { text: "", startS: null, endS: null };
        this.utterance.text += message.delta;
        return { kind: "interim", text: this.utterance.text.trim(),
                 startS: this.utterance.startS, firstEndS: null,
                 endS: null, speech: null };
      case "conversation.item.input_audio_transcription.completed": {
        const done = this.utterance ?? { startS: null, endS: null };
        this.utterance = null;
        return { kind: "final", text: message.transcript.trim(),
                 startS: done.startS, firstEndS: null, endS: done.endS,
                 speech: null };
      }
      case "error":
        return { kind: "error", error: message.error.message };
      default:
        return other;
    }
  },
};

// Chapter 5's own protocol, in its two framings (`/ws/binary` and
// `/ws/base64`): the same messages, the audio as binary frames or as
// base64 in JSON text. It reports no VAD: an utterance with text and
// no final yet is speech, as AssemblyAI's turns are.
function chapter5(frame) {
  return {
    rate: 16000,
    containers: false,
    query: () => "encoding=linear16&sample_rate=16000&interim_results=true",
    credentials: (kind, secret) => ({
      query: `token=${encodeURIComponent(secret)}`,
    }),
    header: () => ({}), // the query carries it
    frame,
    finish: (send) => send(JSON.stringify({ type: "close" })),
    read(message) {
      if (message.type !== "transcript") return other;
      const words = message.words;
      return {
        kind: message.is_final ? "final" : "interim",
        text: message.text,
        startS: words.length ? words[0].start : null,
        firstEndS: words.length ? words[0].end : null,
        endS: words.length ? words[words.length - 1].end : null,
        speech: !message.is_final,
      };
    },
  };
}

export const CLIENTS = {
  deepgram,
  assemblyai,
  openai,
  "ws-binary": chapter5((pcm) => pcm),
  "ws-base64": chapter5((pcm) => JSON.stringify({
    type: "audio", data: base64(pcm),
  })),
};

// The input is over: the dialect's way of saying so, sent by `send`.
// A dialect whose server does not close the stream is closed here
// (`close`), at once or after the last final; the function returned is
// to be called on each final. Whoever should close, the page does if
// the stream is still open 5 s from now.
export function endInput(client, send, close) {
  const ending = client.finish(send) ?? {};
  if (ending.closeAfterFinal === false) {
    close();
    return () => {};
  }
  const timer = setTimeout(close, CLOSE_WAIT_MS);
  if (!ending.closeAfterFinal) return () => {};
  return () => {
    clearTimeout(timer);
    close();
  };
}
