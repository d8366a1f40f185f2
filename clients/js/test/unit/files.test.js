// The chunked file format of docs/crypto.md §9: round trips at every size that matters, and each
// way a stored blob can be changed (a byte, the prefix, chunks dropped, cut, moved, added) refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { files as f, crypto as c } from '../../src/index.js';

const { FILE_CHUNK_BYTES: CHUNK, FILE_PREFIX_BYTES: PREFIX } = f;
const SEALED = CHUNK + 16;
const key = new Uint8Array(randomBytes(32));

/** @param {number} n */
const bytes = (n) => new Uint8Array(randomBytes(n));

/** The sealed chunks of a blob, split at their boundaries. @param {Uint8Array} blob */
function chunksOf(blob) {
  const out = [];
  for (let at = PREFIX; at < blob.length; at += SEALED) out.push(blob.slice(at, Math.min(blob.length, at + SEALED)));
  return out;
}

/** @param {Uint8Array} prefix @param {Uint8Array[]} chunks */
const join = (prefix, chunks) => Buffer.concat([prefix, ...chunks]);

/** Decrypts pushing `step` bytes at a time. @param {Uint8Array} blob @param {number} step */
function decryptInSteps(blob, step) {
  const d = new f.FileDecryptor(key);
  const parts = [];
  for (let at = 0; at < blob.length; at += step) parts.push(...d.push(blob.subarray(at, at + step)));
  parts.push(d.finish());
  return Buffer.concat(parts);
}

test('round trip at the sizes around chunk boundaries, in any slicing', async () => {
  for (const size of [0, 1, 15, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17]) {
    const plain = bytes(size);
    const blob = await f.encryptFile(plain, key);
    assert.equal(blob.length, f.encryptedFileSize(size), `length of ${size}`);
    assert.equal(chunksOf(blob).length, f.chunkCount(size));
    assert.deepEqual(Buffer.from(f.decryptFile(blob, key)), Buffer.from(plain), `whole, ${size}`);
    for (const step of [1000, 7, SEALED, SEALED + 1]) {
      if (step < 100 && size > CHUNK) continue;
      assert.deepEqual(decryptInSteps(blob, step), Buffer.from(plain), `steps of ${step}, ${size}`);
    }
  }
});

test('an empty file is one empty last chunk; an exact multiple of the chunk size ends on a full last chunk', async () => {
  const empty = await f.encryptFile(new Uint8Array(0), key);
  assert.equal(empty.length, PREFIX + 16);
  assert.equal(f.decryptFile(empty, key).length, 0);
  assert.throws(() => f.decryptFile(empty.subarray(0, PREFIX), key), c.CryptoError, 'no chunk at all');
  assert.throws(() => f.decryptFile(empty.subarray(0, PREFIX - 1), key), c.CryptoError, 'not even a prefix');

  const plain = bytes(2 * CHUNK);
  const blob = await f.encryptFile(plain, key);
  const chunks = chunksOf(blob);
  assert.deepEqual(chunks.map((x) => x.length), [SEALED, SEALED]);
  assert.deepEqual(Buffer.from(f.decryptFile(blob, key)), Buffer.from(plain));
  // The first chunk alone is a whole chunk, but not flagged last.
  assert.throws(() => f.decryptFile(join(blob.subarray(0, PREFIX), chunks.slice(0, 1)), key), /truncated/);
});

test('the nonce is prefix, 7-byte big-endian index, last flag', () => {
  const prefix = Uint8Array.from({ length: 16 }, (_, i) => i);
  const n = f.chunkNonce(prefix, 0x0102030405, true);
  assert.equal(Buffer.from(n).toString('hex'), '000102030405060708090a0b0c0d0e0f' + '00000102030405' + '01');
  assert.equal(Buffer.from(f.chunkNonce(prefix, 1, false)).subarray(16).toString('hex'), '0000000000000100');
  assert.throws(() => f.chunkNonce(prefix.subarray(1), 0, false), c.CryptoError);
  assert.throws(() => f.chunkNonce(prefix, -1, false), c.CryptoError);
});

test('a changed byte anywhere, a wrong key or a changed prefix is refused', async () => {
  const plain = bytes(2 * CHUNK + 100);
  const blob = await f.encryptFile(plain, key);
  for (const at of [0, PREFIX - 1, PREFIX, PREFIX + 20, PREFIX + SEALED + 5, blob.length - 1]) {
    const bad = Uint8Array.from(blob);
    bad[at] ^= 0x01;
    assert.throws(() => f.decryptFile(bad, key), c.CryptoError, `byte ${at}`);
  }
  assert.throws(() => f.decryptFile(blob, bytes(32)), c.CryptoError);
  assert.throws(() => new f.FileDecryptor(bytes(31)), c.CryptoError);
});

test('truncation is refused: a dropped last chunk, a cut inside a chunk, a lost tail', async () => {
  const plain = bytes(3 * CHUNK + 10);
  const blob = await f.encryptFile(plain, key);
  const chunks = chunksOf(blob);
  const prefix = blob.subarray(0, PREFIX);
  assert.throws(() => f.decryptFile(join(prefix, chunks.slice(0, 3)), key), /truncated/, 'dropped last chunk');
  assert.throws(() => f.decryptFile(join(prefix, chunks.slice(0, 1)), key), /truncated/, 'only the first chunk');
  assert.throws(() => f.decryptFile(blob.subarray(0, blob.length - 1), key), c.CryptoError, 'one byte short');
  assert.throws(() => f.decryptFile(blob.subarray(0, PREFIX + SEALED + 100), key), c.CryptoError, 'cut inside a chunk');
  // What was handed out before the cut was authentic; the cut shows at the end.
  const d = new f.FileDecryptor(key);
  const out = d.push(blob.subarray(0, PREFIX + 2 * SEALED + 1));
  assert.deepEqual(Buffer.concat(out), Buffer.from(plain.subarray(0, 2 * CHUNK)));
  assert.throws(() => d.finish(), c.CryptoError);
});

