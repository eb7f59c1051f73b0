// The share link as a QR code, for a phone to scan from the streamer page (its own module: only
// the streamer page loads the QR encoder).
import { create as createQr } from 'qrcode';
import { el } from './dom';
import { isLoopbackHost } from './secure';

/** A QR code's modules: `size` x `size`, row-major, 1 = dark. */
export interface QrModules {
  size: number;
  data: Uint8Array;
}

/** The QR code of `text` (error correction M: survives a smudged screen, stays small). */
export function qrModules(text: string): QrModules {
  const { modules } = createQr(text, { errorCorrectionLevel: 'M' });
  return { size: modules.size, data: Uint8Array.from(modules.data) };
}

/** Modules of light margin around the code: the quiet zone scanners need. */
export const QR_QUIET = 4;

/**
 * SVG path data for the dark modules, offset by the quiet zone: one rectangle per horizontal
 * run, so a link's code is a few hundred short commands rather than one per module.
 */
export function qrPath({ size, data }: QrModules, quiet = QR_QUIET): string {
  let d = '';
  for (let y = 0; y < size; y++) {
    let x = 0;
    while (x < size) {
      if (!data[y * size + x]) {
        x++;
        continue;
      }
      const start = x;
      while (x < size && data[y * size + x]) x++;
      d += `M${start + quiet} ${y + quiet}h${x - start}v1h${start - x}z`;
    }
  }
  return d;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * The QR code of `text` as an inline <svg> element, dark on a light square: built with DOM
 * calls, so the pages' Content-Security-Policy (no inline code, pictures only from data:/blob:)
 * has nothing to allow. `label` names it for screen readers.
 */
export function qrSvg(text: string, label: string): SVGSVGElement {
  const modules = qrModules(text);
  const side = modules.size + 2 * QR_QUIET;
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${side} ${side}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  svg.setAttribute('shape-rendering', 'crispEdges');
  const title = document.createElementNS(SVG_NS, 'title');
  title.textContent = label;
  const bg = document.createElementNS(SVG_NS, 'rect');
  bg.setAttribute('width', String(side));
  bg.setAttribute('height', String(side));
  bg.setAttribute('fill', '#fff');
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', qrPath(modules));
  path.setAttribute('fill', '#000');
  svg.append(title, bg, path);
  return svg;
}

/**
 * A note under the QR code when the link names this computer (localhost, 127.0.0.1): a phone
 * that scans it would look for the stream on itself. Null when the link works elsewhere.
 */
export function shareLinkNote(hostname: string): string | null {
  if (!isLoopbackHost(hostname)) return null;
  return "This link names this computer (localhost): a phone that scans it looks for the stream on itself. For a link that works on other devices, open this page by the computer's network address (over HTTPS, e.g. https://192.168.1.20:3000).";
}

/**
 * Shows the share link's QR code in `box` (with its caption and, for a loopback link, the
 * note), or hides it when there is no link. The code is made again only when the link changes.
 */
export function showShareQr(box: HTMLElement, link: string | null): void {
  if (!link) {
    box.replaceChildren();
    box.hidden = true;
    delete box.dataset.link;
    return;
  }
  if (box.dataset.link === link) return;
  box.dataset.link = link;
  const note = shareLinkNote(new URL(link).hostname);
  const caption = el('figcaption', {}, 'Scan to watch on a phone');
  box.replaceChildren(qrSvg(link, `QR code of the viewer link ${link}`), caption);
  if (note) box.append(el('p', { class: 'hint', 'data-testid': 'share-qr-note' }, note));
  box.hidden = false;
}
