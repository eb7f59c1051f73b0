import { el } from './dom';
import { reactionIcon } from './icons';
import { REACTIONS, type Reaction } from './protocol';

const MAX_FLOATS = 40;
const MAX_ITEMS = 12;

/** How long the reaction bar's hint ("Slow down") stays up. */
export const HINT_MS = 2000;

/**
 * One button per reaction of the set (data-testid reaction-button, data-type = the emoji),
 * and a transient hint next to them (data-testid reaction-hint) for refusals.
 */
export function renderReactionButtons(root: HTMLElement, onPick: (type: string) => void): { hint(text: string): void } {
  const hintEl = el('span', { class: 'reaction-hint', 'data-testid': 'reaction-hint', role: 'status', hidden: true });
  let timer = 0;
  root.replaceChildren(
    ...REACTIONS.map((type) => {
      const b = el('button', {
        type: 'button',
        class: 'reaction-btn',
        'data-testid': 'reaction-button',
        'data-type': type,
        'aria-label': `React ${type}`,
        title: type,
      }, reactionIcon(type));
      b.addEventListener('click', () => onPick(type));
      return b;
    }),
    hintEl,
  );
  return {
    hint(text: string) {
      hintEl.textContent = text;
      hintEl.hidden = false;
      window.clearTimeout(timer);
      timer = window.setTimeout(() => (hintEl.hidden = true), HINT_MS);
    },
  };
}

/**
 * A reaction floating up over the player (data-testid reaction-float) for a couple of
 * seconds; removed when its CSS animation ends. Bounded: the oldest go first.
 */
export function floatReaction(layer: HTMLElement, r: Pick<Reaction, 'type'> & { user?: { username?: string } }): void {
  while (layer.childElementCount >= MAX_FLOATS) layer.firstElementChild?.remove();
  const left = 10 + Math.random() * 75;
  const drift = Math.round((Math.random() - 0.5) * 60);
  const node = el('span', {
    class: 'reaction-float',
    'data-testid': 'reaction-float',
    'data-type': r.type,
    title: r.user?.username ?? '',
  }, reactionIcon(r.type, 36));
  // Through the CSSOM, not a style attribute: the page's Content-Security-Policy allows no
  // inline styles, and it does not apply to these.
  node.style.left = `${left.toFixed(1)}%`;
  node.style.setProperty('--drift', `${drift}px`);
  const done = () => node.remove();
  node.addEventListener('animationend', done, { once: true });
  setTimeout(done, 4000); // in case animations are off
  layer.append(node);
}

/** An incoming reaction in the streamer's list (data-testid reaction-item), shown briefly. */
export function showReactionItem(list: HTMLElement, r: Reaction, ttlMs = 6000): void {
  while (list.childElementCount >= MAX_ITEMS) list.firstElementChild?.remove();
  const node = el('div', { class: 'reaction-item', 'data-testid': 'reaction-item', 'data-type': r.type },
    el('span', { class: 'reaction-emoji', title: r.type }, reactionIcon(r.type, 22)),
    el('span', { class: 'reaction-user' }, r.user?.username ?? ''),
  );
  list.append(node);
  setTimeout(() => {
    node.classList.add('leaving');
    setTimeout(() => node.remove(), 400);
  }, ttlMs);
}
