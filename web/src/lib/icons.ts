// Inline SVG icons for the reactions and the UI. Emoji glyphs need an emoji font, and a
// system without one (a bare Linux, a kiosk) shows empty boxes: these draw the same
// everywhere. Built with createElementNS from plain data, so no markup is ever parsed.
import type { Reaction } from './protocol';

type Shape = [tag: 'path' | 'circle' | 'ellipse' | 'rect', attrs: Record<string, string | number>];

const FACE = '#ffcc4d';
const INK = '#664500';
const face: Shape = ['circle', { cx: 12, cy: 12, r: 10, fill: FACE }];

const REACTION_SHAPES: Record<string, Shape[]> = {
  '👍': [
    ['path', { d: 'M3 10h4v11H3z', fill: '#ffb02e' }],
    ['path', { d: 'M9 21h8.3a2 2 0 0 0 2-1.6l1.5-7.2A2 2 0 0 0 18.8 10H14V5.6A2.6 2.6 0 0 0 11.4 3L9 10z', fill: FACE }],
  ],
  '❤️': [
    ['path', { d: 'M12 21.4l-1.5-1.3C5.4 15.4 2 12.3 2 8.5 2 5.4 4.4 3 7.5 3c1.7 0 3.4.8 4.5 2.1C13.1 3.8 14.8 3 16.5 3 19.6 3 22 5.4 22 8.5c0 3.8-3.4 6.9-8.5 11.5z', fill: '#e0245e' }],
  ],
  '😂': [
    face,
    ['path', { d: 'M6.5 9.5q1.5-2 3 0M14.5 9.5q1.5-2 3 0', fill: 'none', stroke: INK, 'stroke-width': 1.6, 'stroke-linecap': 'round' }],
    ['path', { d: 'M6.5 13h11a5.5 5.5 0 0 1-11 0z', fill: INK }],
    ['path', { d: 'M3 10q-2 3 0 5 2-2 0-5zM21 10q2 3 0 5-2-2 0-5z', fill: '#5dadec' }],
  ],
  '😮': [
    face,
    ['circle', { cx: 8.5, cy: 9, r: 1.5, fill: INK }],
    ['circle', { cx: 15.5, cy: 9, r: 1.5, fill: INK }],
    ['ellipse', { cx: 12, cy: 16, rx: 2.6, ry: 3.2, fill: INK }],
  ],
  '😢': [
    face,
    ['circle', { cx: 8.5, cy: 10, r: 1.4, fill: INK }],
    ['circle', { cx: 15.5, cy: 10, r: 1.4, fill: INK }],
    ['path', { d: 'M8 17.5q4-3.5 8 0', fill: 'none', stroke: INK, 'stroke-width': 1.6, 'stroke-linecap': 'round' }],
    ['path', { d: 'M16.5 12.5q-1.6 2.6 0 3.5 1.6-.9 0-3.5z', fill: '#5dadec' }],
  ],
  '🔥': [
    ['path', { d: 'M12 2c1 4 6 6.5 6 12a6 6 0 0 1-12 0c0-3 1.6-4.8 2.8-6.4.3 1.6 1 2.6 2 3.2C11.4 8 12.4 5.4 12 2z', fill: '#f4900c' }],
    ['path', { d: 'M12 12c.5 2 3 3 3 5.5a3 3 0 0 1-6 0c0-1.6 1-2.6 1.7-3.4.3.8.7 1.2 1.1 1.4.3-1.2.4-2.3.2-3.5z', fill: FACE }],
  ],
  '👏': [
    ['rect', { x: 5, y: 7, width: 8, height: 13, rx: 4, fill: '#ffb02e', transform: 'rotate(-20 9 13.5)' }],
    ['rect', { x: 10, y: 6, width: 8, height: 13, rx: 4, fill: FACE, transform: 'rotate(15 14 12.5)' }],
    ['path', { d: 'M4 5l-1.5-2M8 3.5 7.5 1M19 3.5l1.5-2M21 7l2-1', fill: 'none', stroke: '#f4900c', 'stroke-width': 1.5, 'stroke-linecap': 'round' }],
  ],
  '🎉': [
    ['path', { d: 'M2 22l5-14 9 9z', fill: '#ffac33' }],
    ['path', { d: 'M4.2 16l1.2-3.4 6 6-3.4 1.2z', fill: '#dd2e44' }],
    ['circle', { cx: 14, cy: 4, r: 1.5, fill: '#5dadec' }],
    ['circle', { cx: 20, cy: 9, r: 1.5, fill: '#dd2e44' }],
    ['circle', { cx: 19, cy: 3, r: 1.2, fill: '#77b255' }],
    ['path', { d: 'M11 7q1-3 4-3M15 11q3-1 5 1', fill: 'none', stroke: '#aa8dd8', 'stroke-width': 1.5, 'stroke-linecap': 'round' }],
  ],
};

