// @vitest-environment happy-dom
import { describe, expect, it } from 'vitest';
import jsQR from 'jsqr';
import { QR_QUIET, qrModules, qrPath, qrSvg, shareLinkNote, showShareQr } from './share-qr';
import { buildShareLink } from './share';

/** Dark cells (x, y) drawn by a path of qrPath's form: `M x y h w v1 h-w z` per run. */
function cellsOfPath(d: string): Set<string> {
  const cells = new Set<string>();
  const re = /M(\d+) (\d+)h(\d+)v1h-(\d+)z/g;
  let consumed = 0;
  for (let m = re.exec(d); m; m = re.exec(d)) {
    expect(m.index).toBe(consumed); // nothing between the rectangles
    consumed = re.lastIndex;
    const [x, y, w, back] = m.slice(1).map(Number);
    expect(back).toBe(w);
    for (let i = 0; i < w; i++) cells.add(`${x + i},${y}`);
  }
  expect(consumed).toBe(d.length);
  return cells;
}

/** An RGBA picture of `side` x `side` modules, `scale` pixels each, dark where `dark(x, y)`. */
function raster(side: number, dark: (x: number, y: number) => boolean, scale = 4) {
  const w = side * scale;
  const px = new Uint8ClampedArray(w * w * 4).fill(255);
  for (let y = 0; y < w; y++) {
    for (let x = 0; x < w; x++) {
      if (!dark(Math.floor(x / scale), Math.floor(y / scale))) continue;
      const o = (y * w + x) * 4;
      px[o] = px[o + 1] = px[o + 2] = 0;
    }
  }
  return { px, w };
}

const LINK = buildShareLink('https://streamhub.test:43123', 'sk_AbCdEf012345-_xyz');

describe('share link QR code', () => {
  it('encodes the viewer link: a real decoder (jsQR) reads it back from the modules', () => {
    const m = qrModules(LINK);
    expect(m.size).toBeGreaterThanOrEqual(21);
    expect(m.data.length).toBe(m.size * m.size);
    const side = m.size + 2 * QR_QUIET;
    const { px, w } = raster(side, (x, y) => {
      const [mx, my] = [x - QR_QUIET, y - QR_QUIET];
      return mx >= 0 && my >= 0 && mx < m.size && my < m.size && m.data[my * m.size + mx] === 1;
    });
    expect(jsQR(px, w, w)?.data).toBe(LINK);
  });

  it('different links give different codes', () => {
    const a = qrModules(buildShareLink('https://h', 'sk_a'));
    const b = qrModules(buildShareLink('https://h', 'sk_b'));
    expect(Array.from(a.data)).not.toEqual(Array.from(b.data));
  });

  it('the SVG path draws exactly the dark modules, inside the quiet zone', () => {
    const m = qrModules(LINK);
    const cells = cellsOfPath(qrPath(m));
    let dark = 0;
    for (let y = 0; y < m.size; y++) {
      for (let x = 0; x < m.size; x++) {
        const on = m.data[y * m.size + x] === 1;
        if (on) dark++;
        expect(cells.has(`${x + QR_QUIET},${y + QR_QUIET}`)).toBe(on);
      }
    }
    expect(cells.size).toBe(dark);
  });

  it('the <svg> element decodes to the link, is labelled, and carries no URL or inline style', () => {
    const svg = qrSvg(LINK, `QR code of ${LINK}`);
    const side = qrModules(LINK).size + 2 * QR_QUIET;
    expect(svg.namespaceURI).toBe('http://www.w3.org/2000/svg');
    expect(svg.getAttribute('viewBox')).toBe(`0 0 ${side} ${side}`);
    expect(svg.getAttribute('role')).toBe('img');
    expect(svg.getAttribute('aria-label')).toBe(`QR code of ${LINK}`);
    expect(svg.querySelector('title')?.textContent).toBe(`QR code of ${LINK}`);
    // Nothing the pages' CSP would have to allow: no data:/http URL, no style attribute, no script.
    const markup = svg.outerHTML;
    expect(markup).not.toMatch(/style=|href|data:|<script|<image/i);
    const cells = cellsOfPath(svg.querySelector('path')!.getAttribute('d')!);
    const { px, w } = raster(side, (x, y) => cells.has(`${x},${y}`));
    expect(jsQR(px, w, w)?.data).toBe(LINK);
  });
});

describe('showShareQr', () => {
  it('shows the code with a caption, keeps it while the link stays, hides it without a link', () => {
    const box = document.createElement('figure');
    box.hidden = true;
    showShareQr(box, LINK);
    expect(box.hidden).toBe(false);
    const svg = box.querySelector('svg');
    expect(svg).not.toBeNull();
    expect(box.querySelector('figcaption')?.textContent).toBe('Scan to watch on a phone');
    expect(box.querySelector('[data-testid="share-qr-note"]')).toBeNull(); // not a loopback link
    showShareQr(box, LINK);
    expect(box.querySelector('svg')).toBe(svg); // not made again
    showShareQr(box, buildShareLink('https://streamhub.test:43123', 'sk_other'));
    expect(box.querySelector('svg')).not.toBe(svg);
    showShareQr(box, null);
    expect(box.hidden).toBe(true);
    expect(box.childElementCount).toBe(0);
  });

  it('a localhost link gets a note: a phone scanning it would look on itself', () => {
    const box = document.createElement('figure');
    showShareQr(box, buildShareLink('http://localhost:3000', 'sk_x'));
    expect(box.querySelector('[data-testid="share-qr-note"]')?.textContent).toMatch(/network address/);
    for (const h of ['localhost', '127.0.0.1', '127.8.9.10', '::1', '[::1]', 'app.localhost']) expect(shareLinkNote(h)).not.toBeNull();
    for (const h of ['192.168.1.20', 'streamhub.test', 'mybox.local', '10.0.0.1', 'localhost.example']) expect(shareLinkNote(h)).toBeNull();
  });
});
