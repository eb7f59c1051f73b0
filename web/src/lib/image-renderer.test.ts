import { afterEach, describe, expect, it, vi } from 'vitest';
import { ImageRenderer } from './image-renderer';

/** A canvas stand-in: records what was drawn. */
function fakeCanvas() {
  const drawn: unknown[] = [];
  const canvas = {
    width: 0,
    height: 0,
    getContext: () => ({ drawImage: (src: unknown) => drawn.push(src) }),
  } as unknown as HTMLCanvasElement;
  return { canvas, drawn };
}

/** createImageBitmap whose decodes finish only when the test says so. */
function controlledDecoder() {
  const pending: { blob: Blob; resolve: (b: ImageBitmap) => void }[] = [];
  const closed: number[] = [];
  let n = 0;
  vi.stubGlobal('createImageBitmap', (blob: Blob) =>
    new Promise<ImageBitmap>((resolve) => pending.push({ blob, resolve })),
  );
  const finish = async () => {
    const p = pending.shift()!;
    const id = ++n;
    p.resolve({ width: 320, height: 240, close: () => closed.push(id), id } as unknown as ImageBitmap);
    await new Promise((r) => setTimeout(r, 0));
    return p.blob;
  };
  return { pending, closed, finish };
}

afterEach(() => vi.unstubAllGlobals());

describe('ImageRenderer', () => {
  it('keeps only the newest waiting frame while one is decoding, and closes every bitmap', async () => {
    const dec = controlledDecoder();
    const { canvas, drawn } = fakeCanvas();
    const r = new ImageRenderer(canvas);
    for (let i = 1; i <= 5; i++) r.push(new Uint8Array([0xff, 0xd8, 0xff, i]), 'image/jpeg');
    expect(dec.pending).toHaveLength(1); // frame 1 decoding; 2..4 replaced by 5
    const first = await dec.finish();
    expect(new Uint8Array(await first.arrayBuffer())[3]).toBe(1);
    expect(dec.pending).toHaveLength(1);
    const second = await dec.finish();
    expect(new Uint8Array(await second.arrayBuffer())[3]).toBe(5);
    expect(second.type).toBe('image/jpeg');
    expect(r.framesDrawn).toBe(2);
    expect(drawn).toHaveLength(2);
    expect(dec.closed).toEqual([1, 2]);
    expect(canvas.width).toBe(320);
    expect(canvas.height).toBe(240);
    expect(r.hasPending).toBe(false);
  });

  it('counts a frame that fails to decode and goes on', async () => {
    let calls = 0;
    vi.stubGlobal('createImageBitmap', () =>
      ++calls === 1 ? Promise.reject(new Error('bad')) : Promise.resolve({ width: 2, height: 2, close() {} }),
    );
    const { canvas } = fakeCanvas();
    const r = new ImageRenderer(canvas);
    r.push(new Uint8Array([1]), 'image/webp');
    await new Promise((res) => setTimeout(res, 0));
    r.push(new Uint8Array([2]), 'image/webp');
    await new Promise((res) => setTimeout(res, 0));
    expect(r.decodeErrors).toBe(1);
    expect(r.framesDrawn).toBe(1);
  });
});
