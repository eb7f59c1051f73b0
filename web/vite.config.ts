import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import type { Connect } from 'vite';
import { defineConfig, type Plugin } from 'vitest/config';
import { marked } from 'marked';
import { helpPageHtml, readmeSection } from './src/lib/help-page.ts';

const require = createRequire(import.meta.url);
/** The Rust server (`streamhub serve`) the dev server proxies to. */
const backend = process.env.STREAMHUB_URL ?? 'http://127.0.0.1:3000';

/**
 * Serves the socket.io client bundle at /socket.io/socket.io.js, as the seed's example pages
 * expect (`<script src="/socket.io/socket.io.js">`). The file is taken from the installed
 * `socket.io-client` npm package: written into dist/ at build time and answered from
 * node_modules by the dev and preview servers (before their /socket.io proxy, which would
 * send it to the Rust server).
 */
function socketIoClientBundle(): Plugin {
  const files = ['socket.io.js', 'socket.io.js.map'];
  const read = (name: string) => readFileSync(require.resolve(`socket.io-client/dist/${name}`));
  const serve: Connect.NextHandleFunction = (req, res, next) => {
    const name = req.url?.split('?')[0].replace(/^\/socket\.io\//, '');
    if (!req.url?.startsWith('/socket.io/') || !name || !files.includes(name)) return next();
    res.setHeader('Content-Type', name.endsWith('.js') ? 'text/javascript' : 'application/json');
    res.end(read(name));
  };
  return {
    name: 'streamhub:socket.io-client-bundle',
    configureServer(server) {
      server.middlewares.use(serve);
    },
    configurePreviewServer(server) {
      server.middlewares.use(serve);
    },
    generateBundle() {
      for (const name of files) {
        this.emitFile({ type: 'asset', fileName: `socket.io/${name}`, source: read(name) });
      }
    },
  };
}

/**
 * Help pages from sections of the repository's README (`help/https.html`: its "HTTPS"
 * section, linked from the streamer page when the camera is unavailable over plain HTTP),
 * rendered with `marked` at build time: written into dist/ and answered by the dev server.
 */
function readmeHelpPages(): Plugin {
  const pages = [{ file: 'help/https.html', heading: 'HTTPS' }];
  const readme = resolve(import.meta.dirname, '..', 'README.md');
  const render = (heading: string, stylesheet?: string) => {
    const md = readmeSection(readFileSync(readme, 'utf8'), heading);
    if (md === null) throw new Error(`README.md has no "## ${heading}" section (the streamer page links to it)`);
    return helpPageHtml(heading, marked.parse(md, { async: false }), stylesheet);
  };
  const serve: Connect.NextHandleFunction = (req, res, next) => {
    const page = pages.find((p) => req.url?.split('?')[0] === `/${p.file}`);
    if (!page) return next();
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.end(render(page.heading, '/src/styles.css'));
  };
  return {
    name: 'streamhub:readme-help-pages',
    configureServer(server) {
      server.middlewares.use(serve);
    },
    generateBundle(_options, bundle) {
      // src/styles.css, under the hashed name Vite gave the chunk that holds it.
      const css = Object.values(bundle).find(
        (f) => f.type === 'asset' && f.fileName.endsWith('.css') && String(f.source).includes('.camera-help'),
      )?.fileName;
      for (const p of pages) {
        this.emitFile({ type: 'asset', fileName: p.file, source: render(p.heading, css ? `/${css}` : undefined) });
      }
    },
  };
}

const proxy = {
  '/socket.io': { target: backend, ws: true, changeOrigin: true },
  '/media': { target: backend, ws: true, changeOrigin: true },
  '/api': { target: backend, changeOrigin: true },
  '/healthz': { target: backend, changeOrigin: true },
  '/metrics': { target: backend, changeOrigin: true },
};

export default defineConfig({
  plugins: [socketIoClientBundle(), readmeHelpPages()],
  server: { proxy },
  preview: { proxy },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    rolldownOptions: {
      input: {
        index: resolve(import.meta.dirname, 'index.html'),
        streamer: resolve(import.meta.dirname, 'streamer.html'),
        viewer: resolve(import.meta.dirname, 'viewer.html'),
        dashboard: resolve(import.meta.dirname, 'dashboard.html'),
      },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
