// Encrypted files (docs/crypto.md §9): a fresh key per file, the bytes in fixed-size chunks each
// sealed with XSalsa20-Poly1305 (NaCl secretbox) under a nonce made of a random prefix, the chunk
// index and a last-chunk flag, so a reader can decrypt, verify and report progress chunk by chunk,
// and notices a chunk changed, dropped, moved or cut off at the end.
import nacl from './nacl.js';
import { CryptoError, KEY_BYTES, MAC_BYTES, NONCE_BYTES, fromB64, randomBytes, toB64u } from './crypto.js';

/** The `format` of file metadata this module writes and reads. */
export const FILE_FORMAT = 'xsalsa20poly1305-64k-v1';
/** Plaintext bytes per chunk; only the last chunk may be shorter (or empty). */
export const FILE_CHUNK_BYTES = 65536;
/** The blob starts with the nonce prefix. */
export const FILE_PREFIX_BYTES = 16;
/** The counter's bytes in a nonce (big-endian), between the prefix and the flag. */
const COUNTER_BYTES = NONCE_BYTES - FILE_PREFIX_BYTES - 1;
const CIPHER_CHUNK_BYTES = FILE_CHUNK_BYTES + MAC_BYTES;

/** The number of chunks of a file of `size` bytes (an empty file is one empty chunk).
 * @param {number} size */
export function chunkCount(size) {
  return Math.max(1, Math.ceil(size / FILE_CHUNK_BYTES));
}

/** The length of the encrypted blob of a file of `size` bytes.
 * @param {number} size */
export function encryptedFileSize(size) {
  if (!Number.isSafeInteger(size) || size < 0) throw new CryptoError('a file size is a non-negative integer');
  return FILE_PREFIX_BYTES + size + chunkCount(size) * MAC_BYTES;
}

/** `prefix (16) || chunk index (7, big-endian) || last (1: 0x01 on the last chunk, else 0x00)`.
 * @param {Uint8Array} prefix @param {number} index @param {boolean} last */
export function chunkNonce(prefix, index, last) {
  if (prefix.length !== FILE_PREFIX_BYTES) throw new CryptoError('a nonce prefix is 16 bytes');
  if (!Number.isSafeInteger(index) || index < 0) throw new CryptoError('chunk index out of range');
  const nonce = new Uint8Array(NONCE_BYTES);
  nonce.set(prefix, 0);
  let n = index;
  for (let i = FILE_PREFIX_BYTES + COUNTER_BYTES - 1; i >= FILE_PREFIX_BYTES; i--) {
    nonce[i] = n % 256;
    n = Math.floor(n / 256);
  }
  nonce[NONCE_BYTES - 1] = last ? 1 : 0;
  return nonce;
}

/** @param {Uint8Array} key */
function checkKey(key) {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) throw new CryptoError('a file key is 32 bytes');
}

/** A fresh file key.
 * @returns {Uint8Array} */
export function newFileKey() {
  return randomBytes(KEY_BYTES);
}

/** Encrypts a file piece by piece: first the prefix, then one sealed chunk per call of `next`.
 * `read(offset, length)` returns that slice of the plaintext (all of it: short reads are errors).
 * @param {number} size
 * @param {(offset: number, length: number) => Uint8Array | Promise<Uint8Array>} read
 * @param {Uint8Array} key
 * @param {Uint8Array} [prefix] fixed only by test vectors
 * @returns {AsyncGenerator<Uint8Array, void, void>} */
export async function* encryptFileChunks(size, read, key, prefix = randomBytes(FILE_PREFIX_BYTES)) {
  checkKey(key);
  if (prefix.length !== FILE_PREFIX_BYTES) throw new CryptoError('a nonce prefix is 16 bytes');
  encryptedFileSize(size);
  const count = chunkCount(size);
  yield prefix;
  for (let i = 0; i < count; i++) {
    const offset = i * FILE_CHUNK_BYTES;
    const length = Math.min(FILE_CHUNK_BYTES, size - offset);
    const plain = await read(offset, length);
    if (plain.length !== length) throw new CryptoError('the file changed while it was read');
    yield nacl.secretbox(plain, chunkNonce(prefix, i, i === count - 1), key);
  }
}

/** The whole encrypted blob of `bytes` at once.
 * @param {Uint8Array} bytes @param {Uint8Array} key @param {Uint8Array} [prefix] fixed only by test vectors */
export async function encryptFile(bytes, key, prefix) {
  const out = new Uint8Array(encryptedFileSize(bytes.length));
  let at = 0;
  for await (const piece of encryptFileChunks(bytes.length, (o, n) => bytes.subarray(o, o + n), key, prefix)) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}

/** Decrypts a blob as it arrives: `push` the bytes in any slicing, get back the plaintext of every
 * chunk known by then to be authentic; `finish` at the end of the blob opens the last chunk.
 * A chunk is held back until more bytes arrive, because only the end of the blob says which
 * chunk is the last one, and the last one must open with the last-chunk flag set. */