test('reordered, repeated or added chunks are refused', async () => {
  const plain = bytes(3 * CHUNK + 10);
  const blob = await f.encryptFile(plain, key);
  const [a, b, c3, last] = chunksOf(blob);
  const prefix = blob.subarray(0, PREFIX);
  for (const [name, chunks] of /** @type {Array<[string, Uint8Array[]]>} */ ([
    ['swapped', [b, a, c3, last]],
    ['repeated', [a, a, c3, last]],
    ['last moved up', [a, last, b, c3]],
    ['a chunk added after the last', [a, b, c3, last, last]],
  ])) {
    assert.throws(() => f.decryptFile(join(prefix, chunks), key), c.CryptoError, name);
  }
  // Bytes after the end, or pushed after finish.
  const d = new f.FileDecryptor(key);
  d.push(blob);
  d.finish();
  assert.throws(() => d.push(new Uint8Array(1)), c.CryptoError);
  assert.throws(() => d.finish(), c.CryptoError);
  // A chunk of another file (its own key and prefix) spliced in at the same place.
  const other = await f.encryptFile(bytes(3 * CHUNK + 10), bytes(32));
  assert.throws(() => f.decryptFile(join(prefix, [a, chunksOf(other)[1], c3, last]), key), c.CryptoError);
});

test('the same key and prefix give the same blob (an upload sent again sends the same bytes)', async () => {
  const plain = bytes(CHUNK + 3);
  const prefix = bytes(16);
  assert.deepEqual(await f.encryptFile(plain, key, prefix), await f.encryptFile(plain, key, prefix));
  assert.notDeepEqual(await f.encryptFile(plain, key), await f.encryptFile(plain, key));
});

test('a source that returns fewer bytes than asked for fails the encryption', async () => {
  const gen = f.encryptFileChunks(10, () => new Uint8Array(5), key);
  await gen.next();
  await assert.rejects(() => gen.next(), /changed while it was read/);
});

test('metadata: checked on the way in, unknown fields ignored, format and key required', () => {
  const meta = { name: 'a.txt', type: 'text/plain', size: 3, key, format: f.FILE_FORMAT };
  const json = f.metadataJson(meta);
  assert.deepEqual(f.parseMetadata(json), meta);
  const j = JSON.parse(json);
  assert.deepEqual(f.parseMetadata(JSON.stringify({ ...j, extra: 1 })), meta);
  assert.throws(() => f.parseMetadata(JSON.stringify({ ...j, format: 'other' })), /unknown file format/);
  assert.throws(() => f.parseMetadata(JSON.stringify({ ...j, size: -1 })), c.CryptoError);
  assert.throws(() => f.parseMetadata(JSON.stringify({ ...j, key: c.toB64u(bytes(16)) })), c.CryptoError);
  assert.throws(() => f.parseMetadata('not json'), c.CryptoError);
  assert.match(f.keyFingerprint(key), /^[A-Za-z0-9_-]{43}$/);
});

test('the file vectors of docs/crypto-vectors.json', async () => {
  const V = JSON.parse(readFileSync(new URL('../../../../docs/crypto-vectors.json', import.meta.url), 'utf8'));
  const F = V.files;
  const hex = (/** @type {string} */ h) => new Uint8Array(Buffer.from(h, 'hex'));
  const fileKey = hex(F.key_hex);
  const prefix = hex(F.prefix_hex);
  assert.equal(F.format, f.FILE_FORMAT);
  assert.equal(F.chunk_bytes, CHUNK);
  for (const n of F.nonces) assert.equal(Buffer.from(f.chunkNonce(prefix, n.index, n.last)).toString('hex'), n.nonce_hex);
  for (const b of F.blobs) {
    assert.equal(Buffer.from(await f.encryptFile(hex(b.plaintext_hex), fileKey, prefix)).toString('hex'), b.encrypted_hex);
    assert.equal(Buffer.from(f.decryptFile(hex(b.encrypted_hex), fileKey)).toString('hex'), b.plaintext_hex);
  }
  const large = Uint8Array.from({ length: F.large_blob.size }, (_, i) => i % 251);
  const blob = await f.encryptFile(large, fileKey, prefix);
  assert.equal(blob.length, F.large_blob.encrypted_size);
  assert.equal(createHash('sha512').update(blob).digest('hex'), F.large_blob.encrypted_sha512_hex);
  const boxSecret = hex(V.box.secret_key_hex);
  const m = F.metadata;
  assert.equal(c.encryptMessage(m.plaintext, V.box.public_key, { ephemeralSecretKey: hex(m.ephemeral_secret_key_hex), nonce: hex(m.nonce_hex) }), m.msg_encrypted_content);
  const meta = f.parseMetadata(c.decryptMessage(m.msg_encrypted_content, boxSecret));
  assert.deepEqual(meta.key, fileKey);
  assert.equal(f.metadataJson(meta), m.plaintext);
  const s = F.saved_file;
  const opened = c.open(c.fromB64(s.encrypted_metadata), hex(V.identity.secret_key_hex));
  assert.equal(new TextDecoder().decode(opened), m.plaintext);
  assert.equal(f.keyFingerprint(fileKey), s.key_fingerprint);
});
