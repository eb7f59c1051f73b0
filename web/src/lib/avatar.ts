// Placeholder thumbnails: initials on a colour derived from the stream key (no frames fetched).

/** Up to two letters from a name: "Ana Lopez" → "AL", "streamer42" → "ST". */
export function initials(name: string): string {
  const words: string[] = name.match(/[\p{L}\p{N}]+/gu) ?? [];
  const [a = '', b = ''] = words;
  if (!a) return '?';
  const text = b ? (Array.from(a)[0] ?? '') + (Array.from(b)[0] ?? '') : Array.from(a).slice(0, 2).join('');
  return text.toUpperCase();
}

/** A stable hue (0..359) for a string. */
export function hueOf(key: string): number {
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) >>> 0;
  return h % 360;
}
