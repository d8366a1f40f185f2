// Encrypted files through the SDK against the real release services: alice sends a 5 MiB file,
// bob gets it live, reads its metadata, downloads it (once cut off and resumed with a Range
// request), keeps it, leaves the box and still opens it; the quota and box figures follow; the
// limits answer with typed errors; nothing is left in the blob store at the end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { startStack } from '../harness.js';
import { BoxesClient, ApiError, MemoryKeyStore, files as f, crypto as c } from '../../src/index.js';

const MiB = 1024 * 1024;

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;
before(async () => {
  stack = await startStack({
    base: 19400,
    allowedOrigins: ['http://127.0.0.1:19404'],
    env: { FILES_MAX_BYTES: String(6 * MiB), FILES_QUOTA_BYTES: String(8 * MiB) },
  });
});
after(async () => {
  await stack?.stop();
});

/** @param {string} who @param {typeof fetch} [fetch] */
async function loggedIn(who, fetch) {
  const cl = new BoxesClient({ authUrl: stack.authUrl, boxesUrl: stack.boxesUrl, realtimeUrl: stack.realtimeUrl, store: new MemoryKeyStore(), fetch });
  await cl.login({ authCode: `code-${who}`, appId: 'boxes-miniapp', clientId: 'ref-hostapp' });
  return cl;
}

/** @param {Uint8Array} b */
const sha = (b) => createHash('sha256').update(b).digest('hex');

/** Checks a progress series: strictly forward, one total, ending at it.
 * @param {Array<{loaded: number, total: number}>} seen @param {number} [total] */
function assertForward(seen, total) {
  assert.ok(seen.length >= 5, `progress was reported along the way (${seen.length} reports)`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].loaded > seen[i - 1].loaded, 'progress only moves forward');
  const last = seen[seen.length - 1];
  assert.equal(last.loaded, last.total, 'progress reaches the total');
  if (total !== undefined) assert.equal(last.total, total);
  assert.ok(seen.every((p) => p.total === last.total));
}

/** Every file under a directory. @param {string} dir @returns {string[]} */
function filesUnder(dir) {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((d) => d.isFile())
      .map((d) => d.name);
  } catch {
    return [];
  }
}

