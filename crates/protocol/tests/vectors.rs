//! Checks docs/crypto-vectors.json, the file the JavaScript SDK checks too.

use protocol::*;
use serde_json::Value;
use sha2::{Digest, Sha512};

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/crypto-vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default()).unwrap_or(Value::Null)
}

fn hex32(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().unwrap_or_default()).ok().and_then(|b| b.try_into().ok()).unwrap_or([0; 32])
}

fn hex24(v: &Value) -> [u8; 24] {
    hex::decode(v.as_str().unwrap_or_default()).ok().and_then(|b| b.try_into().ok()).unwrap_or([0; 24])
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

#[test]
fn box_key_split_hash_and_encrypted_invitation_share() {
    let v = vectors();
    let b = &v["box"];
    let secret = hex32(&b["secret_key_hex"]);
    assert_eq!(b64u(&public_key(&secret)), s(&b["public_key"]));
    let misakey = hex32(&b["misakey_share_hex"]);
    let share = xor_shares(&secret, &misakey);
    assert_eq!(share, hex32(&b["invitation_share_hex"]));
    assert_eq!(xor_shares(&misakey, &share), secret);
    assert_eq!(b64u(&misakey), s(&b["key_share"]["misakey_share"]));
    assert_eq!(share_hash(&share), s(&b["key_share"]["other_share_hash"]));
    let box_pk = public_key(&secret);
    let sealed = seal(&share, &box_pk, Some((&hex32(&b["ephemeral_secret_key_hex"]), &hex24(&b["nonce_hex"]))));
    assert_eq!(b64u(&sealed), s(&b["key_share"]["encrypted_invitation_key_share"]));
    let enc = from_b64(s(&b["key_share"]["encrypted_invitation_key_share"])).unwrap_or_default();
    assert_eq!(open(&enc, &secret).unwrap_or_default(), share.to_vec());
}

#[test]
fn messages_match_byte_for_byte() {
    let v = vectors();
    let secret = hex32(&v["box"]["secret_key_hex"]);
    let box_pk = public_key(&secret);
    let messages = v["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(messages.len(), 3);
    for m in &messages {
        let fixed = (hex32(&m["ephemeral_secret_key_hex"]), hex24(&m["nonce_hex"]));
        let sealed = seal(s(&m["plaintext"]).as_bytes(), &box_pk, Some((&fixed.0, &fixed.1)));
        assert_eq!(b64u(&sealed), s(&m["encrypted"]));
        let opened = open(&from_b64(s(&m["encrypted"])).unwrap_or_default(), &secret);
        assert_eq!(opened.as_deref(), Ok(s(&m["plaintext"]).as_bytes()));
    }
}

#[test]
fn invitation_opens_with_the_identity_key_only() {
    let v = vectors();
    let id_secret = hex32(&v["identity"]["secret_key_hex"]);
    assert_eq!(b64u(&public_key(&id_secret)), s(&v["identity"]["public_key"]));
    let (box_pk, share) = open_invitation(s(&v["invitation"]["encrypted"]), &id_secret).unwrap_or_default();
    assert_eq!(box_pk, s(&v["box"]["public_key"]));
    assert_eq!(share, hex32(&v["box"]["invitation_share_hex"]));
    let box_secret = hex32(&v["box"]["secret_key_hex"]);
    assert_eq!(open_invitation(s(&v["invitation"]["encrypted"]), &box_secret), Err(Error::Open));
    let fixed = (hex32(&v["invitation"]["ephemeral_secret_key_hex"]), hex24(&v["invitation"]["nonce_hex"]));
    let sealed = seal(s(&v["invitation"]["plaintext"]).as_bytes(), &public_key(&id_secret), Some((&fixed.0, &fixed.1)));
    assert_eq!(b64u(&sealed), s(&v["invitation"]["encrypted"]));
}

#[test]
fn links_and_base64() {
    let v = vectors();
    let link = s(&v["invitation_link"]["link"]);
    let share = hex32(&v["box"]["invitation_share_hex"]);
    let (id, parsed) = parse_invitation_link(link).unwrap_or_default();
    assert_eq!(parsed, share);
    assert_eq!(invitation_link(s(&v["invitation_link"]["base_url"]), &id, &share), link);
    assert_eq!(
        parse_invitation_link("https://x/#box=91ec8274-2b6d-40ff-afad-83e8ba5808e5&share=AAAA"),
        Err(Error::Length)
    );
    for case in v["base64"].as_array().cloned().unwrap_or_default() {
        let bytes = hex::decode(s(&case["hex"])).unwrap_or_default();
        assert_eq!(b64u(&bytes), s(&case["b64u"]));
        assert_eq!(from_b64(s(&case["b64u"])), Ok(bytes));
    }
    assert_eq!(from_b64("+/8="), Ok(vec![0xfb, 0xff]));
}

#[test]
fn random_seals_round_trip_and_tampering_is_refused() {
    let secret = [7u8; 32];
    let pk = public_key(&secret);
    let mut sealed = seal(b"hello", &pk, None);
    assert_eq!(sealed.len(), SEAL_OVERHEAD + 5);
    assert_eq!(open(&sealed, &secret), Ok(b"hello".to_vec()));
    if let Some(last) = sealed.last_mut() {
        *last ^= 1;
    }
    assert_eq!(open(&sealed, &secret), Err(Error::Open));
    assert_eq!(open(&sealed[..10], &secret), Err(Error::Length));
}

#[test]
fn file_vectors_match_byte_for_byte() {
    let v = vectors();
    let f = &v["files"];
    assert_eq!(f["chunk_bytes"].as_u64(), Some(FILE_CHUNK_BYTES as u64));
    let key = hex32(&f["key_hex"]);
    let prefix: [u8; 16] = hex::decode(s(&f["prefix_hex"])).ok().and_then(|b| b.try_into().ok()).unwrap_or([0; 16]);
    let nonces = f["nonces"].as_array().cloned().unwrap_or_default();
    assert_eq!(nonces.len(), 3);
    for n in &nonces {
        let nonce =
            file_chunk_nonce(&prefix, n["index"].as_u64().unwrap_or(u64::MAX), n["last"].as_bool().unwrap_or_default());
        assert_eq!(hex::encode(nonce), s(&n["nonce_hex"]));
    }
    let blobs = f["blobs"].as_array().cloned().unwrap_or_default();
    assert_eq!(blobs.len(), 2);
    for b in &blobs {
        let plain = hex::decode(s(&b["plaintext_hex"])).unwrap_or_default();
        assert_eq!(hex::encode(encrypt_file(&plain, &key, &prefix)), s(&b["encrypted_hex"]));
        let blob = hex::decode(s(&b["encrypted_hex"])).unwrap_or_default();
        assert_eq!(decrypt_file(&blob, &key), Ok(plain));
    }
    let large = &f["large_blob"];
    let size = usize::try_from(large["size"].as_u64().unwrap_or_default()).unwrap_or_default();
    let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let blob = encrypt_file(&plain, &key, &prefix);
    assert_eq!(blob.len() as u64, large["encrypted_size"].as_u64().unwrap_or_default());
    assert_eq!(hex::encode(Sha512::digest(&blob)), s(&large["encrypted_sha512_hex"]));
    assert_eq!(decrypt_file(&blob, &key).as_deref(), Ok(plain.as_slice()));
    // Cut at the chunk boundary, chunks swapped, a byte changed: refused.
    assert_eq!(decrypt_file(&blob[..16 + FILE_CHUNK_BYTES + 16], &key), Err(Error::Open));
    let mut swapped = blob[..16].to_vec();
    swapped.extend_from_slice(&blob[16 + FILE_CHUNK_BYTES + 16..16 + 2 * (FILE_CHUNK_BYTES + 16)]);
    swapped.extend_from_slice(&blob[16..16 + FILE_CHUNK_BYTES + 16]);
    swapped.extend_from_slice(&blob[16 + 2 * (FILE_CHUNK_BYTES + 16)..]);
    assert_eq!(decrypt_file(&swapped, &key), Err(Error::Open));
    let mut changed = blob.clone();
    changed[100] ^= 1;
    assert_eq!(decrypt_file(&changed, &key), Err(Error::Open));

    // The metadata sealed to the box, and to the identity for a saved file.
    let m = &f["metadata"];
    let box_secret = hex32(&v["box"]["secret_key_hex"]);
    let fixed = (hex32(&m["ephemeral_secret_key_hex"]), hex24(&m["nonce_hex"]));
    let sealed = seal(s(&m["plaintext"]).as_bytes(), &public_key(&box_secret), Some((&fixed.0, &fixed.1)));
    assert_eq!(b64u(&sealed), s(&m["msg_encrypted_content"]));
    let meta: Value = serde_json::from_str(s(&m["plaintext"])).unwrap_or(Value::Null);
    assert_eq!(from_b64(s(&meta["key"])), Ok(key.to_vec()));
    assert_eq!(meta["format"], f["format"]);
    let id_secret = hex32(&v["identity"]["secret_key_hex"]);
    let saved = from_b64(s(&f["saved_file"]["encrypted_metadata"])).unwrap_or_default();
    assert_eq!(open(&saved, &id_secret), Ok(s(&m["plaintext"]).as_bytes().to_vec()));
    assert_eq!(b64u(&Sha512::digest(key)[..32]), s(&f["saved_file"]["key_fingerprint"]));
}
