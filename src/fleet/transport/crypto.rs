//! The rustls `CryptoProvider` of every TLS client (`mqtts://`, the
//! registry client): ring's, except P-256, which is RustCrypto's `p256`.
//!
//! Why: ring's P-256 code carries a 151,552-byte base-point table
//! (`ecp_nistz256_precomputed`), the largest single symbol of the static
//! binary. Nothing here names ring's P-256 (its key-exchange group, its
//! ECDSA verification algorithms, `any_supported_type`/`any_ecdsa_type`,
//! which try a P-256 signing key first), so the linker drops the table.
//! `p256` (no precomputed tables: the base point is multiplied like any
//! other; about ten times slower than ring, a millisecond or less per
//! operation on a desktop core, for a few handshakes an hour) takes:
//! - the secp256r1 key exchange ([`SECP256R1`]), TLS 1.2 and 1.3;
//! - ECDSA verification with a P-256 key, SHA-256 and SHA-384, as webpki
//!   lists them (certificate chains, the server's handshake signature);
//! - signing with a P-256 client key (mutual TLS), PKCS#8 or SEC1.
//!
//! Everything else is ring's, in ring's default provider's order: the
//! cipher suites, X25519 and secp384r1, the other signature algorithms,
//! random numbers, and RSA, P-384 and Ed25519 client keys. Each list is
//! compared with `rustls::crypto::ring::default_provider()`'s in the tests.

use std::sync::Arc;

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::DecodePrivateKey as _;
use ring::rand::SecureRandom as _;
use rustls::crypto::ring::{DEFAULT_CIPHER_SUITES, kx_group, sign as ring_sign};
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, SharedSecret,
    SupportedKxGroup, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::{
    AlgorithmIdentifier, InvalidSignature, PrivateKeyDer, SignatureVerificationAlgorithm,
    SubjectPublicKeyInfoDer, alg_id,
};
use rustls::sign::{Signer, SigningKey, public_key_to_spki};
use rustls::{Error, NamedGroup, PeerMisbehaved, SignatureAlgorithm, SignatureScheme};
use sha2::Digest as _;
use webpki::ring as webpki_algs;

/// The provider: ring's default one with P-256 replaced (module docs).
pub(crate) fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: DEFAULT_CIPHER_SUITES.to_vec(),
        kx_groups: vec![kx_group::X25519, SECP256R1, kx_group::SECP384R1],
        signature_verification_algorithms: SIGNATURE_ALGORITHMS,
        secure_random: &Ring,
        key_provider: &Keys,
    }
}

