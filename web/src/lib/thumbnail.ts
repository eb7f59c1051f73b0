// Thumbnails: the streamer page sends a small JPEG of its camera every few seconds
// (`stream:thumbnail`); the lobby shows each live stream's latest
// (`GET /api/streams/{key}/thumbnail`), the initials when there is none.
import type { Socket } from 'socket.io-client';
import { EVENTS, THUMBNAIL_MAX_BYTES, THUMBNAIL_MIN_INTERVAL_MS, type Reply, type ThumbnailStored } from './protocol';
import { request } from './socket';

/** Width of a thumbnail: a lobby card is ~250–400 CSS px wide. */
export const THUMBNAIL_WIDTH = 320;
/** JPEG qualities tried in turn until the picture fits the server's limit. */
export const THUMBNAIL_QUALITIES = [0.6, 0.4, 0.25];
/** How often the streamer page sends one (the server accepts one a second per stream). */
export const THUMBNAIL_EVERY_MS = 5000;
/** How often the lobby asks for new thumbnails. */
export const LOBBY_THUMBNAIL_REFRESH_MS = 10_000;

/** The thumbnail's size for a `vw`×`vh` picture: `width` wide (never wider than the source), even. */
export function thumbnailSize(vw: number, vh: number, width = THUMBNAIL_WIDTH): { w: number; h: number } | null {
  if (!(vw > 0 && vh > 0)) return null;
  const w = Math.max(2, Math.round(Math.min(width, vw) / 2) * 2);
  const h = Math.max(2, Math.round((w * vh) / vw / 2) * 2);
  return { w, h };
}

/** Whether a thumbnail is due: the stream changed, or `every` passed since the last one sent. */
export function thumbnailDue(
  key: string | null,
  last: { key: string; at: number } | null,
  now: number,
  every = THUMBNAIL_EVERY_MS,
): boolean {
  if (!key) return false;
  if (!last || last.key !== key) return true;
  return now - last.at >= Math.max(every, THUMBNAIL_MIN_INTERVAL_MS);
}

/** Encodes a frame of `video` as a JPEG within the server's limit; null when it has no frame yet. */
export async function encodeThumbnail(video: HTMLVideoElement, canvas: HTMLCanvasElement): Promise<ArrayBuffer | null> {
  if (video.readyState < 2) return null;
  const size = thumbnailSize(video.videoWidth, video.videoHeight);
  const ctx = canvas.getContext('2d');
  if (!size || !ctx) return null;
  canvas.width = size.w;
  canvas.height = size.h;
  ctx.drawImage(video, 0, 0, size.w, size.h);
  for (const q of THUMBNAIL_QUALITIES) {
    const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, 'image/jpeg', q));
    if (blob && blob.size <= THUMBNAIL_MAX_BYTES) return blob.arrayBuffer();
  }
  return null;
}

/**
 * Sends the live stream's thumbnail in every mode (frames, WebM, WebCodecs): it reads the
 * preview `<video>`, never the encoder. `liveKey` says which stream is live (null: none).
 */
export class ThumbnailSender {
  private readonly canvas = document.createElement('canvas');
  private last: { key: string; at: number } | null = null;
  private busy = false;
  private timer: number | undefined;
  sent = 0;
  refused = 0;

  constructor(
    private readonly socket: Socket,
    private readonly video: HTMLVideoElement,
    private readonly liveKey: () => string | null,
  ) {}

  /** Checks once a second, so the first thumbnail follows going live within about a second. */
  start(): void {
    this.timer ??= window.setInterval(() => void this.tick(), 1000);
  }

  stop(): void {
    window.clearInterval(this.timer);
    this.timer = undefined;
  }

  private async tick(): Promise<void> {
    const key = this.liveKey();
    if (this.busy || !thumbnailDue(key, this.last, Date.now()) || !key) return;
    this.busy = true;
    try {
      const jpeg = await encodeThumbnail(this.video, this.canvas);
      if (!jpeg) return;
      const res: Reply<ThumbnailStored> = await request<ThumbnailStored>(this.socket, EVENTS.STREAM_THUMBNAIL, {
        streamKey: key,
        data: jpeg,
      });
      // Refused or not: wait a full interval (a refusal is not worth retrying sooner).
      this.last = { key, at: Date.now() };
      if (res.ok) this.sent++;
      else this.refused++;
    } finally {
      this.busy = false;
    }
  }
}

/** Where the lobby reads a stream's thumbnail. */
export function thumbnailUrl(key: string): string {
  return `/api/streams/${encodeURIComponent(key)}/thumbnail`;
}

/** The latest thumbnail of a stream for the lobby: a new blob when it changed, `null` when there is none. */
export interface ThumbnailFetch {
  (key: string, etag: string | null): Promise<{ etag: string; blob: Blob } | 'same' | null>;
}

/**
 * Asks for a thumbnail through the browser's cache: `no-cache` revalidates with the ETag
 * (`If-None-Match` → 304), so an unchanged picture costs a few header bytes.
 */
export const fetchThumbnail: ThumbnailFetch = async (key, etag) => {
  try {
    const res = await fetch(thumbnailUrl(key), { cache: 'no-cache' });
    if (!res.ok) return null;
    const tag = res.headers.get('etag') ?? '';
    if (etag && tag === etag) return 'same';
    return { etag: tag, blob: await res.blob() };
  } catch {
    return null;
  }
};

/** Object URLs, injectable for tests. */
export interface ObjectUrls {
  create(blob: Blob): string;
  revoke(url: string): void;
}

const browserUrls: ObjectUrls = {
  create: (blob) => URL.createObjectURL(blob),
  revoke: (url) => URL.revokeObjectURL(url),
};

/**
 * One lobby card's picture: shown over the initials once the stream has a thumbnail,
 * swapped only when its ETag changes, hidden again (initials) when it has none.
 */
export class CardThumbnail {
  etag: string | null = null;
  private url: string | null = null;
  private disposed = false;

  constructor(
    readonly img: HTMLImageElement,
    private readonly fetcher: ThumbnailFetch = fetchThumbnail,
    private readonly urls: ObjectUrls = browserUrls,
  ) {
    img.hidden = true;
  }

  async refresh(key: string): Promise<void> {
    const got = await this.fetcher(key, this.etag);
    // The card went while we asked: its picture must not outlive it (nor its blob URL).
    if (got === 'same' || this.disposed) return;
    if (got === null) {
      this.clear();
      return;
    }
    const url = this.urls.create(got.blob);
    if (this.url) this.urls.revoke(this.url);
    this.url = url;
    this.etag = got.etag;
    this.img.src = url;
    this.img.hidden = false;
  }

  /** The card is gone: frees the picture, and any answer still on its way is dropped. */
  dispose(): void {
    this.disposed = true;
    this.clear();
  }

  /** Back to the initials; frees the picture. */
  clear(): void {
    if (this.url) this.urls.revoke(this.url);
    this.url = null;
    this.etag = null;
    this.img.hidden = true;
    this.img.removeAttribute('src');
  }
}
