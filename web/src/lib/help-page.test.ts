import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { helpPageHtml, readmeSection } from './help-page';

const md = ['# T', 'intro', '## A', 'a text', '```', '## not a heading (in a code block)', '```', 'more a', '## B', 'b text', ''].join('\n');

describe('readmeSection', () => {
  it('takes a section up to the next one, ignoring headings in code blocks', () => {
    expect(readmeSection(md, 'A')).toBe(['## A', 'a text', '```', '## not a heading (in a code block)', '```', 'more a'].join('\n') + '\n');
    expect(readmeSection(md, 'B')).toBe('## B\nb text\n');
    expect(readmeSection(md, 'C')).toBeNull();
  });

  it("the repository README has the HTTPS section the streamer page links to, with the self-signed way", () => {
    const readme = readFileSync(resolve(import.meta.dirname, '../../../README.md'), 'utf8');
    const s = readmeSection(readme, 'HTTPS');
    expect(s).not.toBeNull();
    expect(s).toContain('--tls-self-signed');
    expect(s).toContain('--tls-cert');
    expect(s).toContain('fingerprint');
  });
});

describe('helpPageHtml', () => {
  it('a page with no inline code, the stylesheet and a way back', () => {
    const html = helpPageHtml('HTTPS', '<h2>HTTPS</h2>', '/assets/x.css');
    expect(html).toContain('<link rel="stylesheet" href="/assets/x.css" />');
    expect(html).toContain('<title>StreamHub · HTTPS</title>');
    expect(html).toContain('href="/streamer.html"');
    expect(html).not.toMatch(/<script|<style|style=|\son[a-z]+=/i);
  });
});
