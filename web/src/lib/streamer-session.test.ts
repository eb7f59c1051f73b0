import { describe, expect, it } from 'vitest';
import type { StreamInfo } from './protocol';
import { loadSession, restorePlan, saveSession, SESSION_KEY, shouldWarnOnLeave, type SavedSession } from './streamer-session';

class Mem {
  m = new Map<string, string>();
  getItem(k: string) {
    return this.m.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.m.set(k, v);
  }
  removeItem(k: string) {
    this.m.delete(k);
  }
}

const stream: StreamInfo = { streamKey: 'sk_a', title: 'T', streamer: { id: 'u', username: 'ana' }, status: 'live', createdAt: 1, startedAt: 2, viewerCount: 0 };
const capture = { source: 'camera', mode: 'webm', preset: 'high', fps: '30', codec: 'vp8', base64: false };
const live: SavedSession = { name: 'ana', stream, publishToken: 'pt_x', live: true, capture };

describe('the streamer session of a tab', () => {
  it('round-trips and plans a resume of a live stream', () => {
    const store = new Mem();
    saveSession(store, live);
    const back = loadSession(store);
    expect(back).toEqual(live);
    expect(restorePlan(back)).toEqual({ kind: 'resume', name: 'ana', stream, publishToken: 'pt_x' });
  });

  it('registers again when it was not live, and starts fresh without a name', () => {
    expect(restorePlan({ ...live, live: false })).toEqual({ kind: 'register', name: 'ana' });
    expect(restorePlan({ ...live, stream: null })).toEqual({ kind: 'register', name: 'ana' });
    expect(restorePlan({ ...live, name: '' })).toEqual({ kind: 'fresh' });
    expect(restorePlan(null)).toEqual({ kind: 'fresh' });
  });

  it('ignores what it did not write', () => {
    const store = new Mem();
    for (const bad of ['{', '42', 'null', JSON.stringify({ ...live, capture: { ...capture, base64: 'no' } }), JSON.stringify({ ...live, name: 7 })]) {
      store.setItem(SESSION_KEY, bad);
      expect(loadSession(store)).toBeNull();
    }
    // A stream without a key is no stream to resume (and its token goes with it).
    store.setItem(SESSION_KEY, JSON.stringify({ ...live, stream: { ...stream, streamKey: '' } }));
    expect(loadSession(store)).toEqual({ ...live, stream: null, publishToken: '', live: false });
  });

  it('a full storage does not throw', () => {
    const full = { getItem: () => null, removeItem: () => {}, setItem: () => { throw new Error('QuotaExceededError'); } };
    expect(() => saveSession(full, live)).not.toThrow();
  });

  it('asks before leaving only while live', () => {
    expect(shouldWarnOnLeave('live')).toBe(true);
    for (const s of ['idle', 'ready', 'ended', 'error', 'registering']) expect(shouldWarnOnLeave(s)).toBe(false);
  });
});
