// JPEG/WebP frames to a canvas: decoded off the main thread (createImageBitmap), newest first.

/**
 * Keeps at most one frame waiting: while one is decoding, a newer arrival replaces the
 * waiting one, so the canvas never lags behind a backlog. Every ImageBitmap is closed
 * after drawing; no object URL or data URL is made (except in the fallback for browsers
 * without createImageBitmap, which revokes its URL at once).
 */
export class ImageRenderer {
  framesDrawn = 0;
  decodeErrors = 0;
  width = 0;
  height = 0;
  private pending: { bytes: Uint8Array; type: string; captureTime?: number } | null = null;
  private busy = false;
  private ctx: CanvasRenderingContext2D | null;
  private stopped = false;

  constructor(
    private canvas: HTMLCanvasElement,
    /** After each picture is drawn, with the `captureTime` it came with. */
    private onDrawn: (captureTime?: number) => void = () => {},
  ) {
    this.ctx = canvas.getContext('2d', { alpha: false });
  }

  /** Queues a frame (replacing any frame still waiting) and decodes when free. */
  push(bytes: Uint8Array, type: string, captureTime?: number): void {
    if (this.stopped) return;
    this.pending = { bytes, type, captureTime };
    if (!this.busy) void this.pump();
  }

  /** Whether a frame is still waiting (for tests and stats). */
  get hasPending(): boolean {
    return this.pending !== null;
  }

  stop(): void {
    this.stopped = true;
    this.pending = null;
  }

  private async pump(): Promise<void> {
    this.busy = true;
    try {
      while (this.pending && !this.stopped) {
        const f = this.pending;
        this.pending = null;
        const blob = new Blob([f.bytes as BlobPart], { type: f.type });
        try {
          if (typeof createImageBitmap === 'function') {
            const bmp = await createImageBitmap(blob);
            try {
              this.draw(bmp, bmp.width, bmp.height, f.captureTime);
            } finally {
              bmp.close();
            }
          } else {
            const img = await loadImage(blob);
            this.draw(img, img.naturalWidth, img.naturalHeight, f.captureTime);
          }
        } catch {
          this.decodeErrors++;
        }
      }
    } finally {
      this.busy = false;
    }
  }

  private draw(src: CanvasImageSource, w: number, h: number, captureTime?: number): void {
    if (this.stopped || !this.ctx || !w || !h) return;
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.ctx.drawImage(src, 0, 0, w, h);
    this.width = w;
    this.height = h;
    this.framesDrawn++;
    this.onDrawn(captureTime);
  }
}

function loadImage(blob: Blob): Promise<HTMLImageElement> {
  const url = URL.createObjectURL(blob);
  const img = new Image();
  return new Promise<HTMLImageElement>((resolve, reject) => {
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('decode failed'));
    img.src = url;
  }).finally(() => URL.revokeObjectURL(url));
}
