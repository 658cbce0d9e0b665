use super::*;
use crate::fleet::sign::{PublicKey, SigningKey, base64, generate_keypair};

fn keypair() -> (SigningKey, PublicKey) {
    let (private, _) = generate_keypair().unwrap();
    let key = SigningKey::from_pkcs8(&private).unwrap();
    let public = key.public_key();
    (key, public)
}

fn with_key(key: &PublicKey) -> DecodeOptions<'_> {
    DecodeOptions {
        fleet_key: Some(key),
        ..DecodeOptions::default()
    }
}

#[test]
fn a_signed_json_document_is_accepted_with_the_fleet_key() {
    let (key, public) = keypair();
    let payload = doc_json(9, vec![pod("a")]);
    let sealed = seal_envelope(&payload, &key);
    let opened = decode_desired(&sealed, &with_key(&public)).unwrap();
    assert_eq!(opened.doc.revision, 9);
    assert_eq!(
        opened.signature,
        Signature::Verified {
            key_id: public.key_id()
        }
    );
}

#[test]
fn a_signed_postcard_payload_is_accepted_with_the_fleet_key() {
    let (key, public) = keypair();
    let doc = decode(&doc_json(4, vec![pod("a")])).unwrap();
    let sealed = seal_envelope(&encode_postcard(&doc), &key);
    assert_eq!(
        decode_desired(&sealed, &with_key(&public)).unwrap().doc,
        doc
    );
}

#[test]
fn unsigned_documents_are_refused_when_a_fleet_key_is_set() {
    let (_, public) = keypair();
    let json = doc_json(1, vec![pod("a")]);
    let err = decode_desired(&json, &with_key(&public)).unwrap_err();
    assert_eq!(
        err,
        DocError::Unsigned {
            key_id: public.key_id()
        }
    );
    assert!(err.to_string().starts_with("unsigned document refused"));
    let doc = decode(&json).unwrap();
    let err = decode_desired(&encode_postcard(&doc), &with_key(&public)).unwrap_err();
    assert_eq!(err.reason(), "Unsigned");
}

#[test]
fn an_unsigned_document_with_bad_pods_is_refused_as_unsigned_before_its_pods_are_read() {
    let (_, public) = keypair();
    let mut bad = pod("a");
    bad["spec"]["containers"][0]["image"] = json!("");
    let err = decode_desired(&doc_json(1, vec![bad]), &with_key(&public)).unwrap_err();
    assert_eq!(err.reason(), "Unsigned");
}

#[test]
fn a_forged_payload_does_not_verify() {
    let (key, public) = keypair();
    let sealed = seal_envelope(&doc_json(1, vec![pod("a")]), &key);
    let mut v: Value = serde_json::from_slice(&sealed).unwrap();
    v["payload"] = json!(base64::encode(&doc_json(1, vec![pod("evil")])));
    let forged = serde_json::to_vec(&v).unwrap();
    let err = decode_desired(&forged, &with_key(&public)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "signature does not verify with fleet key {}",
            public.key_id()
        )
    );
    assert_eq!(err.reason(), "BadSignature");
}

#[test]
fn the_signature_covers_the_exact_payload_bytes() {
    let (key, public) = keypair();
    let payload = doc_json(1, vec![pod("a")]);
    let sealed = seal_envelope(&payload, &key);
    let mut v: Value = serde_json::from_slice(&sealed).unwrap();
    // The same document with one more space is different bytes.
    let mut spaced = payload.clone();
    spaced.insert(1, b' ');
    assert_eq!(decode(&spaced).unwrap(), decode(&payload).unwrap());
    v["payload"] = json!(base64::encode(&spaced));
    let err = decode_desired(&serde_json::to_vec(&v).unwrap(), &with_key(&public)).unwrap_err();
    assert_eq!(err.reason(), "BadSignature");
}

#[test]
fn a_document_signed_by_another_key_is_refused_naming_both_keys() {
    let (_, public) = keypair();
    let (other, other_public) = keypair();
    let sealed = seal_envelope(&doc_json(1, vec![]), &other);
    let err = decode_desired(&sealed, &with_key(&public)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "signature does not verify with fleet key {} (the document names key {})",
            public.key_id(),
            other_public.key_id()
        )
    );
}

#[test]
fn without_a_fleet_key_envelopes_are_opened_unchecked_and_plain_documents_accepted() {
    let (key, public) = keypair();
    let sealed = seal_envelope(&doc_json(2, vec![]), &key);
    let opened = decode_desired(&sealed, &DecodeOptions::default()).unwrap();
    assert_eq!(
        opened.signature,
        Signature::NotChecked {
            key_id: public.key_id()
        }
    );
    let plain = decode_desired(&doc_json(2, vec![]), &DecodeOptions::default()).unwrap();
    assert_eq!(plain.signature, Signature::Unsigned);
}

