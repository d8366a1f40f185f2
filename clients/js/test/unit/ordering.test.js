// Envelopes are handed over once each and in order: duplicates by history position are dropped,
// a slow handler does not let a later envelope overtake an earlier one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PositionTracker, comparePositions } from '../../src/index.js';
import { FakeSocket, fakeFetch, until, client, event, envelope, ready } from './fakes.js';

test('positions compare as stream ids, not as strings', () => {
  assert.ok(comparePositions('9-0', '10-0') < 0);
  assert.ok(comparePositions('10-2', '10-10') < 0);
  assert.equal(comparePositions('1733390000123-4', '1733390000123-4'), 0);
  assert.ok(comparePositions('1733390000124-0', '1733390000123-9') > 0);
});

test('the tracker drops what is at or before its position; ready sets it', () => {
  const t = new PositionTracker();
  assert.equal(t.accept(ready('5-0', null)), true);
  assert.equal(t.position, '5-0');
  assert.equal(t.accept(envelope({}, '4-0')), false, 'older than ready');
  assert.equal(t.accept(envelope({}, '6-0')), true);
  assert.equal(t.accept(envelope({}, '6-0')), false, 'the same twice');
  assert.equal(t.accept({ type: 'ack', object: {} }), true, 'no position: always handed over');
  // recovered: only forward
  assert.equal(t.accept(ready('6-0', true)), true);
  assert.equal(t.position, '6-0');
  // not recovered: a new history, possibly behind
  assert.equal(t.accept(ready('3-0', false)), true);
  assert.equal(t.position, '3-0');
  assert.equal(t.accept(envelope({}, '3-1')), true);
});

test('a replay overlapping live delivery hands each event over once, in order, even when one is slow to handle', async () => {
  FakeSocket.all = [];
  const { fetch } = fakeFetch({
    'GET /boxes/joined': () => [200, []],
    // A key share event makes the client read its crypto actions: slowly, here.
    'GET /identities/me/crypto/actions': async (n) => {
      if (n > 1) await new Promise((r) => setTimeout(r, 50));
      return [200, []];
    },
  });
  const cl = client(fetch);
  /** @type {string[]} */
  const got = [];
  const conn = cl.connect({ onEvent: (e) => got.push(e.id) }, { delay: () => 1 });
  await until(() => FakeSocket.all.length === 1);
  const s1 = FakeSocket.all[0];
  s1.push(ready('10-0', null), envelope(event('b', 1, { type: 'state.key_share' }), '11-0'), envelope(event('b', 2), '12-0'));
  await until(() => got.length === 2);
  s1.close(1006);
  await until(() => FakeSocket.all.length === 2);
  const s2 = FakeSocket.all[1];
  assert.match(s2.url, /since=12-0$/);
  // The replay (one already handled, then two missed), ready, then live ones, one of which the
  // server had in flight on the old socket too.
  s2.push(
    envelope(event('b', 2), '12-0'),
    envelope(event('b', 3), '13-0'),
    envelope(event('b', 4), '14-0'),
    ready('14-0', true),
    envelope(event('b', 4), '14-0'),
    envelope(event('b', 5), '15-0'),
  );
  await until(() => got.length === 5);
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(got, ['b-e1', 'b-e2', 'b-e3', 'b-e4', 'b-e5']);
  assert.equal(cl.position, '15-0');
  conn.close();
});

test('reconnections back off, also after a connection that failed with an error alone; a ready resets the backoff', async () => {
  FakeSocket.all = [];
  const { fetch } = fakeFetch({
    'GET /boxes/joined': () => [200, []],
    'GET /identities/me/crypto/actions': () => [200, []],
  });
  const cl = client(fetch);
  /** @type {number[]} */
  const attempts = [];
  const conn = cl.connect({}, { delay: (a) => (attempts.push(a), 1) });
  for (let i = 1; i <= 3; i++) {
    await until(() => FakeSocket.all.length === i);
    if (i === 2) FakeSocket.all[i - 1].fail();
    else FakeSocket.all[i - 1].close(1006);
  }
  await until(() => FakeSocket.all.length === 4);
  FakeSocket.all[3].push(ready('1-0', null));
  await until(() => conn.connected);
  FakeSocket.all[3].close(1006);
  await until(() => FakeSocket.all.length === 5);
  assert.deepEqual(attempts, [0, 1, 2, 0]);
  conn.close();
  assert.equal(conn.connected, false);
});
