// Starts the real system for the SDK's integration and browser tests: the four release binaries,
// a fresh database on the shared PostgreSQL, and a private redis-server (so a test may watch
// everything that crosses it), all on ports from `base`. stop() ends all of it, also on failure.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';

const repo = resolve(new URL('../../..', import.meta.url).pathname);

/** @param {string} url @param {number} ms */
async function waitReady(url, ms) {
  const until = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error(`${url} did not become ready`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** @param {number} port */
async function waitRedis(port) {
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync('redis-cli', ['-p', String(port), 'ping'], { stdio: 'pipe' });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error('redis-server did not start');
}

/**
 * @param {{base: number, allowedOrigins: string[], monitorRedis?: boolean, env?: Record<string, string>}} o
 * `env` adds to (or overrides) the services' environment.
 */
export async function startStack(o) {
  const bin = process.env.E2E_BIN_DIR ?? join(repo, 'target/release');
  for (const b of ['boxes', 'realtime', 'auth-bridge', 'reference-hostapp']) {
    if (!existsSync(join(bin, b))) throw new Error(`missing ${join(bin, b)}: build with cargo build --release --bins`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'boxes-sdk-'));
  const pgBase = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const dbName = `test_sdk_${randomBytes(6).toString('hex')}`;
  const psql = (/** @type {string} */ sql) => execFileSync('psql', [pgBase, '-qAtc', sql], { stdio: 'pipe' }).toString();
  psql(`create database "${dbName}"`);
  const dbUrl = pgBase.replace(/\/[^/]*$/, `/${dbName}`);

  // base + 5 and base + 6 are left to the browser test's demo server.
  const ports = { redis: o.base, boxes: o.base + 1, realtime: o.base + 2, auth: o.base + 3, hostapp: o.base + 4, boxesInternal: o.base + 7 };
  /** @type {import('node:child_process').ChildProcess[]} */
  const procs = [];
  /** @type {Map<string, import('node:child_process').ChildProcess>} the services, by name */
  const services = new Map();
  const stopAll = () => {
    for (const p of procs.reverse()) if (p.exitCode === null) p.kill('SIGTERM');
  };
  try {
    procs.push(
      spawn('redis-server', ['--port', String(ports.redis), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
        stdio: ['ignore', 'ignore', 'inherit'],
      }),
    );
    await waitRedis(ports.redis);
    /** @type {import('node:child_process').ChildProcess | null} */
    let monitor = null;
    /** @type {Buffer[]} */
    const monitored = [];
    if (o.monitorRedis) {
      monitor = spawn('redis-cli', ['-p', String(ports.redis), 'monitor'], { stdio: ['ignore', 'pipe', 'inherit'] });
      monitor.stdout?.on('data', (d) => monitored.push(d));
      procs.push(monitor);
    }
    execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', join(dir, 'jwt.pem')], { stdio: 'pipe' });
    execFileSync('openssl', ['pkey', '-in', join(dir, 'jwt.pem'), '-pubout', '-out', join(dir, 'jwt.pub')], { stdio: 'pipe' });
    writeFileSync(
      join(dir, 'hostapps.toml'),
      `[[hostapp]]
client_id = "ref-hostapp"
hostapp_client_id = "ref-hostapp"
hostapp_secret_key = "ref-secret"
token_prefix = "Token"
get_access_token_url = "http://127.0.0.1:${ports.hostapp}/hostapp/get-access-token"
get_user_data_url = "http://127.0.0.1:${ports.hostapp}/hostapp/get-user-data"
user_data_method = "GET"
allowed_app_ids = ["boxes-miniapp"]
timeout_ms = 5000
`,
    );
    const env = {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: dbUrl,
      REDIS_URL: `redis://127.0.0.1:${ports.redis}`,
      JWT_PRIVATE_KEY_FILE: join(dir, 'jwt.pem'),
      JWT_PUBLIC_KEY_FILE: join(dir, 'jwt.pub'),
      INTERNAL_API_TOKEN: randomBytes(32).toString('hex'),
      HOSTAPPS_CONFIG: join(dir, 'hostapps.toml'),
      INTERNAL_BIND_ADDR: `127.0.0.1:${ports.boxesInternal}`,
      BOXES_INTERNAL_URL: `http://127.0.0.1:${ports.boxesInternal}`,
      COOKIE_SECURE: 'false',
      ALLOWED_ORIGINS: o.allowedOrigins.join(','),
      LOG_FORMAT: 'json',
      FILES_DIR: join(dir, 'files'),
      ...(o.env ?? {}),
    };
    /** @param {string} name @param {number} port */
    const start = (name, port) => {
      const log = join(dir, `${name}.log`);
      writeFileSync(log, '');
      const p = spawn('sh', ['-c', `exec "$0" >>"$1" 2>&1`, join(bin, name), log], {
        env: { ...env, BIND_ADDR: `127.0.0.1:${port}` },
        stdio: 'ignore',
      });
      procs.push(p);
      services.set(name, p);
    };
    const readyUrl = (/** @type {string} */ name) =>
      name === 'reference-hostapp' ? `http://127.0.0.1:${ports.hostapp}/healthz` : `http://127.0.0.1:${portOf(name)}/readyz`;
    const portOf = (/** @type {string} */ name) =>
      ({ boxes: ports.boxes, realtime: ports.realtime, 'auth-bridge': ports.auth, 'reference-hostapp': ports.hostapp })[name] ?? 0;
    start('reference-hostapp', ports.hostapp);
    start('boxes', ports.boxes);
    start('realtime', ports.realtime);
    // boxes is ready only once auth-bridge has loaded the revocations, so wait for it to live.
    await waitReady(`http://127.0.0.1:${ports.boxes}/healthz`, 30_000);
    start('auth-bridge', ports.auth);
    await Promise.all([
      waitReady(`http://127.0.0.1:${ports.boxes}/readyz`, 30_000),
      waitReady(`http://127.0.0.1:${ports.realtime}/readyz`, 30_000),
      waitReady(`http://127.0.0.1:${ports.auth}/readyz`, 30_000),
      waitReady(`http://127.0.0.1:${ports.hostapp}/healthz`, 30_000),
    ]);
    return {
      ports,
      dbUrl,
      authUrl: `http://127.0.0.1:${ports.auth}`,
      boxesUrl: `http://127.0.0.1:${ports.boxes}`,
      realtimeUrl: `ws://127.0.0.1:${ports.realtime}`,
      hostappUrl: `http://127.0.0.1:${ports.hostapp}`,
      /** Every service log, concatenated. */
      logs: () =>
        ['reference-hostapp', 'boxes', 'realtime', 'auth-bridge'].map((n) => readFileSync(join(dir, `${n}.log`), 'utf8')).join('\n'),
      /** What redis-cli MONITOR saw so far. */
      redisTraffic: () => Buffer.concat(monitored).toString('utf8'),
      /** Kills a service at once (SIGKILL): its sockets drop without a close frame. @param {string} name */
      async kill(name) {
        const p = services.get(name);
        if (!p || p.exitCode !== null || p.signalCode !== null) return;
        const exited = new Promise((r) => p.once('exit', r));
        p.kill('SIGKILL');
        await exited;
      },
      /** Starts a killed service again on its port and waits until it is ready. @param {string} name */
      async restart(name) {
        start(name, portOf(name));
        await waitReady(readyUrl(name), 30_000);
      },
      /** Runs a redis-cli command against the stack's redis-server. @param {string[]} args */
      redis: (...args) => execFileSync('redis-cli', ['-p', String(ports.redis), ...args], { stdio: 'pipe' }).toString().trim(),
      /** The local blob store's directory (encrypted files). */
      filesDir: join(dir, 'files'),
      /** Every row of every table of the database, as text (pg_dump --data-only). */
      dumpDatabase: () => execFileSync('pg_dump', ['--data-only', '--no-owner', dbUrl], { maxBuffer: 1 << 28 }).toString(),
      async stop() {
        stopAll();
        await new Promise((r) => setTimeout(r, 300));
        try {
          psql(`drop database if exists "${dbName}" with (force)`);
        } catch {
          // dropped already
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    stopAll();
    try {
      psql(`drop database if exists "${dbName}" with (force)`);
    } catch {
      // dropped already
    }
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
