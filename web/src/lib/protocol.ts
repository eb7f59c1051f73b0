// The wire contract of docs/protocol.md. The types, event names (`EVENTS`), error codes,
// reactions and limits are generated from crates/streamhub-protocol into
// ../generated/protocol.ts and re-exported here; this module adds only what the pages need
// around them.
import type { Ack, ErrorCode } from '../generated/protocol';

export * from '../generated/protocol';

/** Failures the page reports itself (lib/socket.ts): no connection, no answer in time, an answer that is not an ack. */
export type LocalErrorCode = 'DISCONNECTED' | 'TIMEOUT' | 'BAD_ACK';

/** A refusal as the pages show it: the server's (`AckError`, `ErrorEvent`) or the page's own. */
export interface ErrorBody {
  code: ErrorCode | LocalErrorCode;
  message: string;
}

/** What a request resolves to: the server's ack, or a failure the page saw itself. */
export type Reply<T> = Ack<T> | { ok: false; error: { code: LocalErrorCode; message: string } };

/** A friendlier sentence for the error codes a person can run into from these pages. */
export function describeError(e: ErrorBody | undefined | null): string {
  if (!e) return 'Unknown error';
  switch (e.code) {
    case 'STREAM_NOT_FOUND':
      return 'Stream not found: it never existed or has ended.';
    case 'INVALID_USERNAME':
      return 'Choose a name of 1 to 32 characters with at least one visible character, without control characters.';
    case 'INVALID_TITLE':
      return 'The title can have at most 100 characters, without control characters.';
    case 'NAME_TAKEN':
      return 'This name is another streamer\'s channel. Pick another name (or go live from the browser that claimed it).';
    case 'FORBIDDEN':
      return 'This server needs a publish secret to go live (see "Advanced").';
    case 'RATE_LIMITED':
      return 'Slow down: too many messages, some were dropped.';
    case 'INVALID_MESSAGE':
      return 'Messages must be 1 to 500 characters.';
    case 'NOT_IN_STREAM':
      return 'You are not in this stream anymore.';
    case 'SERVER_FULL':
      return 'The server has too many live streams right now. Try again later.';
    case 'SHUTTING_DOWN':
      return 'The server is shutting down.';
    case 'STORAGE_UNAVAILABLE':
      return 'The server could not save your message, so nobody got it. Try again.';
    case 'TOO_MANY_STREAMS':
      return 'This connection owns too many streams. Reload the page to start over.';
    case 'FRAME_TOO_LARGE':
      return 'A frame was too large for the server and was refused; try a lower preset.';
    case 'TIMEOUT':
      return 'The server did not answer in time.';
    default:
      return e.message || e.code;
  }
}