/// ring's `SUPPORTED_SIG_ALGS`, same entries and order, with the two
/// P-256 algorithms ours.
static SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        ECDSA_P256_SHA256,
        ECDSA_P256_SHA384,
        webpki_algs::ECDSA_P384_SHA256,
        webpki_algs::ECDSA_P384_SHA384,
        webpki_algs::ED25519,
        webpki_algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        webpki_algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        webpki_algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        webpki_algs::RSA_PKCS1_2048_8192_SHA256,
        webpki_algs::RSA_PKCS1_2048_8192_SHA384,
        webpki_algs::RSA_PKCS1_2048_8192_SHA512,
        webpki_algs::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
        webpki_algs::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
        webpki_algs::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    ],
    mapping: &[
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[webpki_algs::ECDSA_P384_SHA384, ECDSA_P256_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[ECDSA_P256_SHA256, webpki_algs::ECDSA_P384_SHA256],
        ),
        (SignatureScheme::ED25519, &[webpki_algs::ED25519]),
        (
            SignatureScheme::RSA_PSS_SHA512,
            &[webpki_algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA384,
            &[webpki_algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA256,
            &[webpki_algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA512,
            &[webpki_algs::RSA_PKCS1_2048_8192_SHA512],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA384,
            &[webpki_algs::RSA_PKCS1_2048_8192_SHA384],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA256,
            &[webpki_algs::RSA_PKCS1_2048_8192_SHA256],
        ),
    ],
};

/// ECDSA, P-256 key, SHA-256 (webpki's `ECDSA_P256_SHA256`).
static ECDSA_P256_SHA256: &dyn SignatureVerificationAlgorithm = &EcdsaP256 {
    sha384: false,
    signature_alg_id: alg_id::ECDSA_SHA256,
};

/// ECDSA, P-256 key, SHA-384 (webpki's `ECDSA_P256_SHA384`).
static ECDSA_P256_SHA384: &dyn SignatureVerificationAlgorithm = &EcdsaP256 {
    sha384: true,
    signature_alg_id: alg_id::ECDSA_SHA384,
};

#[derive(Debug)]
struct EcdsaP256 {
    sha384: bool,
    signature_alg_id: AlgorithmIdentifier,
}

impl SignatureVerificationAlgorithm for EcdsaP256 {
    /// `public_key` is the certificate's uncompressed point (ring takes
    /// no other form either), `signature` ASN.1 DER `(r, s)`.
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        if public_key.first() != Some(&0x04) {
            return Err(InvalidSignature);
        }
        let key =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature =
            p256::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        // A SHA-384 digest is cut to its leftmost 256 bits (bits2field).
        let verified = if self.sha384 {
            key.verify_prehash(&sha2::Sha384::digest(message), &signature)
        } else {
            key.verify_prehash(&sha2::Sha256::digest(message), &signature)
        };
        verified.map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P256
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.signature_alg_id
    }
}

/// ring's random numbers (`getrandom(2)`), as ring's provider has them.
#[derive(Debug)]
struct Ring;

impl SecureRandom for Ring {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        ring::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| GetRandomFailed)
    }
}

/// secp256r1 ECDHE with `p256`.
static SECP256R1: &dyn SupportedKxGroup = &P256Group;

#[derive(Debug)]
struct P256Group;

