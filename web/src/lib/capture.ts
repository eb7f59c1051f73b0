// Camera / screen capture with clear error messages.

export type Source = 'camera' | 'screen';

export class CaptureError extends Error {
  constructor(
    message: string,
    readonly kind: 'denied' | 'not-found' | 'busy' | 'insecure' | 'unsupported' | 'other',
  ) {
    super(message);
  }
}

function explain(err: unknown, source: Source): CaptureError {
  const name = (err as { name?: string })?.name ?? '';
  if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') {
    return source === 'camera'
      ? new CaptureError(
          'Camera permission denied. Allow camera access for this site (the camera icon in the address bar) and try again.',
          'denied',
        )
      : new CaptureError('Screen sharing was cancelled or denied.', 'denied');
  }
  if (name === 'NotFoundError' || name === 'OverconstrainedError' || name === 'DevicesNotFoundError') {
    return new CaptureError('No camera was found on this device.', 'not-found');
  }
  if (name === 'NotReadableError' || name === 'TrackStartError' || name === 'AbortError') {
    return new CaptureError('The camera is busy: another app or tab may be using it.', 'busy');
  }
  return new CaptureError(`Could not start the ${source}: ${(err as Error)?.message || name || 'unknown error'}`, 'other');
}

/**
 * Camera with microphone, falling back to camera only when audio fails; or the screen
 * (with its audio if the browser offers it).
 */
export async function acquire(
  source: Source,
  video: MediaTrackConstraints = { width: { ideal: 1280 }, height: { ideal: 720 } },
): Promise<MediaStream> {
  const md = navigator.mediaDevices;
  if (!md) {
    throw new CaptureError(
      'The camera is unavailable on this address: browsers allow it only over HTTPS or on localhost (how to fix it: at the top of the page).',
      'insecure',
    );
  }
  if (source === 'screen') {
    if (!md.getDisplayMedia) throw new CaptureError('Screen sharing is not supported by this browser.', 'unsupported');
    try {
      return await md.getDisplayMedia({ video: { frameRate: { ideal: 30 } }, audio: true });
    } catch (e) {
      throw explain(e, source);
    }
  }
  try {
    return await md.getUserMedia({ video, audio: true });
  } catch (first) {
    try {
      return await md.getUserMedia({ video, audio: false });
    } catch (second) {
      // A denied camera is the message that matters; otherwise report the video-only failure.
      const denied = [first, second].find((e) => (e as { name?: string })?.name === 'NotAllowedError');
      throw explain(denied ?? second, source);
    }
  }
}

export function stopTracks(stream: MediaStream | null): void {
  stream?.getTracks().forEach((t) => t.stop());
}

/** Whether canvas.toBlob really encodes WebP here (Safari and old Firefox fall back to PNG). */
export function canEncodeWebp(): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      const c = document.createElement('canvas');
      c.width = c.height = 2;
      c.toBlob((b) => resolve(b?.type === 'image/webp'), 'image/webp', 0.8);
    } catch {
      resolve(false);
    }
  });
}

/** The MediaRecorder WebM type for a stream: vp8+opus with audio, vp8 alone without. */
export function recorderMime(hasAudio: boolean): string | null {
  if (typeof MediaRecorder === 'undefined') return null;
  const wanted = hasAudio ? 'video/webm;codecs=vp8,opus' : 'video/webm;codecs=vp8';
  if (MediaRecorder.isTypeSupported(wanted)) return wanted;
  return MediaRecorder.isTypeSupported('video/webm') ? 'video/webm' : null;
}

export function blobToDataUrl(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onloadend = () => (typeof reader.result === 'string' ? resolve(reader.result) : reject(reader.error));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}
