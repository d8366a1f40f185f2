// Serves the demo on two origins, as a deployment would: the miniapp (its own origin, loaded in an
// iframe) and a host page that embeds it through @appboxo/web-sdk. The host origin also plays the
// host app's backend for one call: minting a one-time auth code at the reference host app.
// Only node:http; every file comes from this repository or clients/js/node_modules.
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const clients = resolve(fileURLToPath(new URL('..', import.meta.url)));
const modules = join(clients, 'js', 'node_modules');

/** URL prefix → directory. The web SDK's own imports omit `.js`, resolved below. */
const roots = [
  ['/demo/', join(clients, 'demo')],
  ['/js/src/', join(clients, 'js', 'src')],
  ['/vendor/tweetnacl/', join(modules, 'tweetnacl')],
  ['/vendor/js-sdk/', join(modules, '@appboxo', 'js-sdk', 'dist')],
  ['/vendor/web-sdk/', join(modules, '@appboxo', 'web-sdk', 'dist')],
];

/** @type {Record<string, string>} */
const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
};

/** Users the reference host app knows; the host page offers these. */
const DEMO_USERS = ['alice', 'bob', 'carol'];

/** The file a path names, or the path to redirect to: the web SDK's imports omit `.js` and
 * `/index.js`, and a module's own relative imports resolve against its final URL.
 * @param {string} path @returns {Promise<{file: string} | {redirect: string} | null>} */
async function fileFor(path) {
  for (const [prefix, dir] of roots) {
    if (!path.startsWith(prefix)) continue;
    const rel = normalize(decodeURIComponent(path.slice(prefix.length)));
    const full = join(dir, rel);
    if (full !== dir && !full.startsWith(dir + sep)) return null;
    for (const suffix of ['', '.js', '/index.js', '/index.html']) {
      const candidate = full + suffix;
      if (!types[extname(candidate)]) continue;
      try {
        if ((await stat(candidate)).isFile()) return suffix && !path.endsWith('/') ? { redirect: path + suffix } : { file: candidate };
      } catch {
        // try the next candidate
      }
    }
    return null;
  }
  return null;
}

/**
 * @param {import('node:http').ServerResponse} res @param {number} status @param {any} body
 */
function json(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(body));
}

/** A §4 error body, so the demo's own endpoints answer like the services do.
 * @param {import('node:http').ServerResponse} res @param {number} status @param {string} code
 * @param {string} origin @param {Record<string, string>} details @param {string} [desc] */
function fail(res, status, code, origin, details, desc = '') {
  json(res, status, { code, origin, desc, details });
}

/** @param {import('node:http').IncomingMessage} req @returns {Promise<string>} */
async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > 4096) throw new Error('body too large');
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * @param {{hostPort: number, appPort: number, bind?: string, publicHost?: string,
 *   authUrl: string, boxesUrl: string, realtimeUrl: string, hostappUrl: string,
 *   clientId?: string, appId?: string, onRequest?: (url: string) => void}} o
 */
export async function startDemoServer(o) {
  const bind = o.bind ?? '127.0.0.1';
  const publicHost = o.publicHost ?? '127.0.0.1';
  const hostUrl = `http://${publicHost}:${o.hostPort}`;
  const appUrl = `http://${publicHost}:${o.appPort}`;
  const config = {
    authUrl: o.authUrl,
    boxesUrl: o.boxesUrl,
    realtimeUrl: o.realtimeUrl,
    hostUrl,
    appUrl,
    clientId: o.clientId ?? 'ref-hostapp',
    appId: o.appId ?? 'boxes-miniapp',
    users: DEMO_USERS,
  };

  /** @param {'host' | 'app'} role @returns {import('node:http').RequestListener} */
  const handler = (role) => async (req, res) => {
    try {
      o.onRequest?.(req.url ?? '');
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/config.json') return json(res, 200, config);
      if (role === 'host' && url.pathname === '/auth-code') {
        if (req.method !== 'POST') return fail(res, 405, 'method_not_allowed', 'not_defined', {}, 'use POST');
        let body;
        try {
          body = JSON.parse(await readBody(req));
        } catch {
          return fail(res, 400, 'bad_request', 'body', { body: 'malformed' }, 'malformed JSON');
        }
        const user = body?.user;
        if (user == null) return fail(res, 400, 'bad_request', 'body', { user: 'required' }, 'validation failed');
        if (!DEMO_USERS.includes(user)) return fail(res, 400, 'bad_request', 'body', { user: 'invalid' }, 'unknown test user');
        // What a host app's backend does for its signed-in user: ask for a one-time code.
        const r = await fetch(`${o.hostappUrl}/_test/auth-codes`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ reference: user }),
        });
        if (!r.ok) return fail(res, 502, 'bad_gateway', 'not_defined', {}, 'the host app refused to issue a code');
        return json(res, 200, { auth_code: (await r.json()).auth_code });
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') return fail(res, 405, 'method_not_allowed', 'not_defined', {}, 'use GET');
      let path = url.pathname;
      if (path === '/') path = role === 'host' ? '/demo/host.html' : '/demo/index.html';
      const found = await fileFor(path);
      if (!found) return fail(res, 404, 'not_found', 'path', {}, 'no such file');
      if ('redirect' in found) {
        res.writeHead(302, { Location: found.redirect, 'Cache-Control': 'no-store' });
        return res.end();
      }
      const file = found.file;
      const body = await readFile(file);
      res.writeHead(200, {
        'Content-Type': types[extname(file)],
        'Cache-Control': 'no-store',
        'X-Content-Type-Options': 'nosniff',
        // Invitation links carry their secret in the fragment, which browsers never send; no
        // referrer either, so not even the page's path leaks to the services.
        'Referrer-Policy': 'no-referrer',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      if (!res.headersSent) fail(res, 500, 'internal', 'not_defined', {}, 'internal error');
      else res.destroy();
    }
  };

  const listen = (/** @type {'host' | 'app'} */ role, /** @type {number} */ port) =>
    new Promise((ok, ko) => {
      const s = createServer(handler(role));
      s.once('error', ko);
      s.listen(port, bind, () => ok(s));
    });
  const servers = /** @type {import('node:http').Server[]} */ ([await listen('host', o.hostPort), await listen('app', o.appPort)]);
  return {
    hostUrl,
    appUrl,
    close: () => Promise.all(servers.map((s) => new Promise((r) => (s.closeAllConnections(), s.close(r))))),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const env = process.env;
  const s = await startDemoServer({
    hostPort: Number(env.DEMO_HOST_PORT ?? 8091),
    appPort: Number(env.DEMO_APP_PORT ?? 8092),
    bind: env.DEMO_BIND ?? '127.0.0.1',
    publicHost: env.DEMO_PUBLIC_HOST ?? '127.0.0.1',
    authUrl: env.DEMO_AUTH_URL ?? 'http://127.0.0.1:8083',
    boxesUrl: env.DEMO_BOXES_URL ?? 'http://127.0.0.1:8081',
    realtimeUrl: env.DEMO_REALTIME_URL ?? 'ws://127.0.0.1:8082',
    hostappUrl: env.DEMO_HOSTAPP_URL ?? 'http://127.0.0.1:8090',
  });
  console.log(`host page ${s.hostUrl}/  miniapp ${s.appUrl}/demo/`);
}
