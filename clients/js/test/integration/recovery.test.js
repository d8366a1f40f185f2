// The SDK against the real release services while its socket drops: realtime is killed and
// restarted twice while messages are posted, once with the history kept (the reconnection with
// ?since= replays what was missed) and once with it deleted (recovered:false, and the catch-up
// reads ?after=). The listening client ends with every message exactly once, in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from '../harness.js';
import { BoxesClient, MemoryKeyStore } from '../../src/index.js';

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;
before(async () => {
  stack = await startStack({ base: 19200, allowedOrigins: ['http://127.0.0.1:19204'] });
});
after(async () => {
  await stack?.stop();
});

/** @param {string} who */
async function loggedIn(who) {
  const c = new BoxesClient({ authUrl: stack.authUrl, boxesUrl: stack.boxesUrl, realtimeUrl: stack.realtimeUrl, store: new MemoryKeyStore() });
  await c.login({ authCode: `code-${who}`, appId: 'boxes-miniapp', clientId: 'ref-hostapp' });
  return c;
}

/** @param {() => boolean} p @param {number} ms */
async function waitFor(p, ms) {
  const until = Date.now() + ms;
  while (!p()) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a socket dropped while messages are posted loses nothing and shows nothing twice', async () => {
  const alice = await loggedIn('alice');
  const bob = await loggedIn('bob');
  const box = await alice.contact(bob.identityId, 'drops');
  await bob.processCryptoActions();
  await bob.timeline(box.id);

  /** @type {any[]} */
  const texts = [];
  /** @type {string[]} */
  const states = [];
  /** @type {any[]} */
  const resyncs = [];
  const conn = bob.connect(
    {
      onEvent: (e) => e.type === 'msg.text' && texts.push(e),
      onState: (s) => states.push(s),
      onResync: (r) => resyncs.push(r),
    },
    { delay: () => 50 },
  );
  await waitFor(() => conn.connected && resyncs.length === 1, 10_000);

  const total = 120;
  /** @type {string[]} */
  const sent = [];
  const post = async (/** @type {number} */ from, /** @type {number} */ to) => {
    for (let i = from; i < to; i++) sent.push((await alice.send(box.id, `message ${i}`)).id);
  };
  // Realtime killed mid-stream; the history survives in Redis: ?since= replays the gap.
  await post(0, 30);
  await stack.kill('realtime');
  await post(30, 60);
  await stack.restart('realtime');
  await post(60, 80);
  await waitFor(() => conn.connected && texts.length >= 80, 15_000);
  assert.equal(resyncs.length, 1, 'the history covered the gap: no re-sync');

  // Killed again, and the history deleted while it is down: recovered:false, the catch-up.
  await stack.kill('realtime');
  await post(80, 100);
  stack.redis('del', `user_${bob.identityId}:history`);
  await stack.restart('realtime');
  await post(100, total);
  await waitFor(() => texts.length >= total, 15_000);
  await waitFor(() => resyncs.length === 2, 5_000);
  assert.equal(resyncs[1].reason, 'not_recovered');
  assert.deepEqual(resyncs[1].boxes, [box.id]);

  // A moment for anything doubled to show up, then: each message once, in the order sent.
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(
    texts.map((e) => e.id),
    sent,
  );
  assert.deepEqual(
    texts.map((e) => e.text),
    sent.map((_, i) => `message ${i}`),
  );
  assert.ok(states.filter((s) => s === 'open').length >= 3, `reconnected twice: ${states.join(' ')}`);
  conn.close();
});
