// Recovery on reconnect and idempotent sends, against a fake socket and a fake fetch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../../src/index.js';
import { FakeSocket, fakeFetch, until, client } from './fakes.js';

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
  assert.match(keys[0], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
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
