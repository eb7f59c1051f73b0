import { describe, expect, it } from 'vitest';
import type { ChannelState, StreamInfo } from './protocol';
import { agoText, channelFromPath, channelLink, offlineText, onChannelLive, onChannelState } from './channel-follow';

function stream(key: string): StreamInfo {
  return { streamKey: key, title: 'T', streamer: { id: 'u', username: 'Ana' }, status: 'live', createdAt: 1, startedAt: 2, viewerCount: 0 };
}
const offline: ChannelState = { name: 'ana', live: null, last: { title: 'Night ride', startedAt: 0, endedAt: 1_000 }, claimed: true };

describe('channel links', () => {
  it('reads the channel from /c/NAME and builds the link back', () => {
    expect(channelFromPath('/c/ana')).toBe('ana');
    expect(channelFromPath('/c/J%C3%BCrgen%20K/')).toBe('Jürgen K');
    expect(channelFromPath('/viewer.html')).toBeNull();
    expect(channelFromPath('/c/')).toBeNull();
    expect(channelFromPath('/c/a/b')).toBeNull();
    expect(channelFromPath('/c/%E0%A4%A')).toBeNull();
    expect(channelLink('https://h:3000/', ' Jürgen K ')).toBe('https://h:3000/c/J%C3%BCrgen%20K');
    expect(channelFromPath(new URL(channelLink('http://x', 'a/b?c')).pathname)).toBe('a/b?c');
  });
});

describe('following a channel', () => {
  it('switches to the live stream unless it plays it already', () => {
    expect(onChannelState('', { ...offline, live: stream('sk_a') }, 'Ana', 0)).toEqual({ kind: 'switch', key: 'sk_a' });
    expect(onChannelState('sk_old', { ...offline, live: stream('sk_a') }, 'Ana', 0)).toEqual({ kind: 'switch', key: 'sk_a' });
    expect(onChannelState('sk_a', { ...offline, live: stream('sk_a') }, 'Ana', 0)).toEqual({ kind: 'none' });
  });

  it('says offline with the last stream, or waits for the end of the one it plays', () => {
    expect(onChannelState('', offline, 'Ana', 181_000)).toEqual({
      kind: 'offline',
      text: 'Ana is offline. Last stream: “Night ride”, ended 3 min ago. This page plays the next one as soon as it starts.',
    });
    expect(onChannelState('sk_a', offline, 'Ana', 0)).toEqual({ kind: 'none' });
    expect(offlineText('Ana', null, 0)).toMatch(/^Ana is offline\. This page plays/);
    expect(offlineText('Ana', { title: 'x', endedAt: null }, 0)).toContain('Last stream: “x”.');
  });

  it('switches on channel:live of its own channel only', () => {
    expect(onChannelLive('sk_old', 'ana', { channel: 'ana', stream: stream('sk_new') })).toEqual({ kind: 'switch', key: 'sk_new' });
    expect(onChannelLive('sk_new', 'ana', { channel: 'ana', stream: stream('sk_new') })).toEqual({ kind: 'none' });
    expect(onChannelLive('', 'ana', { channel: 'bob', stream: stream('sk_b') })).toEqual({ kind: 'none' });
    expect(onChannelLive('', 'ana', null)).toEqual({ kind: 'none' });
  });

  it('never goes back to a stream it saw end (a node may still list it as live for a moment)', () => {
    const gone = new Set(['sk_a']);
    expect(onChannelState('', { ...offline, live: stream('sk_a') }, 'Ana', 181_000, gone)).toMatchObject({ kind: 'offline' });
    expect(onChannelState('', { ...offline, live: stream('sk_b') }, 'Ana', 0, gone)).toEqual({ kind: 'switch', key: 'sk_b' });
    expect(onChannelLive('', 'ana', { channel: 'ana', stream: stream('sk_a') }, gone)).toEqual({ kind: 'none' });
  });

  it('says how long ago', () => {
    expect(agoText(10_000)).toBe('just now');
    expect(agoText(-5)).toBe('just now');
    expect(agoText(90 * 60_000)).toBe('2 h ago');
    expect(agoText(3 * 86_400_000)).toBe('3 days ago');
  });
});
