// The SDK against the real release services: two users, a contact, live messages, an edit, a
// deletion, an invitation link, a leave with key-share rotation, a box deletion, refresh, logout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from '../harness.js';
import { BoxesClient, ApiError, MemoryKeyStore } from '../../src/index.js';

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;
before(async () => {
  stack = await startStack({ base: 19100, allowedOrigins: ['http://127.0.0.1:19104'] });
});
after(async () => {
  await stack?.stop();
});

const client = () =>
  new BoxesClient({ authUrl: stack.authUrl, boxesUrl: stack.boxesUrl, realtimeUrl: stack.realtimeUrl, store: new MemoryKeyStore() });

/** @param {string} who */
async function loggedIn(who) {
  const c = client();
  await c.login({ authCode: `code-${who}`, appId: 'boxes-miniapp', clientId: 'ref-hostapp' });
  return c;
}

/** Collects realtime events; `next(pred)` waits for the first matching one.
 * @param {BoxesClient} c */
function listen(c) {
  /** @type {any[]} */
  const seen = [];
  /** @type {Array<{pred: (e: any) => boolean, resolve: (e: any) => void}>} */
  const waiting = [];
  /** @param {string} kind @param {any} e */
  const push = (kind, e) => {
    const item = { kind, ...e };
    seen.push(item);
    for (const w of [...waiting]) if (w.pred(item)) (waiting.splice(waiting.indexOf(w), 1), w.resolve(item));
  };
  let ready = /** @type {(v?: unknown) => void} */ (() => {});
  const readyP = new Promise((r) => (ready = r));
  const conn = c.connect({
    onEvent: (e) => push('event', e),
    onBoxDelete: (e) => push('box.delete', e),
    onNotification: (e) => push('notification', e),
    onAck: (e) => push('ack', e),
    onBoxes: () => ready(),
  });
  return {
    conn,
    ready: readyP,
    /** @param {(e: any) => boolean} pred */
    next(pred, ms = 5000) {
      const hit = seen.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('timed out waiting for a realtime event')), ms);
        waiting.push({ pred, resolve: (e) => (clearTimeout(t), resolve(e)) });
      });
    },
  };
}

test('two users, a contact, live encrypted messages, a link, a leave with rotation, a deletion', async () => {
  const alice = await loggedIn('alice');
  const bob = await loggedIn('bob');
  assert.equal(alice.me.non_identified_pubkey, alice.identityPublicKey);
  const aliceRt = listen(alice);
  const bobRt = listen(bob);
  await Promise.all([aliceRt.ready, bobRt.ready]);

  // Contact: bob's client accepts the invitation on the notification and joins.
  const box = await alice.contact(bob.identityId, 'Alice - Bob');
  await bobRt.next((e) => e.kind === 'notification' && e.type === 'box.auto_invite');
  await aliceRt.next((e) => e.kind === 'event' && e.type === 'member.join' && e.sender.id === bob.identityId);
  assert.ok(await bob.boxKey(box.id), 'bob rebuilt the box key');
  assert.deepEqual(
    (await alice.members(box.id)).map((/** @type {any} */ m) => m.id),
    [alice.identityId, bob.identityId],
  );

  // Live messages, decrypted on arrival; the server holds ciphertext only.
  await alice.timeline(box.id);
  await bob.timeline(box.id);
  const sent = await alice.send(box.id, 'hello bob, this is secret');
  const got = await bobRt.next((e) => e.kind === 'event' && e.id === sent.id);
  assert.equal(got.text, 'hello bob, this is secret');
  assert.notEqual(sent.content.encrypted, 'hello bob, this is secret');
  const reply = await bob.send(box.id, 'hi alice 👋');
  assert.equal((await aliceRt.next((e) => e.kind === 'event' && e.id === reply.id)).text, 'hi alice 👋');

  // Unread counts and ack.
  const [bobsView] = (await bob.listBoxes()).filter((/** @type {any} */ b) => b.id === box.id);
  assert.equal(bobsView.events_count, 1);
  await bob.ack(box.id);
  await bobRt.next((e) => e.kind === 'ack' && e.box_id === box.id);
  assert.equal((await bob.getBox(box.id)).events_count, 0);

  // Edit and delete, live and in the folded list.
  const edit = await alice.edit(box.id, sent.id, 'hello bob (edited)');
  assert.equal((await bobRt.next((e) => e.kind === 'event' && e.id === edit.id)).text, 'hello bob (edited)');
  await bob.deleteMessage(box.id, reply.id);
  const t = await alice.timeline(box.id);
  const msgs = t.filter((e) => e.type === 'msg.text');
  assert.deepEqual(
    msgs.map((m) => [m.text, m.deleted]),
    [
      ['hello bob (edited)', false],
      [null, true],
    ],
  );
  assert.ok(msgs[0].edited_at);

  // Settings.
  await bob.setMuted(box.id, true);
  assert.equal((await bob.settings(box.id)).muted, true);

  // Carol joins by link; the share is in the fragment only.
  const link = await alice.invitationLink(box.id, 'http://127.0.0.1:19104/demo/');
  assert.equal(new URL(link).search, '');
  const carol = await loggedIn('carol');
  assert.equal((await carol.previewLink(link)).title, 'Alice - Bob');
  await carol.joinByLink(link);
  assert.equal((await carol.timeline(box.id)).find((e) => e.type === 'msg.text')?.text, 'hello bob (edited)');

  // Bob leaves: alice's client rotates the key share; the old link no longer works, and carol
  // gets the new invitation share through her set_box_key_share crypto action.
  const carolShareBefore = await carol.invitationShare(box.id);
  await bob.leave(box.id);
  await aliceRt.next((e) => e.kind === 'event' && e.type === 'state.key_share', 8000);
  const dave = await loggedIn('alice'); // a second device of alice cannot reuse the old link either
  await assert.rejects(() => dave.previewLink(link), (e) => e instanceof ApiError && e.status === 404);
  await carol.processCryptoActions();
  const carolShareAfter = (await carol.boxKey(box.id))?.invitationShare;
  assert.ok(carolShareAfter && Buffer.compare(Buffer.from(carolShareAfter), Buffer.from(carolShareBefore)) !== 0);
  const newLink = await alice.invitationLink(box.id, 'http://127.0.0.1:19104/demo/');
  assert.notEqual(newLink, link);
  assert.equal((await dave.previewLink(newLink)).title, 'Alice - Bob');

  // Typed errors carry the §4 code and details.
  await assert.rejects(
    () => bob.send(box.id, 'after leaving'),
    (e) => e instanceof Error, // no key any more on bob's device
  );
  await assert.rejects(
    () => bob.api('POST', `/boxes/${box.id}/events`, { type: 'msg.text', content: { encrypted: 'AAAA', public_key: box.public_key } }),
    (e) => e instanceof ApiError && e.status === 403 && e.code === 'forbidden' && e.reason === 'not_member',
  );
  await assert.rejects(
    () => alice.api('POST', '/boxes', { title: '', public_key: 'AAAA' }),
    (e) => e instanceof ApiError && e.code === 'bad_request' && e.details.title === 'invalid',
  );

  // Deleting the box reaches the members live.
  await alice.deleteBox(box.id);
  assert.equal(await alice.boxKey(box.id), null);
  await assert.rejects(() => carol.getBox(box.id), (e) => e instanceof ApiError && e.reason === 'no_access');

  aliceRt.conn.close();
  bobRt.conn.close();
});

