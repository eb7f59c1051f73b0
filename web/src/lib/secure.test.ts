// @vitest-environment happy-dom
import { describe, expect, it } from 'vitest';
import { cameraAccess, HTTPS_HELP_PATH, insecureAdvice, showCameraHelp } from './secure';

const lanPage = { protocol: 'http:', hostname: '192.168.1.20', port: '3000', pathname: '/streamer.html', search: '' };

describe('cameraAccess', () => {
  it('insecure whatever the API says; a secure page without the API is unsupported', () => {
    expect(cameraAccess({ isSecureContext: false, hasGetUserMedia: false })).toBe('insecure');
    expect(cameraAccess({ isSecureContext: false, hasGetUserMedia: true })).toBe('insecure');
    expect(cameraAccess({ isSecureContext: true, hasGetUserMedia: false })).toBe('unsupported');
    expect(cameraAccess({ isSecureContext: true, hasGetUserMedia: true })).toBe('ok');
  });
});

describe('insecureAdvice', () => {
  it('the same page over https, and on localhost at the same port', () => {
    const a = insecureAdvice({ ...lanPage, search: '?x=1' });
    expect(a.here).toBe('http://192.168.1.20:3000/streamer.html');
    expect(a.httpsUrl).toBe('https://192.168.1.20:3000/streamer.html?x=1');
    expect(a.localhostUrl).toBe('http://localhost:3000/streamer.html?x=1');
    expect(a.onLoopback).toBe(false);
  });

  it('default port, IPv6 literal, loopback', () => {
    expect(insecureAdvice({ ...lanPage, hostname: 'mybox.local', port: '' }).httpsUrl).toBe('https://mybox.local/streamer.html');
    expect(insecureAdvice({ ...lanPage, hostname: '[fe80::1]' }).httpsUrl).toBe('https://[fe80::1]:3000/streamer.html');
    expect(insecureAdvice({ ...lanPage, hostname: 'fe80::1' }).httpsUrl).toBe('https://[fe80::1]:3000/streamer.html');
    expect(insecureAdvice({ ...lanPage, hostname: '127.0.0.1' }).onLoopback).toBe(true);
  });
});

describe('showCameraHelp', () => {
  const setup = () => {
    const box = document.createElement('section');
    box.hidden = true;
    const preview = document.createElement('span');
    preview.textContent = 'Camera preview appears here';
    return { box, preview };
  };

  it('insecure: explains why, links the fixes and the README section, visible', () => {
    const { box, preview } = setup();
    showCameraHelp(box, preview, 'insecure', lanPage);
    expect(box.hidden).toBe(false);
    const text = box.textContent ?? '';
    expect(box.querySelector('h2')?.id).toBe('camera-help-title');
    expect(text).toContain('only to secure pages');
    expect(text).toContain('http://192.168.1.20:3000/streamer.html');
    expect(text).toContain('--tls-self-signed');
    expect(text).toContain('fingerprint');
    expect(box.querySelector<HTMLAnchorElement>('[data-testid="camera-help-https"]')?.getAttribute('href')).toBe('https://192.168.1.20:3000/streamer.html');
    expect(box.querySelector<HTMLAnchorElement>('[data-testid="camera-help-localhost"]')?.getAttribute('href')).toBe('http://localhost:3000/streamer.html');
    expect(box.querySelector<HTMLAnchorElement>('[data-testid="camera-help-readme"]')?.getAttribute('href')).toBe(HTTPS_HELP_PATH);
    expect(preview.textContent).toMatch(/plain HTTP/);
  });

  it('insecure on a loopback name: no localhost advice', () => {
    const { box, preview } = setup();
    showCameraHelp(box, preview, 'insecure', { ...lanPage, hostname: '127.0.0.1' });
    expect(box.querySelector('[data-testid="camera-help-localhost"]')).toBeNull();
    expect(box.querySelector('[data-testid="camera-help-https"]')).not.toBeNull();
  });

  it('a host name with markup stays text', () => {
    const { box, preview } = setup();
    showCameraHelp(box, preview, 'insecure', { ...lanPage, pathname: '/streamer.html', search: '?<img src=x onerror=alert(1)>' });
    expect(box.querySelector('img')).toBeNull();
  });

  it('unsupported: a different message; ok: stays hidden', () => {
    const { box, preview } = setup();
    showCameraHelp(box, preview, 'unsupported', lanPage);
    expect(box.hidden).toBe(false);
    expect(box.textContent).toContain('no camera API');
    expect(box.querySelector('[data-testid="camera-help-https"]')).toBeNull();
    const ok = setup();
    showCameraHelp(ok.box, ok.preview, 'ok', lanPage);
    expect(ok.box.hidden).toBe(true);
    expect(ok.preview.textContent).toBe('Camera preview appears here');
  });
});
