// Presets ask the camera for what they promise (issue 17, point 3): the size to request, and
// what to tell the streamer when the camera gives something else. Pure.
import { PRESETS, type PresetName } from './quality';

export interface Size {
  width: number;
  height: number;
}

/** The 16:9 size a preset promises: 854x480, 1280x720, 1920x1080. */
export function presetSize(preset: PresetName): Size {
  const height = PRESETS[preset].height;
  return { width: Math.round((height * 16) / 9 / 2) * 2, height };
}

/**
 * getUserMedia video constraints for a preset: `ideal`, so a camera that cannot do it still
 * opens (at the closest size it has) and the page says so, rather than failing.
 */
export function cameraConstraints(preset: PresetName, fps: number): MediaTrackConstraints {
  const { width, height } = presetSize(preset);
  return { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: fps } };
}

/**
 * What the page says about the camera's actual size (`track.getSettings()`), or null when it
 * gives what the preset asks. Pictures are never scaled up: a smaller camera means smaller
 * frames, and the streamer should know.
 */
export function cameraNote(preset: PresetName, got: { width?: number; height?: number }): string | null {
  const want = presetSize(preset);
  if (!got.width || !got.height) return null;
  if (got.height >= want.height) return null;
  return `The camera gives ${got.width}x${got.height}, less than the ${want.height}p this preset asks for: frames are sent at ${got.height}p.`;
}

/** Frame height to send: the level's, never more than the source has (no upscaling). */
export function sendHeight(levelHeight: number, sourceHeight: number): number {
  if (!(sourceHeight > 0)) return levelHeight;
  return Math.min(levelHeight, sourceHeight);
}
