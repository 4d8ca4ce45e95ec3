// A sample fixture played as if it were the microphone.
//
// Chapter 4, "End-to-end architecture". A reader without a microphone
// (or on a server over SSH) can still stream: the page fetches a
// fixture from the service, decodes it at the AudioContext's rate, and
// plays it into the node a microphone feeds: the capture worklet, or,
// over WebRTC, the graph that ends in the call's track. Neither can
// tell the two apart: the audio arrives at real time, in the
// browser's render quanta, and is framed (or encoded) exactly as a
// capture would be, so every latency the page shows is one a speaker
// would see.

// --8<-- [start:fixture_player]
export async function playFixture(context, url, input) {
  const answer = await fetch(url);
  if (!answer.ok) throw new Error(`fixture ${url}: HTTP ${answer.status}`);
  // Decoded at the context's rate, as a microphone's samples would be.
  const audio = await context.decodeAudioData(await answer.arrayBuffer());
  const source = new AudioBufferSourceNode(context, { buffer: audio });
  // Mono, as the capture asks of a microphone: the first channel.
  const mono = new ChannelSplitterNode(context, {
    numberOfOutputs: audio.numberOfChannels,
  });
  source.connect(mono);
  mono.connect(input, 0); // where a microphone's source would go
  const ended = new Promise((resolve) => {
    source.onended = resolve;
  });
  // The context's clock paces it: one second of audio a second.
  source.start();
  return { ended, stop: () => source.stop(), seconds: audio.duration };
}
// --8<-- [end:fixture_player]
