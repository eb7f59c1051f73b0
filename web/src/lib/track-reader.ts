/**
 * Reads a MediaStreamTrackProcessor's frames (camera VideoFrames, microphone AudioData) until
 * the stream ends or the owner stops: what the WebCodecs video publisher and the audio
 * publisher both do. A frame read after the owner stopped is closed, never handed on.
 */
export async function readTrack<T extends { close(): void }>(
  reader: ReadableStreamDefaultReader<T>,
  running: () => boolean,
  onItem: (item: T) => void,
  onError: (message: string) => void,
): Promise<void> {
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done || !value) break;
      if (!running()) {
        value.close();
        break;
      }
      onItem(value);
    }
  } catch (e) {
    if (running()) onError((e as Error).message);
  }
}
