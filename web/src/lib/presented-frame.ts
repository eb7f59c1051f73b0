// The picture a <video> has on screen, for camera-to-screen in WebM mode (docs/architecture.md,
// "Capture time and clock sync"). `currentTime` runs on the clock while the decoder or the
// compositor falls behind (a busy machine: measured up to ~1.8 s ahead of the picture shown),
// so the media time of the last frame presented (requestVideoFrameCallback) is used instead.

/** What is used of a <video>: requestVideoFrameCallback (absent in older browsers) and events. */
export interface FrameSource {
  requestVideoFrameCallback?: (cb: (now: number, meta: { mediaTime: number }) => void) => number;
  addEventListener(type: 'emptied', listener: () => void): void;
}

/** After this long without a presented frame, `currentTime` is trusted again (a hidden tab stops the callbacks). */
export const PRESENTED_MAX_AGE_MS = 1000;

export class PresentedFrame {
  private mediaTime: number | null = null;
  private at = 0;

  constructor(video: FrameSource, readonly maxAgeMs = PRESENTED_MAX_AGE_MS) {
    const request = video.requestVideoFrameCallback?.bind(video);
    if (!request) return;
    const onFrame = (now: number, meta: { mediaTime: number }): void => {
      this.mediaTime = meta.mediaTime;
      this.at = now;
      request(onFrame);
    };
    request(onFrame);
    // A new source (a MediaSource rebuilt after an error) starts a new timeline.
    video.addEventListener('emptied', () => {
      this.mediaTime = null;
    });
  }

  /**
   * The media time (s) of the picture on screen at `now` (performance.now() ms): the last
   * presented frame's, or `currentTime` when none is known or the last is older than maxAgeMs.
   */
  current(currentTime: number, now: number): number {
    if (this.mediaTime === null || now - this.at > this.maxAgeMs) return currentTime;
    return this.mediaTime;
  }
}
