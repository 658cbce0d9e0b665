//! Standard base64 (RFC 4648 §4, `+/` alphabet, `=` padding) for key files
//! and signed envelopes: the `base64` crate's `STANDARD` engine, which
//! refuses whitespace, misplaced padding and non-zero trailing bits (so every
//! byte string has exactly one accepted encoding). This module only words
//! its errors the way picolet always has. Pure.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Encodes `data` with padding.
pub fn encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Decodes canonical padded base64; the error names the offending
/// character and its offset, the length, or the padding.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    if text.len() % 4 != 0 {
        return Err(format!(
            "base64 length {} is not a multiple of 4",
            text.len()
        ));
    }
    STANDARD.decode(text).map_err(|e| match e {
        base64::DecodeError::InvalidByte(_, b'=') | base64::DecodeError::InvalidPadding => {
            "misplaced '=' padding in base64".to_string()
        }
        base64::DecodeError::InvalidByte(offset, byte) => format!(
            "invalid base64 character {:?} at offset {offset}",
            char::from(byte)
        ),
        base64::DecodeError::InvalidLastSymbol(..) => {
            "non-canonical base64 (trailing bits set)".to_string()
        }
        base64::DecodeError::InvalidLength(len) => format!("base64 length {len} is not valid"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_test_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in vectors {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn base64_round_trips_every_byte_value_and_length() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..data.len() {
            assert_eq!(decode(&encode(&data[..len])).unwrap(), &data[..len]);
        }
    }

    #[test]
    fn base64_refuses_bad_length_characters_padding_and_trailing_bits() {
        assert!(decode("Zm9").unwrap_err().contains("multiple of 4"));
        assert!(decode("Zm9v Yg==").is_err());
        assert!(decode("Zm*v").unwrap_err().contains("'*' at offset 2"));
        assert!(decode("Zg==Zm9v").unwrap_err().contains("padding"));
        assert!(decode("Z===").unwrap_err().contains("padding"));
        assert!(decode("Zh==").unwrap_err().contains("non-canonical"));
    }

    #[test]
    fn every_refusal_is_worded_with_what_is_wrong_and_where() {
        let cases = [
            ("Zm9", "base64 length 3 is not a multiple of 4"),
            ("Zm9v Yg=", "invalid base64 character ' ' at offset 4"),
            ("Zm9vYg\n=", "invalid base64 character '\\n' at offset 6"),
            ("Zg==Zm9v", "misplaced '=' padding in base64"),
            ("Zm9=Zm9v", "misplaced '=' padding in base64"),
            ("Z===", "misplaced '=' padding in base64"),
            ("====", "misplaced '=' padding in base64"),
            ("Zh==", "non-canonical base64 (trailing bits set)"),
            ("Zm9=", "non-canonical base64 (trailing bits set)"),
        ];
        for (text, want) in cases {
            assert_eq!(decode(text).unwrap_err(), want, "{text:?}");
        }
    }
}
