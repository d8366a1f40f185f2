// Writes docs/crypto-vectors.json from fixed inputs. Run it only when the protocol changes: the
// JS and Rust tests check the committed file, so a change that breaks interoperability fails them.
import { writeFileSync } from 'node:fs';
import nacl from 'tweetnacl';
import * as c from '../src/crypto.js';
import * as f from '../src/files.js';

/** @param {number} start */
const bytes = (start, n = 32) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);
const hex = (/** @type {Uint8Array} */ b) => Buffer.from(b).toString('hex');

const boxSecret = bytes(0x10);
const box = c.keyPairFromSecretKey(boxSecret);
const identitySecret = bytes(0x50);
const identity = c.keyPairFromSecretKey(identitySecret);
const misakeyShare = Uint8Array.from({ length: 32 }, (_, i) => (0x90 + i * 7) & 0xff);
const { invitationShare } = c.splitSecret(boxSecret, misakeyShare);
const eph = bytes(0xc0);
const nonce = bytes(0x01, 24);
const boxPk = c.toB64u(box.publicKey);
const boxId = '91ec8274-2b6d-40ff-afad-83e8ba5808e5';
const texts = ['hello bob', 'Grüße, 👋 «ünïcødé»', ''];

/** @type {Record<string, any>} */
const vectors = {
  description: 'Test vectors of docs/crypto.md. Byte strings are hex; wire strings are unpadded URL-safe base64.',
  box: {
    secret_key_hex: hex(boxSecret),
    public_key: boxPk,
    misakey_share_hex: hex(misakeyShare),
    invitation_share_hex: hex(invitationShare),
    key_share: {
      misakey_share: c.toB64u(misakeyShare),
      other_share_hash: c.shareHash(invitationShare),
      encrypted_invitation_key_share: c.encryptInvitationShare(invitationShare, boxPk, { ephemeralSecretKey: eph, nonce }),
    },
    ephemeral_secret_key_hex: hex(eph),
    nonce_hex: hex(nonce),
  },
  identity: {
    secret_key_hex: hex(identitySecret),
    public_key: c.toB64u(identity.publicKey),
  },
  messages: texts.map((text, i) => {
    const e = bytes(0xd0 + i);
    const n = bytes(0x30 + i, 24);
    return {
      plaintext: text,
      ephemeral_secret_key_hex: hex(e),
      nonce_hex: hex(n),
      encrypted: c.encryptMessage(text, boxPk, { ephemeralSecretKey: e, nonce: n }),
    };
  }),
  invitation: {
    plaintext: JSON.stringify({ box_public_key: boxPk, invitation_share: c.toB64u(invitationShare) }),
    ephemeral_secret_key_hex: hex(bytes(0xe0)),
    nonce_hex: hex(bytes(0x60, 24)),
    encrypted: c.encryptInvitation(boxPk, invitationShare, c.toB64u(identity.publicKey), {
      ephemeralSecretKey: bytes(0xe0),
      nonce: bytes(0x60, 24),
    }),
  },
  invitation_link: {
    base_url: 'https://miniapp.example/demo/',
    link: c.makeInvitationLink('https://miniapp.example/demo/', boxId, invitationShare),
  },
  base64: [
    { hex: '', b64u: '' },
    { hex: 'ff', b64u: '_w' },
    { hex: 'fbff', b64u: '-_8' },
    { hex: '000102', b64u: 'AAEC' },
  ],
};

// Encrypted files (docs/crypto.md §9): a fixed file key and nonce prefix.
const fileKey = bytes(0x70);
const filePrefix = bytes(0xa0, 16);
/** byte i of the large vector's plaintext is i mod 251, so no two chunks are alike */
const large = Uint8Array.from({ length: 2 * f.FILE_CHUNK_BYTES + 5 }, (_, i) => i % 251);
const fileMeta = { name: 'notes.txt', type: 'text/plain', size: 11, key: fileKey, format: f.FILE_FORMAT };
const fileMetaJson = f.metadataJson(fileMeta);
vectors.files = {
  format: f.FILE_FORMAT,
  chunk_bytes: f.FILE_CHUNK_BYTES,
  key_hex: hex(fileKey),
  prefix_hex: hex(filePrefix),
  nonces: [
    { index: 0, last: false, nonce_hex: hex(f.chunkNonce(filePrefix, 0, false)) },
    { index: 2, last: true, nonce_hex: hex(f.chunkNonce(filePrefix, 2, true)) },
    { index: 0x0102030405, last: false, nonce_hex: hex(f.chunkNonce(filePrefix, 0x0102030405, false)) },
  ],
  blobs: [
    { plaintext_hex: '', encrypted_hex: hex(await f.encryptFile(new Uint8Array(0), fileKey, filePrefix)) },
    { plaintext_hex: hex(new TextEncoder().encode('hello, file')), encrypted_hex: hex(await f.encryptFile(new TextEncoder().encode('hello, file'), fileKey, filePrefix)) },
  ],
  large_blob: {
    plaintext: 'byte i is i mod 251',
    size: large.length,
    encrypted_size: f.encryptedFileSize(large.length),
    encrypted_sha512_hex: hex(nacl.hash(await f.encryptFile(large, fileKey, filePrefix))),
  },
  metadata: {
    plaintext: fileMetaJson,
    ephemeral_secret_key_hex: hex(bytes(0xf0)),
    nonce_hex: hex(bytes(0x80, 24)),
    msg_encrypted_content: c.encryptMessage(fileMetaJson, boxPk, { ephemeralSecretKey: bytes(0xf0), nonce: bytes(0x80, 24) }),
  },
  saved_file: {
    ephemeral_secret_key_hex: hex(bytes(0xf8)),
    nonce_hex: hex(bytes(0x90, 24)),
    encrypted_metadata: c.toB64u(
      c.seal(new TextEncoder().encode(fileMetaJson), identity.publicKey, { ephemeralSecretKey: bytes(0xf8), nonce: bytes(0x90, 24) }),
    ),
    key_fingerprint: f.keyFingerprint(fileKey),
  },
};

const out = new URL('../../../docs/crypto-vectors.json', import.meta.url);
writeFileSync(out, JSON.stringify(vectors, null, 2) + '\n');
console.log(`wrote ${out.pathname}`);
