// The client-side protocol of docs/crypto.md: X25519 + XSalsa20-Poly1305 boxes (NaCl crypto_box),
// a 2-of-2 XOR split of each box secret key, SHA-512 share hashes, unpadded URL-safe base64.
import nacl from './nacl.js';

export const KEY_BYTES = 32;
export const NONCE_BYTES = 24;
export const MAC_BYTES = 16;
/** Bytes a sealed payload adds to its plaintext: ephemeral public key, nonce, Poly1305 tag. */
export const SEAL_OVERHEAD = KEY_BYTES + NONCE_BYTES + MAC_BYTES;
/** Largest `encrypted` string the services accept for a message (SPEC §2.4). */
export const MAX_MESSAGE_CHARS = 32768;
/** Largest crypto-action ciphertext string the services accept (SPEC §2.4). */
export const MAX_ACTION_CHARS = 16384;

const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const DECODE = new Map([...B64U].map((c, i) => [c, i]));
DECODE.set('+', 62);
DECODE.set('/', 63);

/** Unpadded URL-safe base64 (SPEC §2.3 `b64u`).
 * @param {Uint8Array} bytes
 * @returns {string} */
export function toB64u(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let j = 0; j < chars; j++) out += B64U[(n >> (18 - 6 * j)) & 63];
  }
  return out;
}

/** Decodes base64 in either alphabet, padded or not (what the services accept as `b64`).
 * @param {string} text
 * @returns {Uint8Array} */
export function fromB64(text) {
  if (typeof text !== 'string') throw new CryptoError('not a base64 string');
  const s = text.replace(/={1,2}$/, '');
  if (s.length % 4 === 1) throw new CryptoError('base64 length is impossible');
  const out = new Uint8Array(Math.floor((s.length * 6) / 8));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (const c of s) {
    const v = DECODE.get(c);
    if (v === undefined) throw new CryptoError('not a base64 character');
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

export class CryptoError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'CryptoError';
  }
}

/** @typedef {{publicKey: Uint8Array, secretKey: Uint8Array}} KeyPair */

/** A fresh X25519 key pair (identity keys and box keys alike).
 * @returns {KeyPair} */
export function generateKeyPair() {
  return nacl.box.keyPair();
}

/** @param {Uint8Array} secretKey
 * @returns {KeyPair} */
export function keyPairFromSecretKey(secretKey) {
  if (secretKey.length !== KEY_BYTES) throw new CryptoError('a secret key is 32 bytes');
  return nacl.box.keyPair.fromSecretKey(secretKey);
}

/** @param {number} n */
export function randomBytes(n) {
  return nacl.randomBytes(n);
}

/** Splits a box secret key 2-of-2: `misakeyShare` is random, `invitationShare` = secret XOR it.
 * Either share alone is uniformly random and says nothing about the secret.
 * @param {Uint8Array} secretKey
 * @param {Uint8Array} [misakeyShare] fixed only by test vectors
 * @returns {{misakeyShare: Uint8Array, invitationShare: Uint8Array}} */
export function splitSecret(secretKey, misakeyShare = randomBytes(KEY_BYTES)) {
  if (secretKey.length !== KEY_BYTES || misakeyShare.length !== KEY_BYTES) {
    throw new CryptoError('a secret key and its shares are 32 bytes');
  }
  return { misakeyShare, invitationShare: xor(secretKey, misakeyShare) };
}

/** @param {Uint8Array} misakeyShare
 * @param {Uint8Array} invitationShare
 * @returns {Uint8Array} the box secret key */
export function combineShares(misakeyShare, invitationShare) {
  if (misakeyShare.length !== KEY_BYTES || invitationShare.length !== KEY_BYTES) {
    throw new CryptoError('a share is 32 bytes');
  }
  return xor(misakeyShare, invitationShare);
}

/** Rebuilds the box secret from its shares and checks it against the box public key.
 * @param {Uint8Array} misakeyShare
 * @param {Uint8Array} invitationShare
 * @param {string} boxPublicKey b64u
 * @returns {Uint8Array} */
export function recoverBoxSecret(misakeyShare, invitationShare, boxPublicKey) {
  const secretKey = combineShares(misakeyShare, invitationShare);
  if (toB64u(keyPairFromSecretKey(secretKey).publicKey) !== boxPublicKey) {
    throw new CryptoError('the shares do not rebuild the key of this box');
  }
  return secretKey;
}

