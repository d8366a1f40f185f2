// The SDK's file calls on a scripted server: what an upload sends (both transports), how a
// download is verified and resumed, saved files sealed to the identity key, typed errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ApiError, crypto as c, files as f, foldEvents } from '../../src/index.js';
import { client, fakeFetch } from './fakes.js';

const BOX = '7d3f6a52-1111-4222-8333-944445555666';
const FILE_ID = '0b9c1e2d-aaaa-4bbb-8ccc-ddddeeeeffff';

/** A client holding the key of BOX and an identity key. @param {any} fetch @param {any} [xhr] */
function withKeys(fetch, xhr = null) {
  const cl = client(fetch);
  cl.XMLHttpRequest = xhr;
  const box = c.generateKeyPair();
  cl.boxKeys.set(BOX, { secretKey: box.secretKey, publicKey: c.toB64u(box.publicKey), invitationShare: null });
  const id = c.generateKeyPair();
  cl.identitySecret = id.secretKey;
  cl.identityPublicKey = c.toB64u(id.publicKey);
  return { cl, box };
}

/** The msg.file event the server answers an upload with. @param {string} encrypted @param {string} pk @param {number} size */
const fileEvent = (encrypted, pk, size) => ({
  id: 'e1',
  type: 'msg.file',
  box_id: BOX,
  server_event_created_at: '2026-01-01T00:00:00Z',
  sender: { id: 'me', display_name: 'Me' },
  content: { encrypted, public_key: pk, encrypted_file_id: FILE_ID, size },
  referrer_id: null,
});

/** @param {Array<{loaded: number, total: number}>} seen */
function assertForward(seen) {
  assert.ok(seen.length >= 2, `several progress reports (${seen.length})`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].loaded > seen[i - 1].loaded, 'progress only moves forward');
  const last = seen[seen.length - 1];
  assert.equal(last.loaded, last.total, 'progress reaches the total');
  assert.ok(seen.every((p) => p.total === last.total && p.loaded <= p.total));
}

/** Serves one blob as boxes does (Content-Length, ETag, Range); the first answer can break after
 * `breakAfter` bytes, as a dropped connection would. @param {Uint8Array} blob @param {{breakAfter?: number}} [o] */
function blobServer(blob, o = {}) {
  /** @type {Array<Record<string, string>>} */
  const requests = [];
  /** @type {any} */
  const fetch = async (/** @type {string} */ url, /** @type {any} */ init) => {
    assert.equal(new URL(url).pathname, `/encrypted-files/${FILE_ID}`);
    requests.push({ ...init.headers });
    const range = /^bytes=(\d+)-$/.exec(init.headers.Range ?? '');
    const start = range && init.headers['If-Range'] === '"v1"' ? Number(range[1]) : 0;
    const body = blob.subarray(start);
    const cut = requests.length === 1 && o.breakAfter !== undefined ? o.breakAfter : body.length;
    let sent = 0;
    const stream = new ReadableStream({
      pull(ctrl) {
        if (sent >= cut) return cut < body.length ? ctrl.error(new TypeError('terminated')) : ctrl.close();
        const n = Math.min(10_000, cut - sent);
        ctrl.enqueue(body.slice(sent, sent + n));
        sent += n;
      },
    });
    /** @type {Record<string, string>} */
    const headers = { 'Content-Length': String(body.length), ETag: '"v1"', 'Content-Type': 'application/octet-stream' };
    if (start > 0) headers['Content-Range'] = `bytes ${start}-${blob.length - 1}/${blob.length}`;
    return new Response(stream, { status: start > 0 ? 206 : 200, headers });
  };
  return { fetch, requests };
}

