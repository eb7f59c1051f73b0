// Links between pages and the clipboard.

/** The viewer link for a stream: ORIGIN/viewer.html?stream=KEY (the key URL-encoded). */
export function buildShareLink(origin: string, streamKey: string): string {
  return `${origin.replace(/\/+$/, '')}/viewer.html?stream=${encodeURIComponent(streamKey)}`;
}

/**
 * A stream key from what a person typed or pasted: a bare key, or a share link (the value of
 * its `stream` parameter). Empty string when there is nothing usable.
 */
export function parseStreamKey(input: string): string {
  const text = input.trim();
  if (!text) return '';
  if (/^https?:\/\//i.test(text) || text.includes('?stream=') || text.includes('&stream=')) {
    try {
      const url = new URL(text, 'http://x.invalid');
      const key = url.searchParams.get('stream');
      if (key) return key.trim();
    } catch {
      /* not a URL: fall through */
    }
  }
  return text;
}

/** Copies text: the async Clipboard API where allowed, else a hidden textarea + execCommand. */
export async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    /* permission refused: try the fallback */
  }
  const ta = document.createElement('textarea');
  ta.value = text;
  ta.setAttribute('readonly', '');
  ta.style.position = 'fixed';
  ta.style.opacity = '0';
  document.body.append(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}

/** "guest-1234": the name a viewer gets until they pick one. */
export function guestName(random: () => number = Math.random): string {
  return `guest-${String(Math.floor(random() * 10000)).padStart(4, '0')}`;
}
