use super::*;
use std::os::unix::fs::PermissionsExt;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// PKCS#8 v1 header of an ed25519 private key, before the 32-byte seed.
const PKCS8_V1_PREFIX: &str = "302e020100300506032b657004220420";

/// A key made by `openssl genpkey -algorithm ed25519` (PKCS#8 v1).
const OPENSSL_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEICZC8FlLhni79052hQaLbi6ZE7K6DWf/aaJiLH75ISoS
-----END PRIVATE KEY-----
";
/// `openssl pkey -pubout` of [`OPENSSL_KEY`].
const OPENSSL_PUB: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAcYoxggr/vDuFrzoTj86hacSrigxuUexgecKGwV2etBg=
-----END PUBLIC KEY-----
";
/// `openssl pkeyutl -sign -rawin` of `hello picolet` with [`OPENSSL_KEY`].
const OPENSSL_SIG: &str =
    "ZN17we8CaY6ux/UJOu0E8W/yBQ9qxE4OLd5xnREBCillRnKCRSwT9N7M1d71GmerSmaAxgP74Rjr2cc2f2G2DA==";

#[test]
fn rfc_8032_test_vector_one_signs_and_verifies() {
    let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    let public = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    let sig = hex(concat!(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555",
        "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    ));
    let key = SigningKey::from_pkcs8(&hex(&format!("{PKCS8_V1_PREFIX}{seed}"))).unwrap();
    assert_eq!(key.public_key().0.to_vec(), public);
    assert_eq!(key.sign(b"").to_vec(), sig);
    assert!(verify(&key.public_key().0, b"", &sig));
}

#[test]
fn a_generated_key_signs_what_its_public_key_verifies() {
    let (private, public) = generate_keypair().unwrap();
    let sig = sign(&private, b"payload").unwrap();
    assert!(verify(&public, b"payload", &sig));
    assert!(PublicKey(public).verify(b"payload", &sig));
}

#[test]
fn a_changed_payload_signature_or_key_does_not_verify() {
    let (private, public) = generate_keypair().unwrap();
    let (_, other) = generate_keypair().unwrap();
    let sig = sign(&private, b"revision 7").unwrap();
    assert!(!verify(&public, b"revision 8", &sig));
    assert!(!verify(&public, b"revision 7 ", &sig));
    let mut bad = sig;
    bad[10] ^= 1;
    assert!(!verify(&public, b"revision 7", &bad));
    assert!(!verify(&public, b"revision 7", &sig[..63]));
    assert!(!verify(&other, b"revision 7", &sig));
}

#[test]
fn key_files_round_trip_through_their_pem_text() {
    let (private, public) = generate_keypair().unwrap();
    let public = PublicKey(public);
    let key_text = encode_private_key_file(&private);
    assert!(key_text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(key_text.ends_with("-----END PRIVATE KEY-----\n"));
    assert!(key_text.lines().all(|l| l.len() <= 64));
    assert_eq!(parse_private_key_file(&key_text, "k").unwrap(), private);
    let pub_text = encode_public_key_file(&public);
    assert!(pub_text.starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"));
    assert_eq!(parse_public_key_file(&pub_text, "p").unwrap(), public);
}

#[test]
fn openssl_keys_and_signatures_are_understood() {
    let der = parse_private_key_file(OPENSSL_KEY, "openssl.key").unwrap();
    let public = parse_public_key_file(OPENSSL_PUB, "openssl.pub").unwrap();
    assert_eq!(SigningKey::from_pkcs8(&der).unwrap().public_key(), public);
    let sig = base64::decode(OPENSSL_SIG).unwrap();
    assert!(public.verify(b"hello picolet", &sig));
    // ed25519 is deterministic: we make the same signature.
    assert_eq!(sign(&der, b"hello picolet").unwrap().to_vec(), sig);
}

#[test]
fn a_bare_base64_public_key_with_comments_is_read() {
    let public = parse_public_key_file(OPENSSL_PUB, "p").unwrap();
    let text = format!("# fleet key of acme\n\n{}\n", base64::encode(&public.0));
    assert_eq!(parse_public_key_file(&text, "p").unwrap(), public);
}

#[test]
fn malformed_key_files_are_refused_with_the_file_named() {
    let cases = [
        ("", "k: the file holds no key"),
        (
            "-----BEGIN PRIVATE KEY-----\nMC4C\n",
            "k: no \"-----END PRIVATE KEY-----\" line",
        ),
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
            "k: encrypted private keys are not supported",
        ),
        ("not base64!", "k: base64 length 11 is not a multiple of 4"),
    ];
    for (text, want) in cases {
        let err = parse_private_key_file(text, "k").unwrap_err();
        assert_eq!(err.to_string(), want);
    }
    let err = parse_private_key_file(OPENSSL_PUB, "k").unwrap_err();
    assert!(
        err.to_string().contains("\"PUBLIC KEY\" PEM block"),
        "{err}"
    );
    let err = parse_public_key_file(OPENSSL_KEY, "p").unwrap_err();
    assert!(
        err.to_string().contains("\"PRIVATE KEY\" PEM block"),
        "{err}"
    );
    let err = parse_public_key_file("AAAA", "p").unwrap_err();
    assert!(err.to_string().contains("is 32 bytes"), "{err}");
    let garbage = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::encode(b"garbage!")
    );
    let err = parse_private_key_file(&garbage, "k").unwrap_err();
    assert!(
        err.to_string().starts_with("k: not an ed25519 PKCS#8 key"),
        "{err}"
    );
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_can_read_and_a_matching_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let files = keygen(&dir.path().join("acme")).unwrap();
    assert_eq!(files.private_path, dir.path().join("acme.key"));
    assert_eq!(files.public_path, dir.path().join("acme.pub"));
    let mode = std::fs::metadata(&files.private_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let private = read_private_key(&files.private_path).unwrap();
    let public = read_public_key(&files.public_path).unwrap();
    assert_eq!(public, files.public);
    assert!(public.verify(b"x", &sign(&private, b"x").unwrap()));
    assert_eq!(public.key_id().len(), 16);
}

#[test]
fn keygen_into_a_directory_uses_the_default_name_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let first = keygen(dir.path()).unwrap();
    assert_eq!(first.private_path, dir.path().join("fleet.key"));
    let before = std::fs::read(&first.private_path).unwrap();
    let err = keygen(dir.path()).unwrap_err();
    assert!(
        matches!(err, SignError::Exists(ref p) if *p == first.private_path),
        "{err}"
    );
    assert_eq!(std::fs::read(&first.private_path).unwrap(), before);
    // A lone public key also blocks, and no private key is left behind.
    std::fs::write(dir.path().join("other.pub"), "x").unwrap();
    assert!(matches!(
        keygen(&dir.path().join("other")),
        Err(SignError::Exists(_))
    ));
    assert!(!dir.path().join("other.key").exists());
}

#[test]
fn key_ids_differ_between_keys_and_are_stable() {
    let a = parse_public_key_file(OPENSSL_PUB, "p").unwrap();
    let (_, b) = generate_keypair().unwrap();
    assert_eq!(a.key_id(), a.key_id());
    assert_ne!(a.key_id(), PublicKey(b).key_id());
    assert!(a.key_id().bytes().all(|c| c.is_ascii_hexdigit()));
}

/// Key files written by `keygen` before the `base64` crate and
/// `pki_types::pem` replaced the hand-written code (`fixtures/`; a test key,
/// nothing signs with it): they still load, and writing the same key again
/// gives the same bytes.
#[test]
fn key_files_written_by_older_versions_load_and_are_rewritten_byte_for_byte() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fleet/sign/fixtures");
    let key_text = std::fs::read_to_string(dir.join("fleet.key")).unwrap();
    let pub_text = std::fs::read_to_string(dir.join("fleet.pub")).unwrap();
    let private = read_private_key(&dir.join("fleet.key")).unwrap();
    let public = read_public_key(&dir.join("fleet.pub")).unwrap();
    assert_eq!(
        SigningKey::from_pkcs8(&private).unwrap().public_key(),
        public
    );
    assert_eq!(public.key_id(), "ca35a2593507c120");
    assert_eq!(encode_private_key_file(&private), key_text);
    assert_eq!(encode_public_key_file(&public), pub_text);
}

#[test]
fn a_pem_body_is_read_across_comments_and_blank_lines_and_its_bad_base64_is_located() {
    let commented = OPENSSL_KEY.replace(
        "-----BEGIN PRIVATE KEY-----\n",
        "# made by openssl\n-----BEGIN PRIVATE KEY-----\n\n  # seed follows\n",
    );
    assert_eq!(
        parse_private_key_file(&commented, "k").unwrap(),
        parse_private_key_file(OPENSSL_KEY, "k").unwrap()
    );
    let bad = OPENSSL_KEY.replace("MC4CAQAw", "MC4C*QAw");
    assert_eq!(
        parse_private_key_file(&bad, "k").unwrap_err().to_string(),
        "k: invalid base64 character '*' at offset 4"
    );
    let bad = OPENSSL_PUB.replace("MCowBQYD", "MCow\u{e9}QYD");
    let err = parse_public_key_file(&bad, "p").unwrap_err().to_string();
    assert!(err.starts_with("p: "), "{err}");
    assert!(err.contains("base64"), "{err}");
    let after = format!("{OPENSSL_PUB}MCow\n");
    assert_eq!(
        parse_public_key_file(&after, "p").unwrap_err().to_string(),
        "p: text after \"-----END PUBLIC KEY-----\""
    );
}