impl SupportedKxGroup for P256Group {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let secret = random_secret()?;
        let pub_key = secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        Ok(Box::new(P256Exchange { secret, pub_key }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

/// A uniformly random scalar in [1, n): 32 random bytes, drawn again in
/// the (about 2^-32) case they are 0 or not below the group order.
fn random_secret() -> Result<p256::SecretKey, GetRandomFailed> {
    loop {
        let mut bytes = p256::FieldBytes::default();
        Ring.fill(&mut bytes)?;
        if let Ok(secret) = p256::SecretKey::from_bytes(&bytes) {
            return Ok(secret);
        }
    }
}

/// One handshake's ephemeral key (zeroized on drop by `SecretKey`).
struct P256Exchange {
    secret: p256::SecretKey,
    pub_key: Vec<u8>,
}

impl ActiveKeyExchange for P256Exchange {
    /// The peer's share must be an uncompressed point on the curve (not
    /// the identity): TLS allows no other form.
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        if peer.len() != 65 || peer[0] != 0x04 {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        let peer = p256::PublicKey::from_sec1_bytes(peer)
            .map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
        let shared = p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), peer.as_affine());
        Ok(SharedSecret::from(shared.raw_secret_bytes().as_slice()))
    }

    fn pub_key(&self) -> &[u8] {
        &self.pub_key
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

/// Client keys: RSA (PKCS#1, PKCS#8), P-256 and P-384 (PKCS#8, SEC1),
/// Ed25519 (PKCS#8), tried in ring's provider's order.
#[derive(Debug)]
struct Keys;

impl KeyProvider for Keys {
    fn load_private_key(&self, der: PrivateKeyDer<'static>) -> Result<Arc<dyn SigningKey>, Error> {
        let der = Zeroizing::new(der);
        if let Ok(rsa) = ring_sign::RsaSigningKey::new(&der) {
            return Ok(Arc::new(rsa));
        }
        if let Some(key) = p256_key(&der) {
            return Ok(Arc::new(P256Key(Arc::new(key))));
        }
        if let Some(key) = p384_key(&der) {
            return Ok(Arc::new(P384Key(Arc::new(key))));
        }
        if let PrivateKeyDer::Pkcs8(pkcs8) = &*der {
            if let Ok(ed25519) = ring_sign::any_eddsa_type(pkcs8) {
                return Ok(ed25519);
            }
        }
        Err(Error::General(
            "failed to parse private key as RSA, ECDSA, or EdDSA".into(),
        ))
    }
}

fn p256_key(der: &PrivateKeyDer<'_>) -> Option<p256::ecdsa::SigningKey> {
    let secret = match der {
        PrivateKeyDer::Pkcs8(k) => p256::SecretKey::from_pkcs8_der(k.secret_pkcs8_der()).ok(),
        PrivateKeyDer::Sec1(k) => p256::SecretKey::from_sec1_der(k.secret_sec1_der()).ok(),
        _ => None,
    };
    secret.map(p256::ecdsa::SigningKey::from)
}

/// A P-256 client key: ECDSA_NISTP256_SHA256 only, as ring's provider
/// offers it. Signatures are deterministic (RFC 6979 nonces).
#[derive(Debug)]
struct P256Key(Arc<p256::ecdsa::SigningKey>);

impl SigningKey for P256Key {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(P256Signer(self.0.clone())) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        let point = self.0.verifying_key().to_encoded_point(false);
        Some(public_key_to_spki(&alg_id::ECDSA_P256, point.as_bytes()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

#[derive(Debug)]
struct P256Signer(Arc<p256::ecdsa::SigningKey>);

impl Signer for P256Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let signature: p256::ecdsa::Signature = self.0.sign(message);
        Ok(signature.to_der().as_bytes().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

/// PKCS#8 prefix of a P-384 key (version 0, id-ecPublicKey, secp384r1),
/// to hand a SEC1 key to ring as rustls' ring provider does.
const PKCS8_P384_PREFIX: &[u8] =
    b"\x02\x01\x00\x30\x10\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x05\x2b\x81\x04\x00\x22";

fn p384_key(der: &PrivateKeyDer<'_>) -> Option<ring::signature::EcdsaKeyPair> {
    let alg = &ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING;
    let rng = ring::rand::SystemRandom::new();
    let from_pkcs8 =
        |pkcs8: &[u8]| ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8, &rng).ok();
    match der {
        PrivateKeyDer::Pkcs8(k) => from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Sec1(k) => {
            let sec1 = der_tlv(0x04, k.secret_sec1_der());
            let mut body = Zeroizing::new(Vec::with_capacity(PKCS8_P384_PREFIX.len() + sec1.len()));
            body.extend_from_slice(PKCS8_P384_PREFIX);
            body.extend_from_slice(&sec1);
            from_pkcs8(&der_tlv(0x30, &body))
        }
        _ => None,
    }
}

/// A DER tag-length-value (lengths up to 65,535 bytes), zeroized on drop
/// (it holds a private key).
fn der_tlv(tag: u8, content: &[u8]) -> Zeroizing<Vec<u8>> {
    let len = content.len();
    let mut out = Zeroizing::new(Vec::with_capacity(content.len() + 4));
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// A P-384 client key (ring): ECDSA_NISTP384_SHA384 only.
#[derive(Debug)]
struct P384Key(Arc<ring::signature::EcdsaKeyPair>);

impl SigningKey for P384Key {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP384_SHA384)
            .then(|| Box::new(P384Signer(self.0.clone())) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        use ring::signature::KeyPair as _;
        Some(public_key_to_spki(&alg_id::ECDSA_P384, self.0.public_key()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

#[derive(Debug)]
struct P384Signer(Arc<ring::signature::EcdsaKeyPair>);

impl Signer for P384Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let rng = ring::rand::SystemRandom::new();
        self.0
            .sign(&rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| Error::General("signing failed".into()))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP384_SHA384
    }
}

#[cfg(test)]
mod tests;
