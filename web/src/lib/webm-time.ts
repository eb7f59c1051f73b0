// WebM capture times for the streamer (docs/protocol.md, "Capture time and clock sync"):
// MediaRecorder's block timecodes are capture times relative to the recording's start; a
// chunk's `captureTime` is the recording's start (local ms) plus its newest block's timecode.
// Pure: bytes and times go in, numbers come out.

const SEGMENT = 0x18538067;
const CLUSTER = 0x1f43b675;
const BLOCK_GROUP = 0xa0;
const TIMECODE = 0xe7;
const SIMPLE_BLOCK = 0xa3;
const BLOCK = 0xa1;
/** Elements whose children are read; every other element is skipped whole. */
const CONTAINERS = new Set([SEGMENT, CLUSTER, BLOCK_GROUP]);
/** Longest element header: a 4-byte id and an 8-byte size, plus a block's 4-byte prefix. */
const MAX_HEAD = 16;

/** A vint at `at`: its length and value (`raw` keeps the length marker, as element ids do). */
function vint(b: Uint8Array, at: number, raw: boolean): { len: number; value: number } | null {
  if (at >= b.length) return null;
  const first = b[at];
  let len = 1;
  while (len <= 8 && !(first & (0x80 >> (len - 1)))) len++;
  if (len > 8 || at + len > b.length) return null;
  let value = raw ? first : first & (0xff >> len);
  let unknown = value === (0xff >> len);
  for (let i = 1; i < len; i++) {
    value = value * 256 + b[at + i];
    if (b[at + i] !== 0xff) unknown = false;
  }
  return { len, value: !raw && unknown ? -1 : value };
}

/**
 * Reads a WebM byte stream as it is recorded, chunk by chunk (elements span chunks), and
 * reports the newest block timecode seen (ms, TimecodeScale 1 ms as MediaRecorder writes).
 * Holds at most a few bytes between chunks.
 */
export class WebmTimecodes {
  private held = new Uint8Array(0);
  private skip = 0;
  private cluster = 0;
  /** Newest block timecode so far, ms; null before the first block. */
  newest: number | null = null;

  /** Reads `chunk`; returns the newest block timecode after it (null: none yet). */
  push(chunk: Uint8Array): number | null {
    let b: Uint8Array;
    if (this.held.length) {
      b = new Uint8Array(this.held.length + chunk.length);
      b.set(this.held);
      b.set(chunk, this.held.length);
    } else {
      b = chunk;
    }
    let at = 0;
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, b.length - at);
        this.skip -= n;
        at += n;
        if (this.skip > 0) break;
      }
      const id = vint(b, at, true);
      const size = id && vint(b, at + id.len, false);
      if (!id || !size) break;
      const body = at + id.len + size.len;
      if (CONTAINERS.has(id.value)) {
        at = body; // read the children (Segment and Cluster come with unknown sizes)
        continue;
      }
      if (size.value < 0) {
        // An unknown-size element that is not a container: nothing more can be read safely.
        this.held = new Uint8Array(0);
        return this.newest;
      }
      if (id.value === TIMECODE || id.value === SIMPLE_BLOCK || id.value === BLOCK) {
        const need = id.value === TIMECODE ? size.value : 4;
        if (body + need > b.length) break; // wait for the rest
        if (id.value === TIMECODE) {
          let v = 0;
          for (let i = 0; i < size.value; i++) v = v * 256 + b[body + i];
          this.cluster = v;
        } else {
          const track = vint(b, body, false);
          if (track && body + track.len + 2 <= b.length) {
            const rel = ((b[body + track.len] << 8) | b[body + track.len + 1]) << 16 >> 16;
            const tc = this.cluster + rel;
            if (this.newest === null || tc > this.newest) this.newest = tc;
          }
        }
      }
      at = body;
      this.skip = size.value;
    }
    const rest = b.subarray(at);
    this.held = rest.length <= MAX_HEAD + 8 ? rest.slice() : new Uint8Array(0);
    return this.newest;
  }
}

/**
 * The local time of a recording's media time 0: the `start()` call, as Chrome's MediaRecorder
 * counts timecodes from the first frame it takes after it (checked against a clock painted into
 * the camera: within 1 ms). A chunk delivered before start + its newest timecode (a first frame
 * captured before the call) lowers it. The fastest delivery alone was the old estimate: it
 * carries the encoder's delay, and seconds more while a busy machine's first chunks come late.
 * A chunk's capture time is origin + its newest timecode.
 */
export class RecordingOrigin {
  /** The estimate (local ms). */
  origin: number;

  /** `startedAt`: local time just before `MediaRecorder.start()`. */
  constructor(startedAt: number) {
    this.origin = startedAt;
  }

  /** A chunk delivered at `deliveredAt` whose newest block is at `newest` ms: its capture time (local ms), null before any block. */
  chunk(deliveredAt: number, newest: number | null): number | null {
    if (newest === null) return null;
    this.origin = Math.min(this.origin, deliveredAt - newest);
    return this.origin + newest;
  }
}