#[test]
fn malformed_envelopes_name_the_bad_field() {
    let (key, public) = keypair();
    let sealed = seal_envelope(&doc_json(1, vec![]), &key);
    let good: Value = serde_json::from_slice(&sealed).unwrap();
    let cases: [(&str, Value, &str); 5] = [
        ("signature", Value::Null, "signature: missing"),
        (
            "signature",
            json!("***="),
            "signature: not base64: invalid base64 character '*' at offset 0",
        ),
        (
            "signature",
            json!("AAAA"),
            "signature: an ed25519 signature is 64 bytes, got 3",
        ),
        (
            "payload",
            json!(5),
            "payload: must be a base64 string, got 5",
        ),
        (
            "extra",
            json!(1),
            "extra: unknown field (a SignedDeviceState has apiVersion, kind, keyId, signature, payload)",
        ),
    ];
    for (field, value, want) in cases {
        let mut v = good.clone();
        if value.is_null() {
            v.as_object_mut().unwrap().remove(field);
        } else {
            v[field] = value;
        }
        let err = decode_desired(&serde_json::to_vec(&v).unwrap(), &with_key(&public)).unwrap_err();
        assert_eq!(err.to_string(), want);
    }
}

#[test]
fn an_envelope_inside_an_envelope_is_refused() {
    let (key, public) = keypair();
    let inner = seal_envelope(&doc_json(1, vec![]), &key);
    let outer = seal_envelope(&inner, &key);
    let err = decode_desired(&outer, &with_key(&public)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kind: a SignedDeviceState envelope cannot be inside another envelope nor compressed (compress its payload instead)"
    );
}

#[test]
fn a_valid_signature_over_an_invalid_document_reports_the_document_error() {
    let (key, public) = keypair();
    let sealed = seal_envelope(b"{\"kind\":\"Foo\"}", &key);
    let err = decode_desired(&sealed, &with_key(&public)).unwrap_err();
    assert_eq!(err.to_string(), "kind: \"Foo\" is not DeviceState");
}

/// Envelopes and key files written by the hand-written base64/PEM code
/// (before the `base64` crate and `pki_types::pem`), in
/// `src/fleet/sign/fixtures/`: they still open and verify, and sealing the
/// same payload with the same key gives the same bytes (ed25519 is
/// deterministic), so the wire format did not change.
#[test]
fn envelopes_written_by_older_versions_still_verify_and_are_resealed_byte_for_byte() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fleet/sign/fixtures");
    let private = crate::fleet::sign::read_private_key(&dir.join("fleet.key")).unwrap();
    let public = crate::fleet::sign::read_public_key(&dir.join("fleet.pub")).unwrap();
    let key = SigningKey::from_pkcs8(&private).unwrap();
    assert_eq!(key.public_key(), public);
    for (file, revision, pod) in [
        ("signed-json.json", 7, "web"),
        ("signed-postcard.json", 8, "db"),
    ] {
        let sealed = std::fs::read(dir.join(file)).unwrap();
        let opened = decode_desired(&sealed, &with_key(&public)).unwrap();
        assert_eq!(opened.doc.revision, revision, "{file}");
        assert_eq!(opened.doc.pods.len(), 1, "{file}");
        assert!(format!("{:?}", opened.doc.pods[0]).contains(pod), "{file}");
        let value: Value = serde_json::from_slice(&sealed).unwrap();
        let (payload, _) = open_envelope(&value, Some(&public)).unwrap();
        assert_eq!(seal_envelope(&payload, &key), sealed, "{file}");
    }
}

#[test]
fn the_signature_covers_the_registries_block() {
    let (key, public) = keypair();
    let doc = |endpoint: &str| {
        serde_json::to_vec(&json!({
            "apiVersion": "picolet.io/v1", "kind": "DeviceState", "revision": 3, "pods": [],
            "registries": {"mirrors": {"docker.io": {"endpoint": [endpoint]}}},
        }))
        .unwrap()
    };
    let sealed = seal_envelope(&doc("https://mirror.lan"), &key);
    let opened = decode_desired(&sealed, &with_key(&public)).unwrap();
    assert!(opened.doc.registries.is_some());
    let mut v: Value = serde_json::from_slice(&sealed).unwrap();
    v["payload"] = json!(base64::encode(&doc("http://evil.lan")));
    let err = decode_desired(&serde_json::to_vec(&v).unwrap(), &with_key(&public)).unwrap_err();
    assert_eq!(err.reason(), "BadSignature");
}
