// The proxies of deploy/ (nginx.conf, Caddyfile) started as a user runs them, in front of a
// StreamHub: shared by compat/test/deploy.test.js (the client path through each) and the
// browser test web/e2e/proxy.test.mjs (the design note's pages through nginx). Each file is
// rendered with free ports and a self-signed certificate made here; the rendering replaces exact
// lines of the file and fails when one is missing, so the tests follow the file.

import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import https from 'node:https';
import http from 'node:http';
import path from 'node:path';
import { freePort } from './cluster.js';
import { COMPAT_DIR, until, withTimeout } from './helpers.js';

export const DEPLOY = path.resolve(COMPAT_DIR, '..', 'deploy');
export const NGINX = process.env.NGINX || (existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx');
export const CADDY = process.env.CADDY || 'caddy';

/** Replaces each exact `from` of `text` (which must occur `count` times, default 1) with `to`. */
export function render(text, file, replacements) {
  let out = text;
  for (const [from, to, count = 1] of replacements) {
    const found = out.split(from).length - 1;
    assert.equal(found, count, `${file}: expected ${count} × ${JSON.stringify(from)}, found ${found}; update the test`);
    out = out.split(from).join(to);
  }
  return out;
}

/** A self-signed certificate for 127.0.0.1 and localhost: {cert, key, ca}. */
export async function makeCert(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', key, '-out', cert,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return { cert, key, ca: await readFile(cert) };
}

/** GET over http or https (trusting `ca`); resolves {status, headers, body}. */
export function get(url, ca, headers = {}) {
  const lib = url.startsWith('https:') ? https : http;
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = lib.get(url, { ca, headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      });
      req.on('error', reject);
    }),
    5000,
    `GET ${url}`,
  );
}

/**
 * Spawns a proxy and resolves once `${url}/healthz` answers 200 through it. Returns
 * {url, httpUrl, logs(), stop()}.
 */
export async function startProxy(name, cmd, args, { url, httpUrl, ca, env = {} }) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  const append = (c) => {
    out = (out + c).slice(-64 * 1024);
  };
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', append);
  proc.stderr.on('data', append);
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const failed = new Promise((_, reject) => {
    proc.on('error', (e) => reject(new Error(`cannot start ${cmd}: ${e.message} (is ${name} installed?)`)));
    proc.on('exit', (code) => reject(new Error(`${name} exited (${code}):\n${out}`)));
  });
  failed.catch(() => {});
  process.on('exit', () => proc.kill('SIGKILL'));
  const proxy = {
    url,
    httpUrl,
    logs: () => `--- ${name} ---\n${out}`,
    async stop() {
      proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
  try {
    await Promise.race([
      failed,
      until(
        async () => {
          try {
            return (await get(`${url}/healthz`, ca)).status === 200;
          } catch {
            return false;
          }
        },
        15_000,
        `${name} to answer /healthz`,
      ),
    ]);
  } catch (e) {
    proc.kill('SIGKILL');
    e.message += `\n${proxy.logs()}`;
    throw e;
  }
  return proxy;
}

/** deploy/nginx.conf with its ports, certificate and upstream replaced, in `dir`. */
export async function startNginx(dir, upstream, cert, { perIp } = {}) {
  const [httpsPort, httpPort] = [await freePort(), await freePort()];
  const site = render(await readFile(path.join(DEPLOY, 'nginx.conf'), 'utf8'), 'deploy/nginx.conf', [
    ['server 127.0.0.1:3000;', `server ${upstream};`],
    ['    listen 80;\n', `    listen 127.0.0.1:${httpPort};\n`],
    ['    listen [::]:80;\n', ''],
    ['    listen 443 ssl http2;\n', `    listen 127.0.0.1:${httpsPort} ssl http2;\n`],
    ['    listen [::]:443 ssl http2;\n', ''],
    ['/etc/letsencrypt/live/stream.example.com/fullchain.pem', cert.cert],
    ['/etc/letsencrypt/live/stream.example.com/privkey.pem', cert.key],
    ['limit_conn streamhub_per_ip 256;', `limit_conn streamhub_per_ip ${perIp ?? 256};`],
  ]);
  await writeFile(path.join(dir, 'streamhub.conf'), site);
  const temp = (what) => `${what}_temp_path ${path.join(dir, `${what}-temp`)};`;
  await writeFile(
    path.join(dir, 'nginx.conf'),
    [
      `pid ${path.join(dir, 'nginx.pid')};`,
      'error_log stderr notice;',
      'worker_processes 1;',
      'events { worker_connections 1024; }',
      'http {',
      '  access_log off;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((w) => `  ${temp(w)}`),
      `  include ${path.join(dir, 'streamhub.conf')};`,
      '}',
      '',
    ].join('\n'),
  );
  const check = spawnSync(NGINX, ['-e', 'stderr', '-p', dir, '-c', path.join(dir, 'nginx.conf'), '-t'], {
    encoding: 'utf8',
  });
  if (check.error) throw new Error(`cannot run ${NGINX} (is nginx installed?): ${check.error.message}`);
  assert.equal(check.status, 0, `nginx -t refused deploy/nginx.conf:\n${check.stderr}`);
  return startProxy(NGINX, NGINX, ['-e', 'stderr', '-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], {
    url: `https://127.0.0.1:${httpsPort}`,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    ca: cert.ca,
  });
}

/** deploy/Caddyfile with its ports, certificate and upstream replaced, in `dir`. */
export async function startCaddy(dir, upstream, cert) {
  const [httpsPort, httpPort] = [await freePort(), await freePort()];
  const file = render(await readFile(path.join(DEPLOY, 'Caddyfile'), 'utf8'), 'deploy/Caddyfile', [
    ['\temail admin@example.com\n', `\tadmin off\n\thttp_port ${httpPort}\n\thttps_port ${httpsPort}\n`],
    ['stream.example.com {\n', `127.0.0.1:${httpsPort} {\n\ttls ${cert.cert} ${cert.key}\n`],
    ['reverse_proxy 127.0.0.1:3000 {', `reverse_proxy ${upstream} {`],
  ]);
  await writeFile(path.join(dir, 'Caddyfile'), file);
  // Caddy keeps its state under $HOME / $XDG_*: a directory of the test's own.
  const home = path.join(dir, 'home');
  await mkdir(home);
  return startProxy(CADDY, CADDY, ['run', '--adapter', 'caddyfile', '--config', path.join(dir, 'Caddyfile')], {
    url: `https://127.0.0.1:${httpsPort}`,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    ca: cert.ca,
    env: { HOME: home, XDG_DATA_HOME: path.join(home, 'data'), XDG_CONFIG_HOME: path.join(home, 'config') },
  });
}

