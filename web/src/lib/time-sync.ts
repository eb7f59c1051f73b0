// The page's server clock, kept in sync over its Socket.IO connection with `time:sync`
// (the math: clock.ts).
import type { Socket } from 'socket.io-client';
import { EVENTS, type TimeSynced } from './protocol';
import { request } from './socket';
import { localFromPerf, localNow, ServerClock, startClockSync } from './clock';

/** A ServerClock measured on every (re)connect and every 30 s. */
export function syncedClock(socket: Socket): { clock: ServerClock; serverNow: () => number | null } {
  const clock = new ServerClock();
  const sync = startClockSync(clock, async () => {
    const res = await request<TimeSynced>(socket, EVENTS.TIME_SYNC, undefined, 3000);
    return res.ok && typeof res.serverTime === 'number' ? res.serverTime : null;
  });
  socket.on('connect', () => void sync.round());
  if (socket.connected) void sync.round();
  return { clock, serverNow: () => clock.toServer(localNow()) };
}

/**
 * When the picture a <video> shows now arrived (local ms): requestVideoFrameCallback's
 * `captureTime` (camera frames that have one) or `presentationTime`. A JPEG frame drawn from
 * the preview was captured then, not when the frame timer fired. Falls back to now where the
 * callback is missing or has not fired for a while (a hidden tab).
 */
export class PictureArrival {
  private at: number | null = null;

  constructor(video: HTMLVideoElement) {
    const v = video as HTMLVideoElement & {
      requestVideoFrameCallback?: (cb: (now: number, meta: { presentationTime?: number; captureTime?: number }) => void) => number;
    };
    if (typeof v.requestVideoFrameCallback !== 'function') return;
    const onFrame = (_now: number, meta: { presentationTime?: number; captureTime?: number }): void => {
      const t = meta.captureTime ?? meta.presentationTime;
      if (typeof t === 'number' && Number.isFinite(t)) this.at = localFromPerf(t);
      v.requestVideoFrameCallback!(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
  }

  /** The current picture's arrival, or now when unknown or older than `maxAgeMs`. */
  current(maxAgeMs = 250): number {
    const now = localNow();
    return this.at !== null && this.at <= now && now - this.at <= maxAgeMs ? this.at : now;
  }
}