/** `other_share_hash`: b64u(SHA-512(invitation share bytes)), 86 characters.
 * @param {Uint8Array} invitationShare */
export function shareHash(invitationShare) {
  return toB64u(nacl.hash(invitationShare));
}

/** Encrypts to a public key with a one-time sender key pair:
 * ephemeral_public_key (32) || nonce (24) || crypto_box(plaintext) (16-byte tag first).
 * @param {Uint8Array} plaintext
 * @param {Uint8Array} recipientPublicKey
 * @param {{ephemeralSecretKey?: Uint8Array, nonce?: Uint8Array}} [fixed] only for test vectors
 * @returns {Uint8Array} */
export function seal(plaintext, recipientPublicKey, fixed = {}) {
  if (recipientPublicKey.length !== KEY_BYTES) throw new CryptoError('a public key is 32 bytes');
  const eph = fixed.ephemeralSecretKey ? keyPairFromSecretKey(fixed.ephemeralSecretKey) : generateKeyPair();
  const nonce = fixed.nonce ?? randomBytes(NONCE_BYTES);
  const boxed = nacl.box(plaintext, nonce, recipientPublicKey, eph.secretKey);
  const out = new Uint8Array(KEY_BYTES + NONCE_BYTES + boxed.length);
  out.set(eph.publicKey, 0);
  out.set(nonce, KEY_BYTES);
  out.set(boxed, KEY_BYTES + NONCE_BYTES);
  return out;
}

/** @param {Uint8Array} sealed
 * @param {Uint8Array} recipientSecretKey
 * @returns {Uint8Array} */
