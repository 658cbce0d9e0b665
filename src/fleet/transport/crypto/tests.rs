//! The provider against ring's: the same lists, P-256 signatures and key
//! shares that ring accepts and makes, and whole handshakes (in memory)
//! of the production client configuration with a rustls server on ring's
//! default provider: TLS 1.2 and 1.3, a P-256 chain, a secp256r1-only
//! server, and client keys of each kind (P-256, RSA, P-384, Ed25519;
//! PKCS#8, PKCS#1 and SEC1) that the server verifies.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use ring::signature::KeyPair as _;
use rustls::crypto::ring as ring_provider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::{
    ClientConnection, NamedGroup, ProtocolVersion, RootCertStore, ServerConfig, ServerConnection,
    SupportedProtocolVersion,
};

use super::*;
use crate::fleet::test_broker::{Pki, openssl};
use crate::fleet::transport::{TlsSettings, TransportError, tls};

#[test]
fn the_lists_are_rings_default_ones_in_the_same_order() {
    let ours = provider();
    let ring = ring_provider::default_provider();
    let suites = |p: &CryptoProvider| {
        p.cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect::<Vec<_>>()
    };
    assert_eq!(suites(&ours), suites(&ring));
    let groups = |p: &CryptoProvider| p.kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>();
    assert_eq!(groups(&ours), groups(&ring));
    assert_eq!(format!("{:?}", ours.kx_groups[1]), "P256Group");

    let ids =
        |a: &&dyn SignatureVerificationAlgorithm| (a.public_key_alg_id(), a.signature_alg_id());
    let (o, r) = (
        &ours.signature_verification_algorithms,
        &ring.signature_verification_algorithms,
    );
    let all = |s: &WebPkiSupportedAlgorithms| s.all.iter().map(ids).collect::<Vec<_>>();
    assert_eq!(all(o), all(r));
    assert_eq!(o.mapping.len(), r.mapping.len());
    for (ours, ring) in o.mapping.iter().zip(r.mapping) {
        assert_eq!(ours.0, ring.0);
        let ours_ids: Vec<_> = ours.1.iter().map(ids).collect();
        let ring_ids: Vec<_> = ring.1.iter().map(ids).collect();
        assert_eq!(ours_ids, ring_ids, "{:?}", ours.0);
    }
    // Exactly the P-256 ones are ours.
    let mine: Vec<_> = o
        .all
        .iter()
        .filter(|a| format!("{a:?}").starts_with("EcdsaP256"))
        .map(ids)
        .collect();
    assert_eq!(
        mine,
        [
            (alg_id::ECDSA_P256, alg_id::ECDSA_SHA256),
            (alg_id::ECDSA_P256, alg_id::ECDSA_SHA384)
        ]
    );
}

fn p256_public(key: &p256::ecdsa::SigningKey) -> Vec<u8> {
    key.verifying_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec()
}

#[test]
fn p256_signatures_ring_accepts_verify_and_forgeries_do_not() {
    use p256::ecdsa::signature::hazmat::PrehashSigner as _;
    let rng = ring::rand::SystemRandom::new();
    let msg = b"the server's handshake transcript";
    // SHA-256: ring signs. SHA-384: ring has no P-256 signer for it, so
    // p256 signs the digest and ring checks that signature first.
    let alg = &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING;
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let ring_key = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let sha256 = (
        ECDSA_P256_SHA256,
        ring_key.public_key().as_ref().to_vec(),
        ring_key.sign(&rng, msg).unwrap().as_ref().to_vec(),
    );
    let key = p256::ecdsa::SigningKey::from(random_secret().unwrap());
    let signature: p256::ecdsa::Signature = key.sign_prehash(&sha2::Sha384::digest(msg)).unwrap();
    let sha384 = (
        ECDSA_P256_SHA384,
        p256_public(&key),
        signature.to_der().as_bytes().to_vec(),
    );
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA384_ASN1, &sha384.1)
        .verify(msg, &sha384.2)
        .unwrap();
    let other = p256_public(&p256::ecdsa::SigningKey::from(random_secret().unwrap()));

    for (ours, public, sig) in [&sha256, &sha384] {
        ours.verify_signature(public, msg, sig).unwrap();
        assert!(
            ours.verify_signature(public, b"another message", sig)
                .is_err()
        );
        let mut bad = sig.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(ours.verify_signature(public, msg, &bad).is_err());
        assert!(ours.verify_signature(&other, msg, sig).is_err());
        // A compressed point, a truncated signature, garbage.
        let compressed = [&[0x02 | (public[64] & 1)][..], &public[1..33]].concat();
        assert!(ours.verify_signature(&compressed, msg, sig).is_err());
        assert!(
            ours.verify_signature(public, msg, &sig[..sig.len() - 1])
                .is_err()
        );
        assert!(ours.verify_signature(b"\x04junk", msg, sig).is_err());
    }
    // Each digest's verifier refuses the other digest's signature.
    assert!(
        ECDSA_P256_SHA256
            .verify_signature(&sha384.1, msg, &sha384.2)
            .is_err()
    );
    assert!(
        ECDSA_P256_SHA384
            .verify_signature(&sha256.1, msg, &sha256.2)
            .is_err()
    );
}