test('uploadFile (fetch): a multipart body with the file part last, metadata sealed to the box, the file encrypted; progress to the end', async () => {
  const plain = new Uint8Array(randomBytes(3 * 65536 + 123));
  /** @type {any} */
  let stored = null;
  const { fetch, calls } = fakeFetch({
    [`POST /boxes/${BOX}/encrypted-files`]: async (_n, call) => {
      const type = call.headers['Content-Type'];
      assert.match(type, /^multipart\/form-data; boundary=/);
      const raw = new Uint8Array(await new Response(call.body).arrayBuffer());
      assert.equal(Number(call.headers['Content-Length']), raw.length, 'Content-Length is the body length');
      const form = await new Response(raw, { headers: { 'Content-Type': type } }).formData();
      assert.deepEqual([...form.keys()], ['msg_encrypted_content', 'msg_public_key', 'encrypted_file']);
      const file = /** @type {Blob} */ (form.get('encrypted_file'));
      stored = { encrypted: String(form.get('msg_encrypted_content')), pk: String(form.get('msg_public_key')), blob: new Uint8Array(await file.arrayBuffer()) };
      return [201, fileEvent(stored.encrypted, stored.pk, stored.blob.length)];
    },
  });
  const { cl, box } = withKeys(fetch);
  /** @type {Array<{loaded: number, total: number}>} */
  const seen = [];
  const ev = await cl.uploadFile(BOX, plain, { name: 'report.pdf', type: 'application/pdf', onProgress: (p) => seen.push(p) });
  assert.equal(calls[0].headers.Authorization, 'Bearer tok');
  assertForward(seen);
  assert.equal(stored.pk, c.toB64u(box.publicKey));
  const meta = f.parseMetadata(c.decryptMessage(stored.encrypted, box.secretKey));
  assert.deepEqual([meta.name, meta.type, meta.size, meta.format], ['report.pdf', 'application/pdf', plain.length, f.FILE_FORMAT]);
  assert.equal(stored.blob.length, f.encryptedFileSize(plain.length));
  assert.deepEqual(Buffer.from(f.decryptFile(stored.blob, meta.key)), Buffer.from(plain));
  assert.ok(!Buffer.from(stored.blob).includes(Buffer.from(plain.subarray(0, 64))), 'no plaintext in the blob');
  assert.deepEqual(ev.file, { id: FILE_ID, name: 'report.pdf', type: 'application/pdf', size: plain.length });
  assert.equal(ev.undecryptable, false);
});

/** A stand-in for the browser's XMLHttpRequest: reports upload progress in three steps. */
class FakeXhr {
  /** @type {FakeXhr[]} */
  static all = [];
  /** @type {(x: FakeXhr) => Promise<[number, any]>} */
  static answer = async () => [500, {}];
  constructor() {
    this.upload = { onprogress: /** @type {any} */ (null) };
    /** @type {Record<string, string>} */
    this.headers = {};
    this.withCredentials = false;
    this.status = 0;
    this.responseText = '';
    /** @type {any} */ this.onload = null;
    /** @type {any} */ this.onerror = null;
    /** @type {any} */ this.onabort = null;
    /** @type {FormData | null} */ this.form = null;
    FakeXhr.all.push(this);
  }
  /** @param {string} method @param {string} url */
  open(method, url) {
    Object.assign(this, { method, url });
  }
  /** @param {string} k @param {string} v */
  setRequestHeader(k, v) {
    this.headers[k] = v;
  }
  /** @param {FormData} form */
  send(form) {
    this.form = form;
    setTimeout(async () => {
      for (const loaded of [0, 500, 500, 1000]) this.upload.onprogress?.({ lengthComputable: true, loaded, total: 1000 });
      const [status, body] = await FakeXhr.answer(this);
      this.status = status;
      this.responseText = JSON.stringify(body);
      this.onload?.();
    });
  }
}

