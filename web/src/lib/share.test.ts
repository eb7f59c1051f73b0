import { describe, expect, it } from 'vitest';
import { buildShareLink, guestName, parseStreamKey } from './share';
import { hueOf, initials } from './avatar';

describe('buildShareLink', () => {
  it('links to the viewer page with the key', () => {
    expect(buildShareLink('http://localhost:3000', 'abc123')).toBe('http://localhost:3000/viewer.html?stream=abc123');
  });

  it('encodes the key and tolerates a trailing slash', () => {
    expect(buildShareLink('https://live.example/', 'a b&c')).toBe('https://live.example/viewer.html?stream=a%20b%26c');
  });
});

describe('parseStreamKey', () => {
  it('takes a bare key or the stream parameter of a share link', () => {
    expect(parseStreamKey('  k3y  ')).toBe('k3y');
    expect(parseStreamKey('http://h:3000/viewer.html?stream=XYZ')).toBe('XYZ');
    expect(parseStreamKey('/viewer.html?x=1&stream=Q%20R')).toBe('Q R');
    expect(parseStreamKey('')).toBe('');
    expect(parseStreamKey('   ')).toBe('');
  });
});

describe('names and placeholders', () => {
  it('guest names look like guest-1234', () => {
    expect(guestName(() => 0.1234)).toBe('guest-1234');
    expect(guestName(() => 0)).toBe('guest-0000');
    expect(guestName()).toMatch(/^guest-\d{4}$/);
  });

  it('initials and hue', () => {
    expect(initials('Ana Lopez')).toBe('AL');
    expect(initials('streamer42')).toBe('ST');
    expect(initials('  ')).toBe('?');
    expect(initials('élan_vital')).toBe('ÉV');
    expect(hueOf('abc')).toBe(hueOf('abc'));
    expect(hueOf('abc')).toBeGreaterThanOrEqual(0);
    expect(hueOf('abc')).toBeLessThan(360);
  });
});
