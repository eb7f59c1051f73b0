import { describe, expect, it } from 'vitest';
import { AudioState, carriesSound, soundBadge, soundNote } from './audio';

describe('AudioState', () => {
  it('mute toggles, volume clamps and unmutes, autoplay block needs an unmute', () => {
    const a = new AudioState();
    const seen: string[] = [];
    a.subscribe((v) => seen.push(`${v.muted}/${v.volume}/${v.blocked}`));
    a.toggleMuted();
    a.setVolume(0.4);
    a.blocked();
    a.setMuted(false);
    a.setVolume(7);
    expect(seen).toEqual(['false/1/false', 'true/1/false', 'false/0.4/false', 'true/0.4/true', 'false/0.4/false', 'false/1/false']);
  });
  it('keeps the volume in storage', () => {
    const store = new Map<string, string>();
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) };
    new AudioState(storage).setVolume(0.25);
    expect(new AudioState(storage).current.volume).toBe(0.25);
  });
  it('says which modes carry sound', () => {
    expect(carriesSound('webm')).toBe(true);
    for (const m of ['jpeg', 'webp', 'webcodecs'] as const) {
      expect(carriesSound(m)).toBe(false);
      expect(soundNote(m)).toMatch(/No sound/);
    }
    expect(soundNote('webm')).toBe('');
    // a stream whose audio chunks came: WebCodecs and pictures carry sound too
    for (const m of ['jpeg', 'webp', 'webcodecs'] as const) {
      expect(carriesSound(m, true)).toBe(true);
      expect(soundNote(m, true)).toBe('');
    }
    expect(carriesSound('none', true)).toBe(false);
  });
  it('the badge says what the audio player does', () => {
    const on = { muted: false, volume: 1, blocked: false };
    expect(soundBadge(null, on)).toBe('');
    expect(soundBadge('playing', on)).toBe(' · sound');
    expect(soundBadge('playing', { ...on, muted: true })).toBe(' · sound muted');
    expect(soundBadge('blocked', { ...on, muted: true, blocked: true })).toMatch(/blocked/);
    expect(soundBadge('unsupported', on)).toMatch(/no sound/);
  });
});