test('refresh rotates the refresh token; logout ends the session', async () => {
  const c = await loggedIn('alice');
  const before = c.session?.refreshToken;
  await c.refresh();
  assert.notEqual(c.session?.refreshToken, before);
  await c.listBoxes();
  const token = c.session?.accessToken;
  await c.logout();
  const r = await fetch(`${stack.boxesUrl}/boxes/joined`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 401);
});

test('an expired-looking session refreshes before the call; a 401 refreshes once and retries', async () => {
  const c = await loggedIn('bob');
  if (!c.session) throw new Error('no session');
  c.session.expiresAt = Date.now() / 1000 + 5;
  const rt = c.session.refreshToken;
  await c.listBoxes();
  assert.notEqual(c.session.refreshToken, rt);
  c.session.accessToken = 'not-a-token';
  await c.listBoxes();
  assert.notEqual(c.session.accessToken, 'not-a-token');
});

test('the socket reconnects after the server closes it, and the catch-up delivers what was missed', async () => {
  const alice = await loggedIn('alice');
  const bob = await loggedIn('bob');
  const box = await alice.contact(bob.identityId, 'catch-up');
  await bob.processCryptoActions();
  await bob.timeline(box.id);
  /** @type {any[]} */
  const events = [];
  /** @type {string[]} */
  const states = [];
  const conn = bob.connect({ onEvent: (e) => events.push(e), onState: (s) => states.push(s) });
  const waitFor = async (/** @type {() => boolean} */ p, ms = 8000) => {
    const until = Date.now() + ms;
    while (!p()) {
      if (Date.now() > until) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await waitFor(() => conn.connected);
  // Logging out closes every socket of the session with 4001; a message sent while bob is away
  // arrives through the catch-up once he is back with a new session.
  const oldSession = bob.session;
  await fetch(`${stack.authUrl}/auth/logout`, { method: 'POST', headers: { Authorization: `Bearer ${oldSession?.accessToken}` } });
  await waitFor(() => states.includes('closed'));
  const missed = await alice.send(box.id, 'sent while bob was away');
  await bob.login({ authCode: 'code-bob', appId: 'boxes-miniapp', clientId: 'ref-hostapp' });
  await waitFor(() => events.some((e) => e.id === missed.id), 15000);
  assert.equal(events.find((e) => e.id === missed.id).text, 'sent while bob was away');
  conn.close();
});