#[test]
fn p256_client_key_signatures_verify_with_ring() {
    let rng = ring::rand::SystemRandom::new();
    let alg = &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING;
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec()));
    let key = Keys.load_private_key(der).unwrap();
    assert!(format!("{key:?}").starts_with("P256Key"), "{key:?}");
    assert!(
        key.choose_scheme(&[SignatureScheme::ECDSA_NISTP384_SHA384])
            .is_none()
    );
    let signer = key
        .choose_scheme(&[
            SignatureScheme::ED25519,
            SignatureScheme::ECDSA_NISTP256_SHA256,
        ])
        .unwrap();
    assert_eq!(signer.scheme(), SignatureScheme::ECDSA_NISTP256_SHA256);
    let msg = b"the client's handshake transcript";
    let sig = signer.sign(msg).unwrap();
    let public = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng)
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    let ring_verify =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, &public);
    ring_verify.verify(msg, &sig).unwrap();
    assert!(ring_verify.verify(b"other", &sig).is_err());
    // The SPKI it reports is the key's.
    let spki = key.public_key().unwrap();
    assert!(spki.as_ref().ends_with(&public), "{spki:?}");
}

#[test]
fn p256_key_shares_agree_with_rings_and_bad_shares_are_refused() {
    let ring_kx = ring_provider::kx_group::SECP256R1;
    for _ in 0..4 {
        let ours = SECP256R1.start().unwrap();
        let theirs = ring_kx.start().unwrap();
        assert_eq!(ours.group(), NamedGroup::secp256r1);
        assert_eq!(ours.pub_key().len(), 65);
        let (our_pub, their_pub) = (ours.pub_key().to_vec(), theirs.pub_key().to_vec());
        let a = ours.complete(&their_pub).unwrap();
        let b = theirs.complete(&our_pub).unwrap();
        assert_eq!(a.secret_bytes(), b.secret_bytes());
        assert_eq!(a.secret_bytes().len(), 32);
    }
    let peer = ring_kx.start().unwrap().pub_key().to_vec();
    let mut off_curve = peer.clone();
    off_curve[64] ^= 1;
    let compressed = [&[0x02 | (peer[64] & 1)][..], &peer[1..33]].concat();
    let mut zeros = vec![0u8; 65];
    zeros[0] = 4;
    for bad in [
        &off_curve[..],
        &compressed,
        &zeros,
        &peer[..64],
        &[0u8][..],
        &[],
    ] {
        match SECP256R1.start().unwrap().complete(bad) {
            Err(e) => assert_eq!(e, Error::from(PeerMisbehaved::InvalidKeyShare), "{bad:?}"),
            Ok(_) => panic!("{bad:?} was accepted"),
        }
    }
}

