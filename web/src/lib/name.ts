// The server's username rule (validate::username in crates/streamhub-protocol), checked
// before sending so the page can say what is wrong without a round trip.
import { INVISIBLE_RANGES } from './protocol';

/** Whether `ch` (one code point) draws something: not whitespace, a control or an invisible mark. */
export function isVisibleChar(ch: string): boolean {
  if (/^[\s\p{Cc}]$/u.test(ch)) return false;
  const cp = ch.codePointAt(0) ?? 0;
  return !INVISIBLE_RANGES.some(([lo, hi]) => cp >= lo && cp <= hi);
}

/** Why `name` would be refused as a username (null when it is fine). */
export function nameProblem(name: string, max = 32): string | null {
  const trimmed = name.trim();
  const chars = [...trimmed];
  if (chars.length === 0) return 'Enter a name first.';
  if (chars.length > max) return `A name can have at most ${max} characters.`;
  if (chars.some((c) => /^\p{Cc}$/u.test(c))) return 'A name cannot contain control characters.';
  if (!chars.some(isVisibleChar)) return 'A name needs at least one visible character (not only spaces or zero-width characters).';
  return null;
}
