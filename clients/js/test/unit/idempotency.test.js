// Every send, box creation and contact carries an Idempotency-Key (a UUID per operation), kept
// across the SDK's bounded retries after network errors, 5xx and 409 on the key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, isRetryable, newIdempotencyKey, withIdempotencyKey } from '../../src/index.js';
import { crypto } from '../../src/index.js';
import { fakeFetch, client } from './fakes.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** @returns {[number, any]} */
const fail = (/** @type {number} */ status, details = {}) => [status, { code: 'x', origin: 'not_defined', desc: '', details }];

test('keys are random UUIDs', () => {
  const keys = new Set(Array.from({ length: 100 }, newIdempotencyKey));
  assert.equal(keys.size, 100);
  for (const k of keys) assert.match(k, UUID);
});

test('what is retried: no answer, 5xx, 409 on the key; nothing else', () => {
  const e = (/** @type {number} */ s, d = {}) => new ApiError(s, 'x', 'not_defined', '', d);
  for (const s of [0, 500, 502, 503, 504]) assert.ok(isRetryable(e(s)), String(s));
  assert.ok(isRetryable(e(409, { 'Idempotency-Key': 'conflict' })));
  for (const s of [400, 401, 403, 404, 410, 422]) assert.ok(!isRetryable(e(s)), String(s));
  assert.ok(!isRetryable(e(409, { other_share_hash: 'conflict' })));
  assert.ok(!isRetryable(new Error('not an answer')));
});

test('retries are bounded and keep the key', async () => {
  /** @type {string[]} */
  const keys = [];
  /** @type {number[]} */
  const slept = [];
  const op = async (/** @type {string} */ k) => {
    keys.push(k);
    throw new ApiError(503, 'service_unavailable', 'not_defined', '', {});
  };
  await assert.rejects(
    withIdempotencyKey(op, { attempts: 3, sleep: async (ms) => void slept.push(ms) }),
    (e) => e instanceof ApiError && e.status === 503,
  );
  assert.equal(keys.length, 3);
  assert.equal(new Set(keys).size, 1);
  assert.equal(slept.length, 2);
  assert.ok(slept.every((ms) => ms <= 2000));
});

test('send, createBox and contact carry a key, the same one and body across retries', async () => {
  const boxKeys = crypto.newBoxKeys();
  const theirs = crypto.generateKeyPair();
  /** @type {Record<string, [number, any][]>} */
  const script = {
    '/boxes': [fail(502), [201, { id: 'nb', public_key: 'k' }]],
    '/box-users/me/contact': [fail(504), fail(409, { 'Idempotency-Key': 'conflict' }), [201, { id: 'cb', public_key: 'k' }]],
    '/boxes/b/events': [fail(500), [201, { id: 'e1', box_id: 'b', type: 'msg.text', content: null }]],
  };
  let networkDown = true;
  const { fetch, calls } = fakeFetch({
    'POST /boxes': (n) => script['/boxes'][n - 1],
    'POST /box-users/me/contact': (n) => script['/box-users/me/contact'][n - 1],
    'POST /boxes/b/events': (n) => {
      if (networkDown) {
        networkDown = false;
        throw new TypeError('fetch failed');
      }
      return script['/boxes/b/events'][n - 2];
    },
    'GET /identities/them/profile': () => [200, { id: 'them', non_identified_pubkey: crypto.toB64u(theirs.publicKey) }],
  });
  const cl = client(fetch);
  await cl.store.set('box:me:b', JSON.stringify({ secret_key: crypto.toB64u(boxKeys.secretKey), public_key: boxKeys.publicKey, invitation_share: null }));
  const fast = { delay: () => 1 };
  cl.idempotentPost = ((orig) => (/** @type {string} */ p, /** @type {any} */ b) => orig.call(cl, p, b, fast))(cl.idempotentPost);
  assert.equal((await cl.createBox('t')).id, 'nb');
  assert.equal((await cl.contact('them', 't')).id, 'cb');
  assert.equal((await cl.send('b', 'hello')).id, 'e1');
  for (const [path, n] of /** @type {[string, number][]} */ ([['/boxes', 2], ['/box-users/me/contact', 3], ['/boxes/b/events', 3]])) {
    const posts = calls.filter((c) => c.method === 'POST' && c.path === path);
    assert.equal(posts.length, n, path);
    assert.match(posts[0].headers['Idempotency-Key'], UUID);
    assert.ok(posts.every((c) => c.headers['Idempotency-Key'] === posts[0].headers['Idempotency-Key']), `${path}: one key`);
    assert.ok(posts.every((c) => c.body === posts[0].body), `${path}: one body`);
  }
  const keys = new Set(calls.filter((c) => c.method === 'POST').map((c) => c.headers['Idempotency-Key']));
  assert.equal(keys.size, 3, 'one key per operation');
});
