import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as c from '../../src/crypto.js';

const V = JSON.parse(readFileSync(new URL('../../../../docs/crypto-vectors.json', import.meta.url), 'utf8'));
const hex = (/** @type {string} */ h) => Uint8Array.from(Buffer.from(h, 'hex'));

test('base64 vectors: unpadded URL-safe out, both alphabets and padding in', () => {
  for (const v of V.base64) {
    assert.equal(c.toB64u(hex(v.hex)), v.b64u);
    assert.deepEqual(c.fromB64(v.b64u), hex(v.hex));
  }
  assert.deepEqual(c.fromB64('+/8='), hex('fbff'));
  assert.throws(() => c.fromB64('abcde'), c.CryptoError);
  assert.throws(() => c.fromB64('ab$d'), c.CryptoError);
  for (let n = 0; n < 70; n++) {
    const b = c.randomBytes(n);
    assert.deepEqual(c.fromB64(c.toB64u(b)), b);
    assert.equal(c.toB64u(b), Buffer.from(b).toString('base64url'));
  }
});

test('box vectors: public key, split, hash and encrypted invitation share', () => {
  const sk = hex(V.box.secret_key_hex);
  assert.equal(c.toB64u(c.keyPairFromSecretKey(sk).publicKey), V.box.public_key);
  const ms = hex(V.box.misakey_share_hex);
  const { invitationShare } = c.splitSecret(sk, ms);
  assert.equal(Buffer.from(invitationShare).toString('hex'), V.box.invitation_share_hex);
  const fixed = { ephemeralSecretKey: hex(V.box.ephemeral_secret_key_hex), nonce: hex(V.box.nonce_hex) };
  const { keyShare } = c.newKeyShare(sk, V.box.public_key, ms, fixed);
  assert.deepEqual(keyShare, V.box.key_share);
  assert.equal(keyShare.other_share_hash.length, 86);
  assert.deepEqual(c.decryptInvitationShare(V.box.key_share.encrypted_invitation_key_share, sk), invitationShare);
  assert.deepEqual(c.recoverBoxSecret(ms, invitationShare, V.box.public_key), sk);
});

test('message vectors encrypt to the expected bytes and decrypt back', () => {
  const sk = hex(V.box.secret_key_hex);
  for (const m of V.messages) {
    const fixed = { ephemeralSecretKey: hex(m.ephemeral_secret_key_hex), nonce: hex(m.nonce_hex) };
    assert.equal(c.encryptMessage(m.plaintext, V.box.public_key, fixed), m.encrypted);
    assert.equal(c.decryptMessage(m.encrypted, sk), m.plaintext);
    assert.match(m.encrypted, /^[A-Za-z0-9_-]+$/);
  }
});

test('invitation vector opens with the identity key only', () => {
  const idSk = hex(V.identity.secret_key_hex);
  assert.equal(c.toB64u(c.keyPairFromSecretKey(idSk).publicKey), V.identity.public_key);
  const inv = c.decryptInvitation(V.invitation.encrypted, idSk);
  assert.equal(inv.boxPublicKey, V.box.public_key);
  assert.equal(Buffer.from(inv.invitationShare).toString('hex'), V.box.invitation_share_hex);
  const fixed = { ephemeralSecretKey: hex(V.invitation.ephemeral_secret_key_hex), nonce: hex(V.invitation.nonce_hex) };
  assert.equal(c.encryptInvitation(V.box.public_key, inv.invitationShare, V.identity.public_key, fixed), V.invitation.encrypted);
  assert.throws(() => c.decryptInvitation(V.invitation.encrypted, hex(V.box.secret_key_hex)), c.CryptoError);
});

test('split/combine: random splits rebuild the secret, one share alone or a wrong one does not', () => {
  for (let i = 0; i < 50; i++) {
    const keys = c.newBoxKeys();
    const ms = c.fromB64(keys.keyShare.misakey_share);
    assert.deepEqual(c.combineShares(ms, keys.invitationShare), keys.secretKey);
    assert.notDeepEqual(ms, keys.secretKey);
    assert.notDeepEqual(keys.invitationShare, keys.secretKey);
    assert.deepEqual(c.recoverBoxSecret(ms, keys.invitationShare, keys.publicKey), keys.secretKey);
    const other = c.newBoxKeys();
    assert.throws(() => c.recoverBoxSecret(ms, other.invitationShare, keys.publicKey), c.CryptoError);
  }
  assert.throws(() => c.splitSecret(new Uint8Array(31)), c.CryptoError);
});

test('tampered or truncated ciphertext is refused', () => {
  const keys = c.newBoxKeys();
  const enc = c.encryptMessage('secret', keys.publicKey);
  const bytes = c.fromB64(enc);
  bytes[bytes.length - 1] ^= 1;
  assert.throws(() => c.decryptMessage(c.toB64u(bytes), keys.secretKey), c.CryptoError);
  assert.throws(() => c.decryptMessage(enc.slice(0, 40), keys.secretKey), c.CryptoError);
  assert.throws(() => c.decryptMessage(enc, c.newBoxKeys().secretKey), c.CryptoError);
});

test('size limits of SPEC §2.4 are enforced before sending', () => {
  const keys = c.newBoxKeys();
  const max = Math.floor((c.MAX_MESSAGE_CHARS * 3) / 4) - c.SEAL_OVERHEAD;
  assert.ok(c.encryptMessage('a'.repeat(max), keys.publicKey).length <= c.MAX_MESSAGE_CHARS);
  assert.throws(() => c.encryptMessage('a'.repeat(max + 1), keys.publicKey), c.CryptoError);
});

test('invitation links carry the share in the fragment only and parse back', () => {
  assert.equal(
    c.makeInvitationLink(V.invitation_link.base_url, V.invitation.box_id ?? '91ec8274-2b6d-40ff-afad-83e8ba5808e5', hex(V.box.invitation_share_hex)),
    V.invitation_link.link,
  );
  const url = new URL(V.invitation_link.link);
  assert.equal(url.search, '');
  const p = c.parseInvitationLink(V.invitation_link.link);
  assert.equal(p.boxId, '91ec8274-2b6d-40ff-afad-83e8ba5808e5');
  assert.equal(Buffer.from(p.invitationShare).toString('hex'), V.box.invitation_share_hex);
  assert.equal(p.otherShareHash, V.box.key_share.other_share_hash);
  assert.deepEqual(c.parseInvitationLink(url.hash.slice(1)).invitationShare, p.invitationShare);
  const bad = [
    'https://x/#share=' + url.hash.split('share=')[1],
    'https://x/#box=not-a-uuid&share=AAAA',
    'https://x/#box=91ec8274-2b6d-40ff-afad-83e8ba5808e5&share=AAAA',
    'https://x/#box=91ec8274-2b6d-40ff-afad-83e8ba5808e5&share=a+b/',
    'https://x/?box=91ec8274-2b6d-40ff-afad-83e8ba5808e5',
  ];
  for (const link of bad) assert.throws(() => c.parseInvitationLink(link), c.CryptoError, link);
});
