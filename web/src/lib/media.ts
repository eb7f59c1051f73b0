// Media type sniffing and byte helpers shared by the streamer and the viewer.

export type MediaKind = 'jpeg' | 'webp' | 'webm' | 'unknown';

export const MIME: Record<Exclude<MediaKind, 'unknown'>, string> = {
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  webm: 'video/webm',
};

/**
 * What a frame is, from its first bytes: JPEG (FF D8 FF), WebP (RIFF....WEBP) or the EBML
 * header that starts a WebM stream (1A 45 DF A3). A WebM chunk from the middle of a
 * recording has no magic and is 'unknown'.
 */
export function sniff(bytes: Uint8Array): MediaKind {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (
    bytes.length >= 12 &&
    bytes[0] === 0x52 && // R
    bytes[1] === 0x49 && // I
    bytes[2] === 0x46 && // F
    bytes[3] === 0x46 && // F
    bytes[8] === 0x57 && // W
    bytes[9] === 0x45 && // E
    bytes[10] === 0x42 && // B
    bytes[11] === 0x50 // P
  )
    return 'webp';
  if (bytes.length >= 4 && bytes[0] === 0x1a && bytes[1] === 0x45 && bytes[2] === 0xdf && bytes[3] === 0xa3)
    return 'webm';
  return 'unknown';
}

const EBML_MAGIC = [0x1a, 0x45, 0xdf, 0xa3];

/**
 * Whether a chunk shorter than the EBML magic could be its start. Chrome's MediaRecorder
 * can emit a first chunk of a single byte (0x1A), so a viewer keeps such a chunk and sniffs
 * it together with the next one.
 */
export function couldStartEbml(bytes: Uint8Array): boolean {
  return bytes.length > 0 && bytes.length < EBML_MAGIC.length && bytes.every((b, i) => b === EBML_MAGIC[i]);
}

/** a followed by b, in a new array. */
export function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Decodes base64 (standard alphabet; a `data:...;base64,` prefix is skipped). */
export function base64ToBytes(text: string): Uint8Array {
  const i = text.startsWith('data:') ? text.indexOf('base64,') : -1;
  const b64 = i >= 0 ? text.slice(i + 7) : text;
  // atob (forgiving-base64) takes missing padding but not a dangling single character.
  const clean = b64.replace(/\s+/g, '');
  const usable = clean.length % 4 === 1 ? clean.slice(0, -1) : clean;
  const bin = atob(usable);
  const out = new Uint8Array(bin.length);
  for (let j = 0; j < bin.length; j++) out[j] = bin.charCodeAt(j);
  return out;
}

/** Encodes bytes as standard base64 (what FileReader's data URL carries after 'base64,'). */
export function bytesToBase64(bytes: Uint8Array): string {
  let bin = '';
  const step = 0x8000; // String.fromCharCode's argument list stays small
  for (let i = 0; i < bytes.length; i += step) {
    bin += String.fromCharCode.apply(null, Array.from(bytes.subarray(i, i + step)));
  }
  return btoa(bin);
}

/** The part of a data URL after 'base64,' (the seed's option 2 split on the first comma,
 *  which breaks on 'video/webm;codecs=vp8,opus': see engineering-notes.md). */
export function dataUrlPayload(dataUrl: string): string {
  const i = dataUrl.indexOf('base64,');
  return i >= 0 ? dataUrl.slice(i + 7) : dataUrl;
}

/** Frame payload as bytes: binary arrives as ArrayBuffer (or a view), seed frames as base64. */
export function frameBytes(data: unknown): Uint8Array | null {
  if (typeof data === 'string') {
    try {
      return base64ToBytes(data);
    } catch {
      return null;
    }
  }
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

/** Size on the wire of a payload we send, for the kbps meter. */
export function payloadSize(data: string | ArrayBuffer): number {
  return typeof data === 'string' ? data.length : data.byteLength;
}

const CLUSTER_ID = [0x1f, 0x43, 0xb6, 0x75];

function indexOf(hay: Uint8Array, needle: ArrayLike<number>, from = 0): number {
  outer: for (let i = from; i <= hay.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function ascii(s: string): number[] {
  return Array.from(s, (c) => c.charCodeAt(0));
}

/**
 * The MSE codecs string for a WebM stream, read from its header (the bytes before the first
 * Cluster): 'vp8,opus', 'vp8', 'vp9,opus', ... Returns null while the first Cluster has not
 * arrived yet (Chrome's first chunk can be a single byte), so the caller keeps collecting.
 */
export function webmCodecs(header: Uint8Array): string | null {
  const cluster = indexOf(header, CLUSTER_ID);
  if (cluster < 0) return null;
  return codecsOf(header.subarray(0, cluster));
}

/**
 * A frame the server marked `init: true`: it starts with the whole init segment (EBML header,
 * Segment, Info, Tracks), maybe followed by Clusters. Returns the init segment's length (up
 * to the first Cluster, or all of it) and the MSE codecs string.
 */
export function webmInit(frame: Uint8Array): { initLength: number; codecs: string } {
  const cluster = indexOf(frame, CLUSTER_ID);
  const initLength = cluster < 0 ? frame.length : cluster;
  return { initLength, codecs: codecsOf(frame.subarray(0, initLength)) };
}

function codecsOf(head: Uint8Array): string {
  const codecs: string[] = [];
  if (indexOf(head, ascii('V_VP8')) >= 0) codecs.push('vp8');
  else if (indexOf(head, ascii('V_VP9')) >= 0) codecs.push('vp9');
  else if (indexOf(head, ascii('V_AV1')) >= 0) codecs.push('av01.0.04M.08');
  if (indexOf(head, ascii('A_OPUS')) >= 0) codecs.push('opus');
  else if (indexOf(head, ascii('A_VORBIS')) >= 0) codecs.push('vorbis');
  return codecs.length ? codecs.join(',') : 'vp8';
}

/**
 * The start of a MediaRecorder recording, held back until it holds the whole EBML magic.
 * Chrome's first WebM chunk can be the single byte 0x1A; the server recognises a WebM stream
 * by a frame that *starts* with `1A 45 DF A3` (base64 `GkXf`), so a 1-byte first frame would
 * make it relay the recording as independent pictures (no re-cut, no join bundle). One
 * instance per recording; after the first frame everything passes through unchanged.
 */
export class RecordingStart {
  private held: Uint8Array | null = null;
  private started = false;

  /** The bytes to send for this chunk, or null while the start is held back. */
  push(chunk: Uint8Array): Uint8Array | null {
    if (this.started) return chunk;
    const bytes = this.held ? concatBytes(this.held, chunk) : chunk;
    if (bytes.length < EBML_MAGIC.length && couldStartEbml(bytes)) {
      this.held = bytes;
      return null;
    }
    this.held = null;
    this.started = true;
    return bytes;
  }
}