const UI_SHAPES = {
  volume: [
    ['path', { d: 'M3 9h4l5-4v14l-5-4H3z', fill: 'currentColor' }],
    ['path', { d: 'M15.5 8.5a5 5 0 0 1 0 7M18.5 5.5a9 9 0 0 1 0 13', fill: 'none', stroke: 'currentColor', 'stroke-width': 2, 'stroke-linecap': 'round' }],
  ],
  muted: [
    ['path', { d: 'M3 9h4l5-4v14l-5-4H3z', fill: 'currentColor' }],
    ['path', { d: 'M16 9l6 6M22 9l-6 6', fill: 'none', stroke: 'currentColor', 'stroke-width': 2, 'stroke-linecap': 'round' }],
  ],
  camera: [
    ['rect', { x: 2, y: 6, width: 14, height: 12, rx: 2, fill: 'none', stroke: 'currentColor', 'stroke-width': 1.8 }],
    ['path', { d: 'M16 10.5l6-3.5v10l-6-3.5z', fill: 'none', stroke: 'currentColor', 'stroke-width': 1.8, 'stroke-linejoin': 'round' }],
  ],
  broadcast: [
    ['circle', { cx: 12, cy: 12, r: 2.5, fill: 'currentColor' }],
    ['path', { d: 'M8 8a5.5 5.5 0 0 0 0 8M16 8a5.5 5.5 0 0 1 0 8M5 5a10 10 0 0 0 0 14M19 5a10 10 0 0 1 0 14', fill: 'none', stroke: 'currentColor', 'stroke-width': 1.8, 'stroke-linecap': 'round' }],
  ],
  eye: [
    ['path', { d: 'M2 12s3.5-7 10-7 10 7 10 7-3.5 7-10 7S2 12 2 12z', fill: 'none', stroke: 'currentColor', 'stroke-width': 2.2 }],
    ['circle', { cx: 12, cy: 12, r: 3, fill: 'none', stroke: 'currentColor', 'stroke-width': 2.2 }],
  ],
} satisfies Record<string, Shape[]>;

export type UiIcon = keyof typeof UI_SHAPES;

const NS = 'http://www.w3.org/2000/svg';

function svg(shapes: Shape[], size: number, label?: string): SVGSVGElement {
  const root = document.createElementNS(NS, 'svg');
  root.setAttribute('viewBox', '0 0 24 24');
  root.setAttribute('width', String(size));
  root.setAttribute('height', String(size));
  root.setAttribute('class', 'icon');
  if (label) {
    root.setAttribute('role', 'img');
    root.setAttribute('aria-label', label);
  } else {
    root.setAttribute('aria-hidden', 'true');
  }
  for (const [tag, attrs] of shapes) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    root.append(node);
  }
  return root;
}

/** The icon of a reaction (unknown ones, which the server refuses anyway, get a plain dot). */
export function reactionIcon(type: Reaction['type'] | string, size = 24): SVGSVGElement {
  return svg(REACTION_SHAPES[type] ?? [['circle', { cx: 12, cy: 12, r: 6, fill: 'currentColor' }]], size);
}

/** A UI icon (decorative unless given a label). */
export function uiIcon(name: UiIcon, size = 20, label?: string): SVGSVGElement {
  return svg(UI_SHAPES[name], size, label);
}