export function open(sealed, recipientSecretKey) {
  if (sealed.length < SEAL_OVERHEAD) throw new CryptoError('ciphertext too short');
  const epk = sealed.subarray(0, KEY_BYTES);
  const nonce = sealed.subarray(KEY_BYTES, KEY_BYTES + NONCE_BYTES);
  const plain = nacl.box.open(sealed.subarray(KEY_BYTES + NONCE_BYTES), nonce, epk, recipientSecretKey);
  if (!plain) throw new CryptoError('ciphertext does not open with this key');
  return plain;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

/** `content.encrypted` of a msg.text (and `new_encrypted` of a msg.edit).
 * @param {string} text
 * @param {string} boxPublicKey b64u
 * @param {{ephemeralSecretKey?: Uint8Array, nonce?: Uint8Array}} [fixed]
 * @returns {string} b64u */
export function encryptMessage(text, boxPublicKey, fixed) {
  const out = toB64u(seal(utf8.encode(text), fromB64(boxPublicKey), fixed));
  if (out.length > MAX_MESSAGE_CHARS) throw new CryptoError('message too long');
  return out;
}

/** @param {string} encrypted b64u
 * @param {Uint8Array} boxSecretKey
 * @returns {string} */
export function decryptMessage(encrypted, boxSecretKey) {
  return fromUtf8.decode(open(fromB64(encrypted), boxSecretKey));
}

/** `encrypted_invitation_key_share` and the `set_box_key_share` crypto action: the invitation
 * share sealed to the box public key.
 * @param {Uint8Array} invitationShare
 * @param {string} boxPublicKey b64u
 * @param {{ephemeralSecretKey?: Uint8Array, nonce?: Uint8Array}} [fixed] */
export function encryptInvitationShare(invitationShare, boxPublicKey, fixed) {
  return toB64u(seal(invitationShare, fromB64(boxPublicKey), fixed));
}

/** @param {string} encrypted
 * @param {Uint8Array} boxSecretKey */
export function decryptInvitationShare(encrypted, boxSecretKey) {
  const share = open(fromB64(encrypted), boxSecretKey);
  if (share.length !== KEY_BYTES) throw new CryptoError('an invitation share is 32 bytes');
  return share;
}

/** The `invitation` crypto action (contact, auto-invite): JSON {box_public_key, invitation_share}
 * sealed to the invited identity's public key. The box public key binds the share to one box:
 * the receiver refuses a box whose key differs.
 * @param {string} boxPublicKey b64u
 * @param {Uint8Array} invitationShare
 * @param {string} identityPublicKey b64u
 * @param {{ephemeralSecretKey?: Uint8Array, nonce?: Uint8Array}} [fixed] */
export function encryptInvitation(boxPublicKey, invitationShare, identityPublicKey, fixed) {
  const json = JSON.stringify({ box_public_key: boxPublicKey, invitation_share: toB64u(invitationShare) });
  const out = toB64u(seal(utf8.encode(json), fromB64(identityPublicKey), fixed));
  if (out.length > MAX_ACTION_CHARS) throw new CryptoError('invitation too long');
  return out;
}

/** @param {string} encrypted
 * @param {Uint8Array} identitySecretKey
 * @returns {{boxPublicKey: string, invitationShare: Uint8Array}} */
export function decryptInvitation(encrypted, identitySecretKey) {
  /** @type {any} */
  let payload;
  try {
    payload = JSON.parse(fromUtf8.decode(open(fromB64(encrypted), identitySecretKey)));
  } catch (e) {
    if (e instanceof CryptoError) throw e;
    throw new CryptoError('invitation payload is not JSON');
  }
  if (typeof payload?.box_public_key !== 'string' || typeof payload?.invitation_share !== 'string') {
    throw new CryptoError('invitation payload lacks box_public_key or invitation_share');
  }
  const invitationShare = fromB64(payload.invitation_share);
  if (invitationShare.length !== KEY_BYTES) throw new CryptoError('an invitation share is 32 bytes');
  return { boxPublicKey: payload.box_public_key, invitationShare };
}

/** Everything a new box needs: its key pair, the split, and the `key_share` body.
 * @param {{secretKey?: Uint8Array, misakeyShare?: Uint8Array, fixed?: {ephemeralSecretKey?: Uint8Array, nonce?: Uint8Array}}} [opts]
 */
export function newBoxKeys(opts = {}) {
  const kp = opts.secretKey ? keyPairFromSecretKey(opts.secretKey) : generateKeyPair();
  const publicKey = toB64u(kp.publicKey);
  const keyShare = newKeyShare(kp.secretKey, publicKey, opts.misakeyShare, opts.fixed);
  return { secretKey: kp.secretKey, publicKey, ...keyShare };
}

/** A fresh split of an existing box secret (box creation and key-share rotation).
 * @param {Uint8Array} boxSecretKey
 * @param {string} boxPublicKey
 * @param {Uint8Array} [misakeyShare]
 * @param {{ephemeralSecretKey?: Uint8Array, nonce?: Uint8Array}} [fixed] */
export function newKeyShare(boxSecretKey, boxPublicKey, misakeyShare, fixed) {
  const { misakeyShare: ms, invitationShare } = splitSecret(boxSecretKey, misakeyShare);
  return {
    invitationShare,
    keyShare: {
      misakey_share: toB64u(ms),
      other_share_hash: shareHash(invitationShare),
      encrypted_invitation_key_share: encryptInvitationShare(invitationShare, boxPublicKey, fixed),
    },
  };
}

/** @param {Uint8Array} a
 * @param {Uint8Array} b */
function xor(a, b) {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** An invitation link: `<miniapp url>#box=<box id>&share=<b64u invitation share>`. The share is
 * only in the fragment, which browsers never send to a server.
 * @param {string} baseUrl the miniapp's page
 * @param {string} boxId
 * @param {Uint8Array} invitationShare */
export function makeInvitationLink(baseUrl, boxId, invitationShare) {
  const url = new URL(baseUrl);
  url.hash = `box=${boxId.toLowerCase()}&share=${toB64u(invitationShare)}`;
  return url.toString();
}

/** @param {string} link a full URL, or just its fragment
 * @returns {{boxId: string, invitationShare: Uint8Array, otherShareHash: string}} */
export function parseInvitationLink(link) {
  const hashAt = link.indexOf('#');
  const fragment = hashAt >= 0 ? link.slice(hashAt + 1) : link;
  const params = new URLSearchParams(fragment);
  const boxId = params.get('box');
  const share = params.get('share');
  if (!boxId || !UUID.test(boxId)) throw new CryptoError('invitation link has no valid box id');
  if (!share || !/^[A-Za-z0-9_-]+$/.test(share)) throw new CryptoError('invitation link has no valid share');
  const invitationShare = fromB64(share);
  if (invitationShare.length !== KEY_BYTES) throw new CryptoError('invitation share is not 32 bytes');
  return { boxId: boxId.toLowerCase(), invitationShare, otherShareHash: shareHash(invitationShare) };
}
