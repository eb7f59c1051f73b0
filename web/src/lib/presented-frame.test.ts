import { describe, expect, it } from 'vitest';
import { PresentedFrame, type FrameSource } from './presented-frame';

/** A <video> stand-in whose frames and events the test drives. */
function fakeVideo(withCallback = true) {
  let pending: ((now: number, meta: { mediaTime: number }) => void) | null = null;
  const emptied: (() => void)[] = [];
  const video: FrameSource = {
    addEventListener: (_type, l) => emptied.push(l),
  };
  if (withCallback) {
    video.requestVideoFrameCallback = (cb) => {
      pending = cb;
      return 1;
    };
  }
  return {
    video,
    present(now: number, mediaTime: number) {
      const cb = pending;
      pending = null;
      cb?.(now, { mediaTime });
    },
    empty: () => emptied.forEach((l) => l()),
  };
}

describe('PresentedFrame', () => {
  it('is the last presented frame, not currentTime, while the screen lags', () => {
    const v = fakeVideo();
    const p = new PresentedFrame(v.video);
    expect(p.current(1.0, 0)).toBe(1.0); // nothing presented yet
    v.present(100, 0.9);
    v.present(133, 0.933);
    // The decoder stalls: currentTime goes on, the screen keeps 0.933.
    expect(p.current(1.5, 700)).toBe(0.933);
  });

  it('trusts currentTime again when the callbacks stop, and after a new source', () => {
    const v = fakeVideo();
    const p = new PresentedFrame(v.video, 1000);
    v.present(100, 5);
    expect(p.current(5.2, 1100)).toBe(5);
    expect(p.current(6.2, 1101)).toBe(6.2);
    v.present(1200, 6.3);
    expect(p.current(6.35, 1250)).toBe(6.3);
    v.empty();
    expect(p.current(0.1, 1260)).toBe(0.1);
    v.present(1300, 0.2);
    expect(p.current(0.25, 1310)).toBe(0.2);
  });

  it('without requestVideoFrameCallback it is currentTime', () => {
    const v = fakeVideo(false);
    const p = new PresentedFrame(v.video);
    expect(p.current(3.3, 10)).toBe(3.3);
  });
});
