// The re-sync after a `ready` that did not recover: only the boxes changed since the newest event
// seen, only the events after each box's cursor, paged, each handed over once, then onResync.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeSocket, fakeFetch, until, client, event, envelope, ready } from './fakes.js';

test('not recovered: the changed boxes are caught up with ?after= until done, nothing twice', async () => {
  FakeSocket.all = [];
  // Box a has events 1..3 on the server, later 450 (pages of 200); box b does not change.
  const server = Array.from({ length: 450 }, (_, i) => event('a', i + 1));
  let stored = 3;
  const { fetch, calls } = fakeFetch({
    'GET /identities/me/crypto/actions': () => [200, []],
    'GET /boxes/joined': (_n, c) => [200, c.query.get('changed_since') ? [{ id: 'a' }] : [{ id: 'a' }, { id: 'b' }]],
    'GET /boxes/a/events': (_n, c) => {
      const after = c.query.get('after');
      if (after === null) return [200, server.slice(0, 3).reverse()]; // the listing, newest first
      const limit = Number(c.query.get('limit'));
      return [200, server.slice(0, stored).filter((e) => e.seq > Number(after)).slice(0, limit)];
    },
    'GET /boxes/b/events': () => [200, [event('b', 1)]],
  });
  const cl = client(fetch);
  await cl.listEvents('a');
  await cl.listEvents('b');
  /** @type {string[]} */
  const got = [];
  /** @type {any[]} */
  const resyncs = [];
  const conn = cl.connect({ onEvent: (e) => got.push(e.id), onResync: (r) => resyncs.push(r) }, { delay: () => 1 });
  await until(() => FakeSocket.all.length === 1);
  FakeSocket.all[0].push(ready('1-0', null));
  await until(() => resyncs.length === 1);
  assert.deepEqual(resyncs[0], { reason: 'connect', boxes: [] }, 'nothing new yet');

  // Two events arrive live, then the socket drops, more are posted, and the history is gone.
  stored = 5;
  FakeSocket.all[0].push(envelope(server[3], '2-0'), envelope(server[4], '3-0'));
  await until(() => got.length === 2);
  FakeSocket.all[0].close(1006);
  stored = 450;
  await until(() => FakeSocket.all.length === 2);
  FakeSocket.all[1].push(ready('100-0', false));
  await until(() => resyncs.length === 2);
  assert.deepEqual(resyncs[1], { reason: 'not_recovered', boxes: ['a'] });
  assert.deepEqual(got, server.slice(3).map((e) => e.id), 'events 4..450, once each, in order');

  const changed = calls.filter((c) => c.path === '/boxes/joined' && c.query.get('changed_since'));
  // The newest event seen is seq 5 (00:00:05): ten seconds before it.
  assert.equal(changed.at(-1)?.query.get('changed_since'), '2025-12-31T23:59:55.000Z');
  const afters = calls.filter((c) => c.path === '/boxes/a/events' && c.query.has('after')).map((c) => c.query.get('after'));
  assert.deepEqual(afters.slice(-3), ['3', '203', '403'], 'from the listed cursor, then the last seq of each page');
  assert.ok(!calls.some((c) => c.path === '/boxes/b/events' && c.query.has('after')), 'box b did not change');

  // A live copy of an event the catch-up delivered is not handed over again.
  FakeSocket.all[1].push(envelope(server[449], '101-0'));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(got.length, 447);
  conn.close();
});

test('a box gone while away is skipped; the re-sync goes on', async () => {
  const { fetch } = fakeFetch({
    'GET /identities/me/crypto/actions': () => [200, []],
    'GET /boxes/joined': () => [200, [{ id: 'b' }]],
    'GET /boxes/a/events': (_n, c) =>
      c.query.has('after') ? [403, { code: 'forbidden', origin: 'not_defined', desc: '', details: { reason: 'not_member' } }] : [200, [event('a', 1)]],
    'GET /boxes/b/events': (_n, c) => [200, c.query.has('after') ? [event('b', 2)] : [event('b', 1)]],
  });
  const cl = client(fetch);
  await cl.listEvents('a');
  await cl.listEvents('b');
  cl.sync.newest = null;
  /** @type {string[]} */
  const got = [];
  /** @type {any[]} */
  const resyncs = [];
  await cl.catchUp({ onEvent: (e) => got.push(e.id), onResync: (r) => resyncs.push(r) });
  assert.deepEqual(got, ['b-e2']);
  assert.deepEqual(resyncs, [{ reason: 'manual', boxes: ['b'] }]);
  assert.deepEqual([...cl.sync.cursors.keys()], ['b'], 'box a is not caught up again');
});