test('uploadFile (XMLHttpRequest): a FormData with the file last, upload events as progress, a File names itself', async () => {
  const plain = new Uint8Array(randomBytes(70_000));
  const { cl, box } = withKeys(fakeFetch({}).fetch, FakeXhr);
  /** @type {any} */
  let stored = null;
  FakeXhr.answer = async (x) => {
    const form = /** @type {FormData} */ (x.form);
    assert.deepEqual([...form.keys()], ['msg_encrypted_content', 'msg_public_key', 'encrypted_file']);
    stored = {
      encrypted: String(form.get('msg_encrypted_content')),
      blob: new Uint8Array(await /** @type {Blob} */ (form.get('encrypted_file')).arrayBuffer()),
    };
    return [201, fileEvent(stored.encrypted, c.toB64u(box.publicKey), stored.blob.length)];
  };
  /** @type {Array<{loaded: number, total: number}>} */
  const seen = [];
  const file = new File([plain], 'holiday photo.jpg', { type: 'image/jpeg' });
  const ev = await cl.uploadFile(BOX, file, { onProgress: (p) => seen.push(p) });
  const x = FakeXhr.all[0];
  assert.equal(/** @type {any} */ (x).method, 'POST');
  assert.equal(/** @type {any} */ (x).url, `http://b/boxes/${BOX}/encrypted-files`);
  assert.equal(x.headers.Authorization, 'Bearer tok');
  assert.deepEqual(seen, [
    { loaded: 0, total: 1000 },
    { loaded: 500, total: 1000 },
    { loaded: 1000, total: 1000 },
  ]);
  const meta = f.parseMetadata(c.decryptMessage(stored.encrypted, box.secretKey));
  assert.deepEqual(Buffer.from(f.decryptFile(stored.blob, meta.key)), Buffer.from(plain));
  assert.deepEqual(ev.file, { id: FILE_ID, name: 'holiday photo.jpg', type: 'image/jpeg', size: plain.length });
});

/** A msg.file for `plain` as the server would list it, and its blob. @param {Uint8Array} plain @param {{publicKey: Uint8Array}} box */
async function uploaded(plain, box) {
  const key = f.newFileKey();
  const encrypted = c.encryptMessage(
    f.metadataJson({ name: 'data.bin', type: 'application/octet-stream', size: plain.length, key, format: f.FILE_FORMAT }),
    c.toB64u(box.publicKey),
  );
  const blob = await f.encryptFile(plain, key);
  return { event: fileEvent(encrypted, c.toB64u(box.publicKey), blob.length), blob, key };
}

test('decryptEvent gives the file metadata without downloading; openFile downloads, verifies and reports progress', async () => {
  const plain = new Uint8Array(randomBytes(200_000));
  const server = blobServer(new Uint8Array(0));
  const { cl, box } = withKeys(server.fetch);
  const { event, blob } = await uploaded(plain, box);
  const ev = await cl.decryptEvent(event);
  assert.deepEqual(ev.file, { id: FILE_ID, name: 'data.bin', type: 'application/octet-stream', size: plain.length });
  assert.equal(server.requests.length, 0, 'no download for the metadata');

  const ok = blobServer(blob);
  cl.fetch = ok.fetch;
  /** @type {Array<{loaded: number, total: number}>} */
  const seen = [];
  const opened = await cl.openFile(ev, { onProgress: (p) => seen.push(p) });
  assert.deepEqual(Buffer.from(opened.bytes), Buffer.from(plain));
  assert.deepEqual([opened.name, opened.type, opened.size], ['data.bin', 'application/octet-stream', plain.length]);
  assertForward(seen);
  assert.equal(seen[0].total, blob.length);
  assert.equal(ok.requests[0].Authorization, 'Bearer tok');
});

test('a download cut off in the middle resumes with a Range request from where it stopped', async () => {
  const plain = new Uint8Array(randomBytes(300_000));
  const { cl, box } = withKeys(null);
  const { event, blob } = await uploaded(plain, box);
  const server = blobServer(blob, { breakAfter: 150_000 });
  cl.fetch = server.fetch;
  /** @type {Array<{loaded: number, total: number}>} */
  const seen = [];
  const opened = await cl.openFile(event, { onProgress: (p) => seen.push(p) });
  assert.deepEqual(Buffer.from(opened.bytes), Buffer.from(plain));
  assert.equal(server.requests.length, 2);
  assert.equal(server.requests[0].Range, undefined);
  assert.equal(server.requests[1].Range, 'bytes=150000-');
  assert.equal(server.requests[1]['If-Range'], '"v1"');
  assertForward(seen);
});

