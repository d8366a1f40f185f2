// Recovery on reconnect and idempotent sends, against a fake socket and a fake fetch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BoxesClient, ApiError } from '../../src/index.js';

/** @typedef {{method: string, path: string, headers: Record<string, string>, body: any}} Call */

/** A fetch that answers from `routes` (`METHOD path` → function) and records every request.
 * @param {Record<string, (n: number) => [number, any]>} routes */
function fakeFetch(routes) {
  /** @type {Call[]} */
  const calls = [];
  /** @type {any} */
  const fetch = async (/** @type {string} */ url, /** @type {any} */ init) => {
    const path = new URL(url).pathname;
    calls.push({ method: init.method, path, headers: { ...init.headers }, body: init.body });
    const route = routes[`${init.method} ${path}`];
    const [status, body] = route ? route(calls.length) : [404, { code: 'not_found', origin: 'path', desc: '', details: {} }];
    return new Response(body === null ? null : JSON.stringify(body), { status });
  };
  return { fetch, calls };
}

class FakeSocket {
  /** @type {FakeSocket[]} */
  static all = [];
  /** @param {string} url */
  constructor(url) {
    this.url = url;
    /** @type {((m: {data: string}) => void) | null} */
    this.onmessage = null;
    /** @type {((ev: {code: number}) => void) | null} */
    this.onclose = null;
    FakeSocket.all.push(this);
  }
  /** Delivers an envelope as the server would. @param {any} env */
  push(env) {
    this.onmessage?.({ data: JSON.stringify(env) });
  }
  close(code = 1006) {
    this.onclose?.({ code });
  }
}

const until = async (/** @type {() => boolean} */ cond) => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), 'condition never held');
};

/** @param {any} fetch */
function client(fetch) {
  const cl = new BoxesClient({ authUrl: 'http://a', boxesUrl: 'http://b', realtimeUrl: 'ws://r', fetch, WebSocket: FakeSocket });
  cl.session = { identityId: 'me', accessToken: 'tok', refreshToken: null, csrfToken: null, expiresAt: Date.now() / 1000 + 3600 };
  return cl;
}

test('a reconnection asks for what came after the last position and skips the re-sync when recovered', async () => {
  FakeSocket.all = [];
  const { fetch, calls } = fakeFetch({
    'GET /boxes/joined': () => [200, []],
    'GET /identities/me/crypto/actions': () => [200, []],
  });
  const cl = client(fetch);
  /** @type {string[]} */
  const events = [];
  const conn = cl.connect({ onAck: (o) => events.push(o.box_id) });
  await until(() => FakeSocket.all.length === 1);
  const first = FakeSocket.all[0];
  assert.ok(!first.url.includes('since='), first.url);
  first.push({ type: 'ready', object: { identity_id: 'me', position: '5-0', recovered: null } });
  await until(() => calls.some((c) => c.path === '/boxes/joined'));
  first.push({ type: 'ack', object: { sender_id: 'me', box_id: 'b1' }, position: '7-0' });
  assert.equal(cl.position, '7-0');
  const resyncs = calls.filter((c) => c.path === '/boxes/joined').length;

  first.close(1006);
  await until(() => FakeSocket.all.length === 2);
  const second = FakeSocket.all[1];
  assert.match(second.url, /[?&]since=7-0$/);
  second.push({ type: 'ack', object: { sender_id: 'me', box_id: 'b2' }, position: '8-0' });
  second.push({ type: 'ready', object: { identity_id: 'me', position: '8-0', recovered: true } });
  await until(() => conn.connected);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(events, ['b1', 'b2']);
  assert.equal(calls.filter((c) => c.path === '/boxes/joined').length, resyncs, 'recovered: no re-sync');

  // Not recovered: the §9.6 re-sync runs, and the position moves on.
  second.close(1006);
  await until(() => FakeSocket.all.length === 3);
  assert.match(FakeSocket.all[2].url, /since=8-0$/);
  FakeSocket.all[2].push({ type: 'ready', object: { identity_id: 'me', position: '20-0', recovered: false } });
  await until(() => calls.filter((c) => c.path === '/boxes/joined').length === resyncs + 1);
  assert.equal(cl.position, '20-0');
  conn.close();
});

test('a write is retried with the same idempotency key until it gets an answer', async () => {
  /** @type {[number, any][]} */
  const answers = [
    [503, { code: 'service_unavailable', origin: 'not_defined', desc: '', details: {} }],
    [409, { code: 'conflict', origin: 'headers', desc: '', details: { 'Idempotency-Key': 'conflict' } }],
    [201, { id: 'e1', type: 'msg.delete' }],
  ];
  const { fetch, calls } = fakeFetch({ 'POST /boxes/b/events': (n) => answers[n - 1] });
  const cl = client(fetch);
  const got = await cl.idempotentPost('/boxes/b/events', { type: 'msg.delete', referrer_id: 'm' }, { delay: () => 1 });
  assert.deepEqual(got, { id: 'e1', type: 'msg.delete' });
  assert.equal(calls.length, 3);
  const keys = calls.map((c) => c.headers['Idempotency-Key']);
  assert.match(keys[0], /^[0-9a-f]{32}$/);
  assert.ok(keys.every((k) => k === keys[0]), 'one key for every attempt');
  assert.ok(calls.every((c) => c.body === calls[0].body), 'the same body');

  // A refusal is thrown at once; the next write has a new key.
  const refusing = fakeFetch({
    'POST /boxes/b/events': () => [403, { code: 'forbidden', origin: 'not_defined', desc: '', details: { reason: 'not_member' } }],
  });
  const cl2 = client(refusing.fetch);
  await assert.rejects(cl2.idempotentPost('/boxes/b/events', {}, { delay: () => 1 }), (e) => e instanceof ApiError && e.status === 403);
  await assert.rejects(cl2.idempotentPost('/boxes/b/events', {}, { delay: () => 1 }));
  assert.equal(refusing.calls.length, 2);
  assert.notEqual(refusing.calls[0].headers['Idempotency-Key'], refusing.calls[1].headers['Idempotency-Key']);
});