/// Runs `openssl ARGS` in `dir`.
fn run_openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(openssl().unwrap())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The test PKI (P-256) plus client certificates from `ca` with RSA,
/// P-384 and Ed25519 keys (PKCS#8), and SEC1/PKCS#1 copies of the keys.
fn pki(dir: &Path) -> Option<Pki> {
    let pki = Pki::generate(dir)?;
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, key) in [
        ("client-rsa", &["-newkey", "rsa:2048"][..]),
        (
            "client-p384",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1"],
        ),
        ("client-ed25519", &["-newkey", "ed25519"]),
    ] {
        let (k, csr, c) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let mut args = vec!["req", "-nodes", "-subj", "/CN=picolet test client"];
        args.extend(key);
        args.extend(["-keyout", &k, "-out", &csr]);
        run_openssl(dir, &args);
        run_openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &c,
                "-days",
                "2",
                "-extfile",
                "client.ext",
            ],
        );
    }
    for ec in ["client", "client-p384"] {
        let (i, o) = (format!("{ec}.key"), format!("{ec}-sec1.key"));
        run_openssl(dir, &["ec", "-in", &i, "-out", &o]);
    }
    run_openssl(
        dir,
        &[
            "rsa",
            "-in",
            "client-rsa.key",
            "-traditional",
            "-out",
            "client-rsa-pkcs1.key",
        ],
    );
    Some(pki)
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A server on ring's default provider (its own P-256), with `versions`,
/// `groups` (ring's), the `server` certificate, and client certificates
/// from `ca` required when `mtls`.
fn server(
    pki: &Pki,
    versions: &[&'static SupportedProtocolVersion],
    groups: Option<&[&'static dyn SupportedKxGroup]>,
    mtls: bool,
) -> Arc<ServerConfig> {
    let mut provider = ring_provider::default_provider();
    if let Some(g) = groups {
        provider.kx_groups = g.to_vec();
    }
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap();
    let builder = if mtls {
        let mut roots = RootCertStore::empty();
        roots.add(certs(&pki.path("ca.crt")).remove(0)).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let key = PrivateKeyDer::from_pem_file(pki.path("server.key")).unwrap();
    Arc::new(
        builder
            .with_single_cert(certs(&pki.path("server.crt")), key)
            .unwrap(),
    )
}

/// The production client configuration for the PKI's CA, with the
/// client certificate and key `client` (`(cert, key)` file names).
fn client(pki: &Pki, client: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    tls::client_config(&TlsSettings {
        ca_file: Some(pki.path("ca.crt")),
        client_cert: client.map(|(c, _)| pki.path(c)),
        client_key: client.map(|(_, k)| pki.path(k)),
    })
    .unwrap()
}

/// Moves every pending TLS record from `from` to `to` and lets `to`
/// process them.
fn pump<A, B>(
    from: &mut rustls::ConnectionCommon<A>,
    to: &mut rustls::ConnectionCommon<B>,
) -> Result<bool, rustls::Error> {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut rest = &buf[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
        to.process_new_packets()?;
    }
    Ok(!buf.is_empty())
}

/// A whole handshake in memory, then a message each way. The error is
/// the side's that failed (`client: …`/`server: …`).
fn handshake(
    client: Arc<rustls::ClientConfig>,
    server: Arc<ServerConfig>,
) -> Result<(ClientConnection, ServerConnection), String> {
    use std::io::{Read, Write};
    let mut c = ClientConnection::new(client, "localhost".try_into().unwrap()).unwrap();
    let mut s = ServerConnection::new(server).unwrap();
    c.writer().write_all(b"ping").unwrap();
    for _ in 0..10 {
        let sent = pump(&mut *c, &mut *s).map_err(|e| format!("server: {e}"))?;
        let answered = pump(&mut *s, &mut *c).map_err(|e| format!("client: {e}"))?;
        if !sent && !answered {
            break;
        }
    }
    assert!(!c.is_handshaking() && !s.is_handshaking());
    let mut got = [0; 4];
    s.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    s.writer().write_all(b"pong").unwrap();
    pump(&mut *s, &mut *c).unwrap();
    c.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"pong");
    Ok((c, s))
}

const VERSIONS: [(&SupportedProtocolVersion, ProtocolVersion); 2] = [
    (&TLS12, ProtocolVersion::TLSv1_2),
    (&TLS13, ProtocolVersion::TLSv1_3),
];

#[test]
fn a_p256_server_chain_is_verified_and_another_ca_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pki) = pki(dir.path()) else { return };
    for (version, name) in VERSIONS {
        let (c, s) = handshake(client(&pki, None), server(&pki, &[version], None, false)).unwrap();
        assert_eq!(c.protocol_version(), Some(name));
        // The server's key is P-256: its handshake signature is ECDSA.
        let suite = format!("{:?}", c.negotiated_cipher_suite().unwrap().suite());
        if name == ProtocolVersion::TLSv1_2 {
            assert!(suite.contains("ECDSA"), "{suite}");
        }
        assert!(s.peer_certificates().is_none());

        let other = tls::client_config(&TlsSettings {
            ca_file: Some(pki.path("other-ca.crt")),
            ..TlsSettings::default()
        })
        .unwrap();
        let e = handshake(other, server(&pki, &[version], None, false)).unwrap_err();
        assert!(e.starts_with("client: invalid peer certificate"), "{e}");
    }
}

