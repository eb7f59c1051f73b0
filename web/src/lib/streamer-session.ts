// A reload is not the end of a stream: the streamer page keeps, for its tab
// (`sessionStorage`), who it is, its stream and that stream's publish token, and the capture
// settings. After a reload it registers again with that name (its channel token comes from
// `localStorage`, lib/channel.ts), takes the stream back with `stream:resume` within the
// server's grace period, and publishes again with the same settings, without a click. Viewers
// see a short "reconnecting", never "ended".
import type { StreamInfo } from './protocol';

type KeyValue = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

export const SESSION_KEY = 'streamhub.streamerSession';

/** The capture settings the page restores (the values of its selects and boxes). */
export interface CaptureSettings {
  source: string;
  mode: string;
  preset: string;
  fps: string;
  codec: string;
  base64: boolean;
}

export interface SavedSession {
  /** The registered streamer name ('' before registration). */
  name: string;
  /** The stream and its publish token, while there is one to take back. */
  stream: StreamInfo | null;
  publishToken: string;
  /** The stream was live (or resuming) when the page went away: resume it. */
  live: boolean;
  capture: CaptureSettings;
}

function isCapture(v: unknown): v is CaptureSettings {
  const c = v as CaptureSettings;
  return (
    !!c &&
    typeof c === 'object' &&
    ['source', 'mode', 'preset', 'fps', 'codec'].every((k) => typeof (c as unknown as Record<string, unknown>)[k] === 'string') &&
    typeof c.base64 === 'boolean'
  );
}

/** The tab's saved session, or null when there is none (or it is not one we wrote). */
export function loadSession(store: KeyValue): SavedSession | null {
  let v: unknown;
  try {
    v = JSON.parse(store.getItem(SESSION_KEY) ?? 'null');
  } catch {
    return null;
  }
  const s = v as SavedSession;
  if (!s || typeof s !== 'object' || typeof s.name !== 'string' || typeof s.publishToken !== 'string' || typeof s.live !== 'boolean') {
    return null;
  }
  if (!isCapture(s.capture)) return null;
  const stream = s.stream && typeof s.stream.streamKey === 'string' && s.stream.streamKey ? s.stream : null;
  return { name: s.name, stream, publishToken: stream ? s.publishToken : '', live: s.live && stream !== null, capture: s.capture };
}

export function saveSession(store: KeyValue, s: SavedSession): void {
  try {
    store.setItem(SESSION_KEY, JSON.stringify(s));
  } catch {
    /* storage full or refused: a reload then starts afresh, as before */
  }
}

/** What the page does first after a load, from what was saved. */
export type Restore =
  | { kind: 'fresh' }
  /** Registered before: register again with the name (a new stream comes with it). */
  | { kind: 'register'; name: string }
  /** Live before: register again, then `stream:resume` the saved stream. */
  | { kind: 'resume'; name: string; stream: StreamInfo; publishToken: string };

export function restorePlan(s: SavedSession | null): Restore {
  if (!s || !s.name) return { kind: 'fresh' };
  if (s.live && s.stream && s.publishToken) return { kind: 'resume', name: s.name, stream: s.stream, publishToken: s.publishToken };
  return { kind: 'register', name: s.name };
}

/** Whether leaving the page should ask first (`beforeunload`): only while on air. */
export function shouldWarnOnLeave(status: string): boolean {
  return status === 'live';
}
