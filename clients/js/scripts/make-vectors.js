// Writes docs/crypto-vectors.json from fixed inputs. Run it only when the protocol changes: the
// JS and Rust tests check the committed file, so a change that breaks interoperability fails them.
import { writeFileSync } from 'node:fs';
import * as c from '../src/crypto.js';

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

const out = new URL('../../../docs/crypto-vectors.json', import.meta.url);
writeFileSync(out, JSON.stringify(vectors, null, 2) + '\n');
console.log(`wrote ${out.pathname}`);