#[test]
fn a_secp256r1_only_server_negotiates_secp256r1() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pki) = pki(dir.path()) else { return };
    let only = [ring_provider::kx_group::SECP256R1];
    for (version, name) in VERSIONS {
        let (c, s) = handshake(
            client(&pki, None),
            server(&pki, &[version], Some(&only), false),
        )
        .unwrap();
        assert_eq!(c.protocol_version(), Some(name));
        let group = |g: Option<&'static dyn SupportedKxGroup>| g.unwrap().name();
        assert_eq!(
            group(c.negotiated_key_exchange_group()),
            NamedGroup::secp256r1
        );
        assert_eq!(
            group(s.negotiated_key_exchange_group()),
            NamedGroup::secp256r1
        );
    }
    // X25519 is still the first choice.
    let (c, _) = handshake(client(&pki, None), server(&pki, &[&TLS13], None, false)).unwrap();
    assert_eq!(
        c.negotiated_key_exchange_group().unwrap().name(),
        NamedGroup::X25519
    );
}

#[test]
fn client_keys_of_every_kind_sign_for_an_mtls_server() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pki) = pki(dir.path()) else { return };
    let keys = [
        ("client.crt", "client.key"),
        ("client.crt", "client-sec1.key"),
        ("client-rsa.crt", "client-rsa.key"),
        ("client-rsa.crt", "client-rsa-pkcs1.key"),
        ("client-p384.crt", "client-p384.key"),
        ("client-p384.crt", "client-p384-sec1.key"),
        ("client-ed25519.crt", "client-ed25519.key"),
    ];
    let pem_label = |k: &str| {
        let text = std::fs::read_to_string(pki.path(k)).unwrap();
        text.lines().next().unwrap().to_string()
    };
    assert_eq!(
        pem_label("client-sec1.key"),
        "-----BEGIN EC PRIVATE KEY-----"
    );
    assert_eq!(
        pem_label("client-rsa-pkcs1.key"),
        "-----BEGIN RSA PRIVATE KEY-----"
    );
    for (cert, key) in keys {
        for (version, name) in VERSIONS {
            let (c, s) = handshake(
                client(&pki, Some((cert, key))),
                server(&pki, &[version], None, true),
            )
            .unwrap_or_else(|e| panic!("{key} {name:?}: {e}"));
            assert_eq!(c.protocol_version(), Some(name));
            let got = s
                .peer_certificates()
                .expect("the server saw a client certificate");
            assert_eq!(got[0], certs(&pki.path(cert))[0], "{key}");
        }
    }
    // Without a certificate the server refuses.
    let e = handshake(client(&pki, None), server(&pki, &[&TLS13], None, true)).unwrap_err();
    assert!(e.starts_with("server:"), "{e}");
}

#[test]
fn a_key_that_is_not_the_certificates_or_not_a_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pki) = pki(dir.path()) else { return };
    for (cert, key) in [
        ("client.crt", "client-p384.key"),
        ("client.crt", "server.key"),
        ("client-p384.crt", "client-p384-sec1.key"),
    ] {
        let r = tls::client_config(&TlsSettings {
            ca_file: Some(pki.path("ca.crt")),
            client_cert: Some(pki.path(cert)),
            client_key: Some(pki.path(key)),
        });
        let matching = cert == "client-p384.crt";
        match r {
            Ok(_) => assert!(matching, "{cert} with {key} was accepted"),
            Err(TransportError::Config(e)) => {
                assert!(!matching, "{cert} {key}: {e}");
                assert_eq!(
                    e.to_string(),
                    "keys may not be consistent: KeyMismatch",
                    "{cert} {key}"
                );
            }
            Err(e) => panic!("{cert} {key}: {e}"),
        }
    }
    let junk = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]));
    let e = Keys.load_private_key(junk).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unexpected error: failed to parse private key as RSA, ECDSA, or EdDSA"
    );
}