test('a changed, cut or mislabelled blob is refused with a CryptoError', async () => {
  const plain = new Uint8Array(randomBytes(100_000));
  const { cl, box } = withKeys(null);
  const { event, blob } = await uploaded(plain, box);
  const changed = Uint8Array.from(blob);
  changed[70_000] ^= 1;
  cl.fetch = blobServer(changed).fetch;
  await assert.rejects(() => cl.openFile(event), c.CryptoError);
  cl.fetch = blobServer(blob.subarray(0, blob.length - 16)).fetch;
  await assert.rejects(() => cl.openFile(event), /length its metadata gives/);
  // Not a file message, or a deleted one.
  await assert.rejects(() => cl.openFile({ ...event, content: { deleted: {} } }), c.CryptoError);
});

test('HTTP errors of uploads and downloads are ApiErrors with the §4 body', async () => {
  const { fetch } = fakeFetch({
    [`POST /boxes/${BOX}/encrypted-files`]: async (_n, call) => {
      await new Response(call.body).arrayBuffer();
      return [413, { code: 'request_entity_too_large', origin: 'body', desc: 'too large', details: { encrypted_file: 'too_large' } }];
    },
    [`GET /encrypted-files/${FILE_ID}`]: () => [403, { code: 'forbidden', origin: 'not_defined', desc: '', details: { reason: 'not_member' } }],
  });
  const { cl, box } = withKeys(fetch);
  await assert.rejects(
    () => cl.uploadFile(BOX, new Uint8Array(10)),
    (e) => e instanceof ApiError && e.status === 413 && e.code === 'request_entity_too_large' && e.details.encrypted_file === 'too_large',
  );
  const { event } = await uploaded(new Uint8Array(10), box);
  await assert.rejects(() => cl.openFile(event), (e) => e instanceof ApiError && e.status === 403 && e.reason === 'not_member');
  await assert.rejects(() => cl.uploadFile(BOX, new Uint8Array(1), { name: 'x'.repeat(256) }), (e) => e instanceof ApiError && e.details.name === 'invalid');
});

test('saved files: metadata sealed to the identity key, listed decrypted, opened without the box key, deleted', async () => {
  const plain = new Uint8Array(randomBytes(5000));
  /** @type {any[]} */
  const saved = [];
  let blob = new Uint8Array(0);
  const routes = fakeFetch({
    'POST /identities/me/saved-files': (_n, call) => {
      const b = JSON.parse(call.body);
      const row = { id: `s${saved.length + 1}`, identity_id: 'me', ...b, created_at: '2026-01-01T00:00:00Z' };
      saved.push(row);
      return [201, row];
    },
    'GET /identities/me/saved-files': () => [200, saved],
    'DELETE /identities/me/saved-files/s1': () => [204, null],
    'GET /identities/me/storage-quota': () => [200, { identity_id: 'me', quota: 1000, used: 10 }],
    [`GET /boxes/${BOX}/used-space`]: () => [200, { box_id: BOX, used: 10 }],
  });
  const { cl, box } = withKeys(async (/** @type {string} */ url, /** @type {any} */ init) =>
    url.includes('/encrypted-files/') ? blobServer(blob).fetch(url, init) : routes.fetch(url, init),
  );
  const up = await uploaded(plain, box);
  blob = up.blob;
  const s = await cl.saveFile(up.event);
  const posted = JSON.parse(routes.calls[0].body);
  assert.equal(posted.encrypted_file_id, FILE_ID);
  assert.equal(posted.key_fingerprint, f.keyFingerprint(up.key));
  assert.ok(routes.calls[0].headers['Idempotency-Key']);
  if (!cl.identitySecret) throw new Error('no identity');
  const opened = f.parseMetadata(new TextDecoder().decode(c.open(c.fromB64(posted.encrypted_metadata), cl.identitySecret)));
  assert.deepEqual(opened.key, up.key);
  assert.throws(() => c.open(c.fromB64(posted.encrypted_metadata), box.secretKey), c.CryptoError, 'not sealed to the box');
  assert.deepEqual(s.file, { id: FILE_ID, name: 'data.bin', type: 'application/octet-stream', size: plain.length });

  cl.boxKeys.clear(); // as after leaving the box
  const [listed] = await cl.savedFiles();
  assert.equal(listed.undecryptable, false);
  assert.equal(listed.file?.name, 'data.bin');
  assert.deepEqual(Buffer.from((await cl.openSavedFile(listed)).bytes), Buffer.from(plain));
  assert.equal((await cl.decryptEvent(up.event)).undecryptable, true, 'the event itself no longer opens');
  await cl.deleteSavedFile(listed);
  assert.deepEqual(await cl.storageQuota(), { identity_id: 'me', quota: 1000, used: 10 });
  assert.deepEqual(await cl.boxUsedSpace(BOX), { box_id: BOX, used: 10 });

  // A saved file sealed to another key lists as undecryptable rather than failing the list.
  saved.push({ ...saved[0], id: 's2', encrypted_metadata: c.toB64u(c.seal(new Uint8Array(3), c.generateKeyPair().publicKey)) });
  const all = await cl.savedFiles();
  assert.deepEqual(all.map((x) => x.undecryptable), [false, true]);
});

