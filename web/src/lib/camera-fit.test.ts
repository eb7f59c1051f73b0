import { describe, expect, it } from 'vitest';
import { cameraConstraints, cameraNote, presetSize, sendHeight } from './camera-fit';

describe('presets ask the camera for what they promise', () => {
  it('High · 1080p asks for 1920x1080, Medium 1280x720, Low 854x480, at the chosen fps', () => {
    expect(presetSize('high')).toEqual({ width: 1920, height: 1080 });
    expect(presetSize('medium')).toEqual({ width: 1280, height: 720 });
    expect(presetSize('low')).toEqual({ width: 854, height: 480 });
    expect(cameraConstraints('high', 30)).toEqual({
      width: { ideal: 1920 },
      height: { ideal: 1080 },
      frameRate: { ideal: 30 },
    });
  });

  it('says what the camera gave when it is less than the preset', () => {
    expect(cameraNote('high', { width: 1920, height: 1080 })).toBeNull();
    expect(cameraNote('medium', { width: 1920, height: 1080 })).toBeNull(); // more is scaled down
    expect(cameraNote('high', { width: 1280, height: 720 })).toMatch(/1280x720.*1080p.*720p/);
    expect(cameraNote('high', {})).toBeNull(); // nothing known
  });

  it('never scales a picture up', () => {
    expect(sendHeight(1080, 720)).toBe(720);
    expect(sendHeight(480, 1080)).toBe(480);
    expect(sendHeight(720, 0)).toBe(720);
  });
});
