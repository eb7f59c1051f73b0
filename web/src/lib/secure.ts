// Why the camera is unavailable on an insecure origin, and how to get it back.
//
// Browsers expose navigator.mediaDevices only to secure contexts: pages over HTTPS, or
// http://localhost on the machine itself. A phone that opens http://192.168.1.20:3000 gets a
// page without a camera API, so "permission denied" or a bare "needs HTTPS" would leave the
// person guessing: the page says what happened and which of the fixes applies.
import { el } from './dom';

/** The README's HTTPS section, rendered into the build at build time (see vite.config.ts). */
export const HTTPS_HELP_PATH = '/help/https.html';

export type CameraAccess = 'ok' | 'insecure' | 'unsupported';

/** Whether this page can ask for the camera: only a secure page can; a secure one may still lack the API. */
export function cameraAccess(env: { isSecureContext: boolean; hasGetUserMedia: boolean }): CameraAccess {
  if (!env.isSecureContext) return 'insecure';
  return env.hasGetUserMedia ? 'ok' : 'unsupported';
}

/** The parts of `location` the advice is built from. */
export interface PageLocation {
  protocol: string;
  hostname: string;
  port: string;
  pathname: string;
  search: string;
}

export interface InsecureAdvice {
  /** The address the page was opened at (origin + path). */
  here: string;
  /** This page at the same host and port over HTTPS. */
  httpsUrl: string;
  /** This page on localhost at the same port (for the machine running the server). */
  localhostUrl: string;
  /** Whether the page was opened by a loopback name already (then only HTTPS helps, e.g. an embedded browser). */
  onLoopback: boolean;
}

export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** The addresses the advice links to, from where the page was opened. */
export function insecureAdvice(loc: PageLocation): InsecureAdvice {
  const host = loc.hostname.includes(':') && !loc.hostname.startsWith('[') ? `[${loc.hostname}]` : loc.hostname;
  const port = loc.port ? `:${loc.port}` : '';
  const path = `${loc.pathname}${loc.search}`;
  return {
    here: `${loc.protocol}//${host}${port}${loc.pathname}`,
    httpsUrl: `https://${host}${port}${path}`,
    localhostUrl: `http://localhost${port}${path}`,
    onLoopback: isLoopbackHost(loc.hostname),
  };
}

/**
 * Fills `box` with the explanation and the fixes and shows it; `preview` (the empty preview's
 * caption) gets a short pointer to it. Does nothing (box stays hidden) when the camera is usable.
 */
export function showCameraHelp(box: HTMLElement, preview: HTMLElement, access: CameraAccess, loc: PageLocation): void {
  if (access === 'ok') {
    box.hidden = true;
    return;
  }
  if (access === 'unsupported') {
    box.replaceChildren(
      el('h2', { id: 'camera-help-title' }, 'No camera in this browser'),
      el('p', {}, 'This browser has no camera API (navigator.mediaDevices.getUserMedia). Open the page in a current Chrome, Firefox, Safari or Edge.'),
    );
    preview.textContent = 'No camera API in this browser';
    box.hidden = false;
    return;
  }
  const a = insecureAdvice(loc);
  const link = (href: string, testid: string) => el('a', { href, 'data-testid': testid }, href);
  const steps = el(
    'ol',
    {},
    el(
      'li',
      {},
      'Open this page over HTTPS: ',
      link(a.httpsUrl, 'camera-help-https'),
      ' (when the server serves HTTPS there: StreamHub started with TLS, or a proxy in front of it).',
    ),
    el(
      'li',
      {},
      'Or start the server with HTTPS: ',
      el('code', {}, 'streamhub serve --tls-self-signed'),
      ' (add ',
      el('code', {}, '--http-redirect 0.0.0.0:3080'),
      ' to keep a plain address that forwards to it). The browser warns that the certificate is self-signed: accept it only after checking that its SHA-256 fingerprint is the one the server printed at start.',
    ),
    a.onLoopback
      ? null
      : el('li', {}, 'Or, on the computer running the server, open ', link(a.localhostUrl, 'camera-help-localhost'), '.'),
  );
  box.replaceChildren(
    el('h2', { id: 'camera-help-title' }, 'The camera is unavailable on this address'),
    el(
      'p',
      {},
      'Browsers give the camera and screen sharing only to secure pages: pages opened over HTTPS, or on localhost. This page was opened over plain HTTP at ',
      el('code', {}, a.here),
      ', so the browser hides the camera from it.',
    ),
    el('p', {}, 'To go live from this device:'),
    steps,
    el('p', {}, 'Step by step: ', el('a', { href: HTTPS_HELP_PATH, 'data-testid': 'camera-help-readme' }, 'HTTPS in the README'), '.'),
  );
  preview.textContent = 'Camera unavailable over plain HTTP: see above';
  box.hidden = false;
}
