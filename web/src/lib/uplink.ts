import type { Socket } from 'socket.io-client';
import { EVENTS, type Ack, type ErrorBody, type Published } from './protocol';
import { payloadSize } from './media';
import { RateMeter, ewma } from './stats';

const ACK_TIMEOUT_MS = 5000;

/**
 * Sends frames with `stream:data:send` and an ack, so the page knows what is in flight and
 * how long the server takes to answer: the signals the quality controller reads.
 */
export class Uplink {
  readonly meter = new RateMeter(2000);
  framesSent = 0;
  framesAcked = 0;
  framesRefused = 0;
  timeouts = 0;
  lastViewers = 0;
  private pending = new Map<number, number>();
  private nextId = 0;
  private rtt: number | null = null;

  constructor(
    private socket: Socket,
    private onRefused: (e: ErrorBody) => void = () => {},
  ) {}

  get inFlight(): number {
    return this.pending.size;
  }

  /** Smoothed ack round-trip in ms (null before the first ack). */
  get rttMs(): number | null {
    return this.rtt === null ? null : Math.round(this.rtt);
  }

  /** Age of the oldest unacknowledged frame: a backlog shows here before any ack returns. */
  oldestPendingAge(now = performance.now()): number {
    for (const t of this.pending.values()) return now - t; // Map keeps insertion order
    return 0;
  }

  /** RTT as the controller sees it: the smoothed ack RTT or the oldest wait, whichever is worse. */
  congestionRtt(now = performance.now()): number | null {
    const age = this.oldestPendingAge(now);
    if (this.rtt === null) return age > 0 ? age : null;
    return Math.max(this.rtt, age);
  }

  /**
   * Sends one frame; false when the connection is down (nothing is queued then). `extra`
   * adds fields to the payload (WebCodecs: `chunk`, `config`).
   */
  send(streamKey: string, data: string | ArrayBuffer, extra?: Record<string, unknown>): boolean {
    if (!this.socket.connected) return false;
    const id = ++this.nextId;
    const t0 = performance.now();
    this.pending.set(id, t0);
    this.framesSent++;
    this.meter.add(Date.now(), payloadSize(data));
    this.socket.timeout(ACK_TIMEOUT_MS).emit(EVENTS.STREAM_DATA_SEND, { ...extra, streamKey, data }, (err: unknown, res: Ack<Published>) => {
      this.pending.delete(id);
      const took = performance.now() - t0;
      if (err) {
        this.timeouts++;
        this.rtt = ewma(this.rtt, ACK_TIMEOUT_MS, 0.5);
        return;
      }
      this.rtt = ewma(this.rtt, took, 0.25);
      if (res?.ok) {
        this.framesAcked++;
        if (typeof res.viewers === 'number') this.lastViewers = res.viewers;
      } else {
        this.framesRefused++;
        if (res && !res.ok) this.onRefused(res.error);
      }
    });
    return true;
  }

  /** Forget what was in flight (new connection: those acks will never come). */
  reset(): void {
    this.pending.clear();
    this.rtt = null;
  }
}
