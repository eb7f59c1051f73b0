// Tiny DOM helpers. Text always goes in as text (textContent / createTextNode), never as HTML.

type Attrs = Record<string, string | number | boolean | undefined>;

/** Creates an element; string children become text nodes. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'class') node.className = String(v);
    else if (k === 'text') node.textContent = String(v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return node;
}

/** The element with this data-testid; throws if the page lacks it (a bug in the HTML). */
export function byTestId<T extends HTMLElement = HTMLElement>(id: string, root: ParentNode = document): T {
  const node = root.querySelector<T>(`[data-testid="${id}"]`);
  if (!node) throw new Error(`missing [data-testid="${id}"]`);
  return node;
}

export function setText(node: Element, text: string | number): void {
  const s = String(text);
  if (node.textContent !== s) node.textContent = s;
}

/** Shows a message in a banner element (hidden when the message is empty). */
export function showBanner(node: HTMLElement, message: string | null): void {
  node.textContent = message ?? '';
  node.hidden = !message;
}

/**
 * A banner whose messages each have a cause ("connection", "source", the refused event...):
 * clearing a cause takes its message down, so a banner does not outlive what it reports.
 * Shows the newest message still standing.
 */
export class CausedBanner {
  private causes = new Map<string, string>();

  constructor(private node: HTMLElement) {}

  set(cause: string, message: string): void {
    this.causes.delete(cause);
    this.causes.set(cause, message);
    this.draw();
  }

  /** Takes down the messages of these causes (or of every cause starting with `prefix*`). */
  clear(...causes: string[]): void {
    for (const c of causes) {
      if (c.endsWith('*')) {
        for (const k of [...this.causes.keys()]) if (k.startsWith(c.slice(0, -1))) this.causes.delete(k);
      } else {
        this.causes.delete(c);
      }
    }
    this.draw();
  }

  clearAll(): void {
    this.causes.clear();
    this.draw();
  }

  has(cause: string): boolean {
    return this.causes.has(cause);
  }

  private draw(): void {
    showBanner(this.node, [...this.causes.values()].pop() ?? null);
  }
}
