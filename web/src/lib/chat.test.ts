// @vitest-environment happy-dom
import { describe, expect, it } from 'vitest';
import { ChatLog, renderChatMessage } from './chat';
import type { ChatMessage } from './protocol';

const msg = (over: Partial<ChatMessage> = {}): ChatMessage => ({
  id: 'm1',
  streamKey: 'k',
  user: { id: 'u1', username: 'ana' },
  message: 'hello',
  timestamp: Date.UTC(2025, 0, 1, 12, 30),
  ...over,
});

describe('renderChatMessage', () => {
  it('renders markup in a message as text, never as HTML', () => {
    const evil = '<img src=x onerror=alert(1)>';
    const node = renderChatMessage(msg({ message: evil }));
    expect(node.querySelector('img')).toBeNull();
    expect(node.querySelector('.chat-text')!.textContent).toBe(evil);
    expect(node.innerHTML).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(node.getAttribute('data-testid')).toBe('chat-message');
  });

  it('renders markup in a username as text too', () => {
    const node = renderChatMessage(msg({ user: { id: 'u2', username: '<b onmouseover=x>bob</b>' } }));
    expect(node.querySelector('b')).toBeNull();
    expect(node.querySelector('.chat-user')!.textContent).toBe('<b onmouseover=x>bob</b>');
  });

  it("tags the streamer by user id, not by name: a viewer using the streamer's name gets no tag", () => {
    const streamer = renderChatMessage(msg({ user: { id: 'owner', username: 'carol' } }), null, 'owner');
    expect(streamer.querySelector('[data-testid=chat-owner-tag]')?.textContent).toBe('streamer');
    const impostor = renderChatMessage(msg({ user: { id: 'someone', username: 'carol' } }), null, 'owner');
    expect(impostor.querySelector('[data-testid=chat-owner-tag]')).toBeNull();
    expect(impostor.classList.contains('owner')).toBe(false);
  });

  it('marks own messages', () => {
    expect(renderChatMessage(msg(), 'u1').classList.contains('mine')).toBe(true);
    expect(renderChatMessage(msg(), 'other').classList.contains('mine')).toBe(false);
  });
});

describe('ChatLog', () => {
  it('keeps the recent history only and drops duplicate ids', () => {
    const root = document.createElement('div');
    const log = new ChatLog(root, () => null, 3);
    for (let i = 0; i < 5; i++) log.add(msg({ id: `m${i}`, message: `n${i}` }));
    log.add(msg({ id: 'm4', message: 'again' }));
    const texts = Array.from(root.querySelectorAll('[data-testid="chat-message"] .chat-text')).map((n) => n.textContent);
    expect(texts).toEqual(['n2', 'n3', 'n4']);
  });

  it('notices are text as well', () => {
    const root = document.createElement('div');
    new ChatLog(root).notice('<script>x</script>');
    expect(root.querySelector('script')).toBeNull();
    expect(root.textContent).toBe('<script>x</script>');
  });
});
