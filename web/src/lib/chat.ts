import { describeError, type ChatMessage, type ErrorBody } from './protocol';
import { el } from './dom';

/** How many chat lines a log keeps (older ones are removed from the DOM). */
export const CHAT_HISTORY = 200;

export function formatClock(ts: number): string {
  const d = new Date(ts);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

/**
 * One chat line. Username and message are user text: they are set as text nodes, so
 * "<img src=x onerror=alert(1)>" shows as those characters and never becomes markup.
 * Display names are not unique: the stream's streamer (by user id, `ownerId`) gets a
 * "streamer" tag, so a viewer who took the streamer's name cannot pass for them.
 */
export function renderChatMessage(msg: ChatMessage, ownUserId?: string | null, ownerId?: string | null): HTMLElement {
  const mine = ownUserId != null && msg.user?.id === ownUserId;
  const owner = ownerId != null && msg.user?.id === ownerId;
  const classes = ['chat-msg', mine ? 'mine' : '', owner ? 'owner' : ''].filter(Boolean).join(' ');
  return el(
    'div',
    { class: classes, 'data-testid': 'chat-message', 'data-id': msg.id },
    el('time', { class: 'chat-time', datetime: new Date(msg.timestamp).toISOString() }, formatClock(msg.timestamp)),
    el('span', { class: 'chat-user' }, String(msg.user?.username ?? '?')),
    ...(owner ? [el('span', { class: 'chat-tag', 'data-testid': 'chat-owner-tag' }, 'streamer')] : []),
    el('span', { class: 'chat-text' }, String(msg.message ?? '')),
  );
}

/** A system line (joined, ended, errors) in the same log; `key` names a coalescing notice. */
export function renderNotice(text: string, key?: string): HTMLElement {
  return el('div', { class: 'chat-notice', 'data-testid': 'chat-notice', 'data-key': key }, text);
}

/** The notice for a refused `chat:send`: the message stays in the input, so say so. */
export function chatRefusal(e: ErrorBody): { text: string; key: string } {
  if (e.code === 'RATE_LIMITED') {
    return { text: 'Slow down: your message was not sent. It is still in the box; send it again in a moment.', key: 'slow-down' };
  }
  return { text: describeError(e), key: `refused-${e.code}` };
}

/**
 * A chat log element: appends lines, keeps the last CHAT_HISTORY, ignores duplicates (the
 * same id twice) and keeps the view pinned to the bottom unless the user scrolled up.
 */
export class ChatLog {
  private seen = new Set<string>();

  constructor(
    readonly root: HTMLElement,
    private ownUserId: () => string | null = () => null,
    readonly max = CHAT_HISTORY,
    private ownerId: () => string | null = () => null,
  ) {}

  add(msg: ChatMessage): void {
    if (msg.id) {
      if (this.seen.has(msg.id)) return;
      this.seen.add(msg.id);
    }
    this.append(renderChatMessage(msg, this.ownUserId(), this.ownerId()));
  }

  /**
   * A system line. With a `key`, an earlier line of that key is removed first, so repeated
   * refusals (ten "Slow down" in a row) stay one line, at the bottom.
   */
  notice(text: string, key?: string): void {
    if (key) {
      for (const n of this.root.querySelectorAll<HTMLElement>('.chat-notice[data-key]')) {
        if (n.dataset.key === key) n.remove();
      }
    }
    this.append(renderNotice(text, key));
  }

  private append(node: HTMLElement): void {
    const r = this.root;
    const atBottom = r.scrollHeight - r.scrollTop - r.clientHeight < 40;
    r.append(node);
    while (r.childElementCount > this.max) {
      const first = r.firstElementChild as HTMLElement;
      const id = first.dataset.id;
      if (id) this.seen.delete(id);
      first.remove();
    }
    if (atBottom) r.scrollTop = r.scrollHeight;
  }
}