/** @param {() => Promise<boolean> | boolean} cond @param {number} [ms] */
async function eventually(cond, ms = 15_000) {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('a 5 MiB file from alice to bob: live, verified, resumed, kept after leaving, limits and figures', { timeout: 120_000 }, async () => {
  // Every response bob's client gets, and the first download cut off after 1 MiB.
  /** @type {Array<{url: string, status: number, range: string | null}>} */
  const bobSaw = [];
  let cutNext = false;
  /** @type {typeof fetch} */
  const bobFetch = async (input, init) => {
    const res = await fetch(input, init);
    const url = String(input);
    bobSaw.push({ url, status: res.status, range: new Headers(init?.headers).get('range') });
    if (!cutNext || !url.includes('/encrypted-files/') || !res.body) return res;
    cutNext = false;
    const reader = res.body.getReader();
    let passed = 0;
    const cut = new ReadableStream({
      async pull(ctrl) {
        if (passed >= MiB) {
          await reader.cancel();
          return ctrl.error(new TypeError('terminated'));
        }
        const { done, value } = await reader.read();
        if (done) return ctrl.close();
        passed += value.length;
        ctrl.enqueue(value);
      },
    });
    return new Response(cut, { status: res.status, headers: res.headers });
  };

  const alice = await loggedIn('alice');
  const bob = await loggedIn('bob', bobFetch);
  const box = await alice.contact(bob.identityId, 'files');
  await bob.processCryptoActions();
  /** @type {any[]} */
  const live = [];
  const conn = bob.connect({ onEvent: (e) => live.push(e) });
  try {
    await story(alice, bob, box, conn, live, bobSaw, () => (cutNext = true));
  } finally {
    conn.close();
  }
});

/**
 * @param {BoxesClient} alice @param {BoxesClient} bob @param {any} box
 * @param {{readonly connected: boolean}} conn @param {any[]} live
 * @param {Array<{url: string, status: number, range: string | null}>} bobSaw @param {() => void} cutNextDownload
 */
async function story(alice, bob, box, conn, live, bobSaw, cutNextDownload) {
  await eventually(() => conn.connected);
  assert.deepEqual(await alice.storageQuota(), { identity_id: alice.identityId, quota: 8 * MiB, used: 0 });

  // alice sends: the upload reports its progress up to the whole request body.
  const plain = new Uint8Array(randomBytes(5 * MiB + 12345));
  /** @type {Array<{loaded: number, total: number}>} */
  const up = [];
  const t0 = performance.now();
  const sent = await alice.uploadFile(box.id, plain, { name: 'dataset.bin', type: 'application/octet-stream', onProgress: (p) => up.push(p) });
  const uploadMs = performance.now() - t0;
  assertForward(up);
  assert.ok(up[up.length - 1].total > f.encryptedFileSize(plain.length), 'the total is the whole multipart body');
  assert.equal(sent.type, 'msg.file');
  assert.deepEqual(sent.file, { id: sent.content.encrypted_file_id, name: 'dataset.bin', type: 'application/octet-stream', size: plain.length });
  assert.equal(sent.content.size, f.encryptedFileSize(plain.length), 'the server stored the encrypted length');

  // bob gets event.new and reads the metadata without downloading anything.
  const before = bobSaw.length;
  await eventually(() => live.some((e) => e.id === sent.id));
  const got = live.find((e) => e.id === sent.id);
  assert.deepEqual(got.file, sent.file);
  assert.equal(bobSaw.filter((r) => r.url.includes('/encrypted-files/')).length, 0, 'no download for the metadata');
  assert.ok(bobSaw.length >= before);

  // bob downloads: identical bytes, progress over the encrypted length.
  /** @type {Array<{loaded: number, total: number}>} */
  const down = [];
  const t1 = performance.now();
  const opened = await bob.openFile(got, { onProgress: (p) => down.push(p) });
  const downloadMs = performance.now() - t1;
  assert.equal(sha(opened.bytes), sha(plain));
  assert.deepEqual([opened.name, opened.type, opened.size], ['dataset.bin', 'application/octet-stream', plain.length]);
  assertForward(down, f.encryptedFileSize(plain.length));
  console.log(`5 MiB: upload ${uploadMs.toFixed(0)} ms, download ${downloadMs.toFixed(0)} ms (encrypt/decrypt included)`);

  // The connection drops after 1 MiB: the SDK asks for the rest (Range) and gets 206.
  cutNextDownload();
  const mark = bobSaw.length;
  const resumed = await bob.openFile(got);
  assert.equal(sha(resumed.bytes), sha(plain));
  const dl = bobSaw.slice(mark).filter((r) => r.url.includes('/encrypted-files/'));
  assert.equal(dl.length, 2, 'one cut request and one ranged request');
  assert.deepEqual([dl[0].status, dl[0].range], [200, null]);
  assert.equal(dl[1].status, 206);
  assert.match(dl[1].range ?? '', /^bytes=\d+-$/);
  assert.ok(Number(/\d+/.exec(dl[1].range ?? '')?.[0]) >= MiB, 'resumed where the cut happened');

  // The figures: alice's quota and the box's used space count the stored (encrypted) bytes.
  const stored = f.encryptedFileSize(plain.length);
  assert.equal((await alice.storageQuota()).used, stored);
  assert.deepEqual(await alice.boxUsedSpace(box.id), { box_id: box.id, used: stored });
  assert.equal((await bob.storageQuota()).used, 0);

  // Someone who got hold of the box key but is not a member is refused the blob.
  const carol = await loggedIn('carol');
  const k = await alice.boxKey(box.id);
  if (!k) throw new Error('alice has no box key');
  carol.boxKeys.set(box.id, k);
  assert.equal((await carol.decryptEvent(got)).file?.name, 'dataset.bin', 'the key opens the metadata');
  await assert.rejects(() => carol.openFile(got), (e) => e instanceof ApiError && e.status === 403);

  // bob keeps it: the saved file holds the key sealed to his identity, and counts for him too.
  const saved = await bob.saveFile(got);
  assert.equal(saved.file?.name, 'dataset.bin');
  assert.equal(saved.key_fingerprint, f.keyFingerprint(c.fromB64(JSON.parse(c.decryptMessage(got.content.encrypted, k.secretKey)).key)));
  await assert.rejects(() => bob.saveFile(got), (e) => e instanceof ApiError && e.status === 409, 'saving twice is refused');
  assert.equal((await bob.storageQuota()).used, stored);

  // bob leaves the box: the event no longer opens on his device, the saved file does.
  await bob.leave(box.id);
  assert.equal((await bob.decryptEvent(got)).undecryptable, true);
  const [listed] = await bob.savedFiles();
  assert.equal(listed.id, saved.id);
  assert.deepEqual(listed.file, sent.file);
  assert.equal(sha((await bob.openSavedFile(listed)).bytes), sha(plain));

  // The limits: over the quota (5 MiB used of 8), over the maximum size (6 MiB).
  await assert.rejects(
    () => alice.uploadFile(box.id, new Uint8Array(4 * MiB)),
    (e) => e instanceof ApiError && e.status === 403 && e.details.encrypted_file === 'quota_exceeded',
  );
  await assert.rejects(() => alice.uploadFile(box.id, new Uint8Array(7 * MiB)), (e) => e instanceof ApiError && e.status === 413);
  assert.equal((await alice.storageQuota()).used, stored, 'refused uploads leave nothing counted');

  // alice deletes the message: the file leaves the box, the saved copy keeps the blob.
  await alice.deleteMessage(box.id, sent.id);
  assert.equal((await alice.boxUsedSpace(box.id)).used, 0);
  assert.equal(sha((await bob.openSavedFile(listed)).bytes), sha(plain));
  const timeline = await alice.timeline(box.id);
  assert.deepEqual(
    timeline.filter((e) => e.type === 'msg.file').map((e) => [e.deleted, e.file]),
    [[true, null]],
  );

  // bob removes his saved copy: the last reference, so the blob goes; no figure counts it.
  await bob.deleteSavedFile(listed);
  assert.deepEqual(await bob.savedFiles(), []);
  await assert.rejects(() => bob.openSavedFile(listed), (e) => e instanceof ApiError && e.status === 404);
  await assert.rejects(() => alice.openFile(sent), (e) => e instanceof ApiError && e.status === 404);
  assert.equal((await bob.storageQuota()).used, 0);
  assert.equal((await alice.storageQuota()).used, 0);
  await eventually(() => filesUnder(stack.filesDir).length === 0);
}

test('an empty file and one of exactly one chunk go through; a file in a deleted box is gone', async () => {
  const alice = await loggedIn('alice');
  const box = await alice.createBox('edge sizes');
  for (const size of [0, f.FILE_CHUNK_BYTES]) {
    const plain = new Uint8Array(randomBytes(size));
    const ev = await alice.uploadFile(box.id, plain, { name: `s${size}` });
    assert.equal(ev.file?.size, size);
    assert.equal(sha((await alice.openFile(ev)).bytes), sha(plain));
  }
  const [last] = (await alice.timeline(box.id)).filter((e) => e.type === 'msg.file').slice(-1);
  assert.equal(last.file?.name, `s${f.FILE_CHUNK_BYTES}`, 'listed file messages decrypt too');
  await alice.deleteBox(box.id);
  await eventually(() => filesUnder(stack.filesDir).length === 0);
});
