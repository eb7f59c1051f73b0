import { describe, expect, it } from 'vitest';
import { channelTokenKey, claimFields, keepChannelToken } from './channel';

function memory(): Pick<Storage, 'getItem' | 'setItem'> {
  const m = new Map<string, string>();
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => void m.set(k, v) };
}

describe('channel tokens', () => {
  it('claims a new name, then proves the claim with the token it got', () => {
    const s = memory();
    expect(claimFields(s, 'Carol')).toEqual({ claim: true });
    keepChannelToken(s, 'Carol', 'ct_abc');
    expect(claimFields(s, 'carol')).toEqual({ claim: true, channelToken: 'ct_abc' });
    expect(claimFields(s, ' CAROL ')).toEqual({ claim: true, channelToken: 'ct_abc' });
    expect(claimFields(s, 'dave')).toEqual({ claim: true });
  });

  it('keeps nothing when the registration claimed nothing', () => {
    const s = memory();
    keepChannelToken(s, 'erin', undefined);
    expect(s.getItem(channelTokenKey('erin'))).toBeNull();
  });
});
