import { describe, expect, it } from 'vitest';
import { isVisibleChar, nameProblem } from './name';

describe('nameProblem', () => {
  it('refuses names that show nothing', () => {
    for (const blank of ['', '   ', '\u200B\u200B', '\u200D', '\uFEFF\u2060', '\u3164', '\u2800', '\u{E0041}']) {
      expect(nameProblem(blank), JSON.stringify(blank)).toMatch(/visible|Enter a name/);
    }
  });
  it('accepts names with one visible character', () => {
    for (const ok of ['ana', '\u200Ba\u200B', '👍', '李', 'x'.repeat(32)]) {
      expect(nameProblem(ok), ok).toBeNull();
    }
  });
  it('counts characters, refuses controls', () => {
    expect(nameProblem('x'.repeat(33))).toMatch(/at most 32/);
    expect(nameProblem('ñ'.repeat(32))).toBeNull();
    expect(nameProblem('a\u0000b')).toMatch(/control/);
  });
  it('knows the invisible marks', () => {
    expect(isVisibleChar('\u200B')).toBe(false);
    expect(isVisibleChar('a')).toBe(true);
  });
});
