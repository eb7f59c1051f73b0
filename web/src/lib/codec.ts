/** Anything WebCodecs can close: encoders and decoders, audio and video. */
interface Closable {
  readonly state: CodecState;
  close(): void;
}

/**
 * Closes a WebCodecs encoder or decoder unless it is already closed; closing can still throw
 * when an error closed it in between, which leaves it closed all the same.
 */
export function closeCodec(c: Closable | null | undefined): void {
  if (!c || c.state === 'closed') return;
  try {
    c.close();
  } catch {
    /* closed */
  }
}
