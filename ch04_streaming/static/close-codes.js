// WebSocket close codes in words, as the page shows them.
//
// Chapter 4, "Backpressure, errors and closing a stream": a close code
// is the last thing a stream says, and the reader should not need RFC
// 6455 open to know what 1008 meant. The codes are the RFC's and those
// the repository's services send; the reason the server gave follows.

const WORDS = {
  1000: "normal close",
  1001: "going away (the server is shutting down or draining)",
  1002: "protocol error",
  1003: "unsupported data",
  1005: "closed with no code",
  1006: "connection lost or refused before it opened",
  1007: "invalid data (audio the server could not decode)",
  1008: "policy violation (refused by the server's rules)",
  1009: "message too big",
  1011: "server error",
  1012: "service restarting",
  1013: "try again later (the server is overloaded)",
  1015: "TLS handshake failed",
};

export function closeInWords(code, reason) {
  const words = WORDS[code]
    ?? (code >= 4000 ? "closed by the service" : "unknown code");
  return `${code} ${words}${reason ? `: ${reason}` : ""}`;
}