export class FileDecryptor {
  /** @param {Uint8Array} key */
  constructor(key) {
    checkKey(key);
    this.key = key;
    /** @type {Uint8Array | null} */
    this.prefix = null;
    this.index = 0;
    this.done = false;
    /** @type {Uint8Array} bytes not yet used */
    this.buffer = new Uint8Array(0);
    /** plaintext bytes handed out */
    this.size = 0;
  }

  /** @param {Uint8Array} bytes
   * @returns {Uint8Array[]} the plaintext of the chunks completed by these bytes */
  push(bytes) {
    if (this.done) throw new CryptoError('bytes after the end of the file');
    this.buffer = concat(this.buffer, bytes);
    /** @type {Uint8Array[]} */
    const out = [];
    if (!this.prefix) {
      if (this.buffer.length < FILE_PREFIX_BYTES) return out;
      this.prefix = this.buffer.slice(0, FILE_PREFIX_BYTES);
      this.buffer = this.buffer.subarray(FILE_PREFIX_BYTES);
    }
    // A whole chunk followed by at least one more byte is not the last chunk.
    let at = 0;
    while (this.buffer.length - at > CIPHER_CHUNK_BYTES) {
      out.push(this.#open(this.buffer.subarray(at, at + CIPHER_CHUNK_BYTES), false));
      at += CIPHER_CHUNK_BYTES;
    }
    if (at > 0) this.buffer = this.buffer.slice(at);
    return out;
  }

  /** The end of the blob: what is left must be the last chunk.
   * @returns {Uint8Array} its plaintext */
  finish() {
    if (this.done) throw new CryptoError('the file was already finished');
    if (!this.prefix) throw new CryptoError('the encrypted file is truncated');
    if (this.buffer.length < MAC_BYTES) throw new CryptoError('the encrypted file is truncated');
    const last = this.#open(this.buffer, true);
    this.buffer = new Uint8Array(0);
    this.done = true;
    return last;
  }

  /** @param {Uint8Array} sealed @param {boolean} last */
  #open(sealed, last) {
    if (!this.prefix) throw new CryptoError('no nonce prefix');
    const plain = nacl.secretbox.open(sealed, chunkNonce(this.prefix, this.index, last), this.key);
    if (!plain) {
      throw new CryptoError(
        last
          ? 'the encrypted file is truncated, reordered or altered'
          : `chunk ${this.index} of the encrypted file is altered, reordered or misplaced`,
      );
    }
    this.index++;
    this.size += plain.length;
    return plain;
  }
}

/** Decrypts a whole blob at once.
 * @param {Uint8Array} blob @param {Uint8Array} key */
export function decryptFile(blob, key) {
  const d = new FileDecryptor(key);
  const parts = d.push(blob);
  parts.push(d.finish());
  return concat(...parts);
}

/** @param {...Uint8Array} parts */
function concat(...parts) {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---- metadata ------------------------------------------------------------------------------

/** @typedef {{name: string, type: string, size: number, key: Uint8Array, format: string}} FileMetadata */

/** Longest file name and media type kept in the metadata, in characters. */
export const MAX_FILE_NAME = 255;
export const MAX_FILE_TYPE = 255;

/** The JSON sealed into `msg_encrypted_content` and into a saved file's `encrypted_metadata`.
 * @param {FileMetadata} m */
export function metadataJson(m) {
  checkKey(m.key);
  return JSON.stringify({ name: m.name, type: m.type, size: m.size, key: toB64u(m.key), format: m.format });
}

/** Parses and checks opened metadata; unknown fields are ignored.
 * @param {string} json
 * @returns {FileMetadata} */
export function parseMetadata(json) {
  /** @type {any} */
  let m;
  try {
    m = JSON.parse(json);
  } catch {
    throw new CryptoError('file metadata is not JSON');
  }
  if (typeof m?.name !== 'string' || typeof m?.type !== 'string' || typeof m?.key !== 'string') {
    throw new CryptoError('file metadata lacks name, type or key');
  }
  if (!Number.isSafeInteger(m.size) || m.size < 0) throw new CryptoError('file metadata has no valid size');
  if (m.format !== FILE_FORMAT) throw new CryptoError(`unknown file format ${String(m.format)}`);
  const key = fromB64(m.key);
  checkKey(key);
  return { name: m.name, type: m.type, size: m.size, key, format: m.format };
}

/** `key_fingerprint` of a saved file: b64u of the first 32 bytes of SHA-512(file key), so a
 * client can tell saved copies of one file apart from others without the key.
 * @param {Uint8Array} key */
export function keyFingerprint(key) {
  checkKey(key);
  return toB64u(nacl.hash(key).subarray(0, 32));
}
