// Build-time helper (vite.config.ts): help pages made from sections of the README, so the
// streamer page can link to "HTTPS in the README" on the server itself (a phone on a LAN may
// have no other copy of it) and the text is never written twice.

/** The markdown of `## heading` up to the next `## ` heading (or the end); null when absent. */
export function readmeSection(markdown: string, heading: string): string | null {
  const lines = markdown.replace(/\r\n/g, '\n').split('\n');
  let fenced = false;
  let start = -1;
  let end = lines.length;
  for (let i = 0; i < lines.length; i++) {
    if (/^(```|~~~)/.test(lines[i])) fenced = !fenced;
    if (fenced || !/^## /.test(lines[i])) continue;
    if (start >= 0) {
      end = i;
      break;
    }
    if (lines[i].slice(3).trim() === heading) start = i;
  }
  if (start < 0) return null;
  return lines.slice(start, end).join('\n').trim() + '\n';
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/**
 * A whole page around rendered markdown: no inline code (the server's Content-Security-Policy
 * allows none on our pages), the pages' stylesheet when given, a way back to the streamer page.
 */
export function helpPageHtml(title: string, bodyHtml: string, stylesheet?: string): string {
  const css = stylesheet ? `\n    <link rel="stylesheet" href="${escapeHtml(stylesheet)}" />` : '';
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="UTF-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <meta name="color-scheme" content="dark" />
    <title>StreamHub · ${escapeHtml(title)}</title>${css}
  </head>
  <body>
    <header class="topbar">
      <a class="brand" href="/"><span class="brand-dot"></span>StreamHub</a>
      <nav class="topbar-actions"><a href="/streamer.html">Go live</a></nav>
    </header>
    <main class="page help" data-testid="help">
${bodyHtml}
      <p class="muted">From the StreamHub README.</p>
    </main>
  </body>
</html>
`;
}