test('a deleted file message folds to no file', () => {
  const file = { id: FILE_ID, name: 'a', type: '', size: 1 };
  const base = { box_id: BOX, sender: { id: 'a', display_name: 'A' }, referrer_id: null, content: {} };
  const t = foldEvents(
    [],
    [
      { ...base, id: 'm', type: 'msg.file', server_event_created_at: '2026-01-01T00:00:00Z', file },
      { ...base, id: 'd', type: 'msg.delete', server_event_created_at: '2026-01-01T00:00:01Z', referrer_id: 'm' },
    ],
  );
  assert.deepEqual([t[0].deleted, t[0].file], [true, null]);
});

test('a resumed download without a readable Content-Range or ETag (a cross-origin page) still resumes; a server ignoring Range restarts it', async () => {
  const plain = new Uint8Array(randomBytes(250_000));
  const { cl, box } = withKeys(null);
  const { event, blob } = await uploaded(plain, box);
  /** @param {boolean} honourRange */
  const server = (honourRange) => {
    /** @type {Array<Record<string, string>>} */
    const requests = [];
    /** @type {any} */
    const fetch = async (/** @type {string} */ _url, /** @type {any} */ init) => {
      requests.push({ ...init.headers });
      const range = /^bytes=(\d+)-$/.exec(init.headers.Range ?? '');
      const start = honourRange && range ? Number(range[1]) : 0;
      const body = blob.subarray(start);
      const cut = requests.length === 1 ? 100_000 : body.length;
      let sent = 0;
      const stream = new ReadableStream({
        pull(ctrl) {
          if (sent >= cut) return cut < body.length ? ctrl.error(new TypeError('terminated')) : ctrl.close();
          const n = Math.min(30_000, cut - sent);
          ctrl.enqueue(body.slice(sent, sent + n));
          sent += n;
        },
      });
      // Only Content-Length, as a cross-origin page sees it without exposed headers.
      return new Response(stream, { status: start > 0 ? 206 : 200, headers: { 'Content-Length': String(body.length) } });
    };
    return { fetch, requests };
  };
  for (const honour of [true, false]) {
    const s = server(honour);
    cl.fetch = s.fetch;
    /** @type {Array<{loaded: number, total: number}>} */
    const seen = [];
    const opened = await cl.openFile(event, { onProgress: (p) => seen.push(p) });
    assert.deepEqual(Buffer.from(opened.bytes), Buffer.from(plain), honour ? 'resumed' : 'restarted');
    assert.equal(s.requests.length, 2);
    assert.equal(s.requests[1].Range, 'bytes=100000-');
    assert.equal(s.requests[1]['If-Range'], undefined, 'no ETag was readable');
    assertForward(seen);
  }
});
