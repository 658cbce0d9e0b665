//! The record a failed child writes to the error pipe before `_exit`:
//! one tag byte, the errno as 4 little-endian bytes, then UTF-8 text
//! (the step or the program name).

use super::ContainerError;

/// Longest record the parent reads.
pub(crate) const MAX_LEN: usize = 8192;

const SETUP: u8 = 1;
const NOT_FOUND: u8 = 2;
const EXEC: u8 = 3;

pub(crate) fn encode(e: &ContainerError) -> Vec<u8> {
    let (tag, errno, text) = match e {
        ContainerError::Setup { step, errno } => (SETUP, *errno, step.clone()),
        ContainerError::NotFound { program } => (NOT_FOUND, 0, program.clone()),
        ContainerError::Exec { program, errno } => (EXEC, *errno, program.clone()),
        other => (SETUP, 0, other.to_string()),
    };
    let mut out = Vec::with_capacity(5 + text.len());
    out.push(tag);
    out.extend_from_slice(&errno.to_le_bytes());
    let mut end = text.len().min(MAX_LEN - 5);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&text.as_bytes()[..end]);
    out
}

/// `None` for a record too short to hold a tag and an errno.
pub(crate) fn decode(buf: &[u8]) -> Option<ContainerError> {
    if buf.len() < 5 {
        return None;
    }
    let errno = i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let text = String::from_utf8_lossy(&buf[5..]).into_owned();
    Some(match buf[0] {
        NOT_FOUND => ContainerError::NotFound { program: text },
        EXEC => ContainerError::Exec {
            program: text,
            errno,
        },
        _ => ContainerError::Setup { step: text, errno },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_record_round_trips_each_child_error_and_keeps_its_reason() {
        let cases = [
            ContainerError::setup("mount proc on \"/r/proc\"", libc::EPERM),
            ContainerError::NotFound {
                program: "nope".into(),
            },
            ContainerError::Exec {
                program: "/bin/x".into(),
                errno: libc::EACCES,
            },
        ];
        for e in cases {
            let back = decode(&encode(&e)).unwrap();
            assert_eq!(back.to_string(), e.to_string());
            assert_eq!(back.reason(), e.reason());
        }
        let other = ContainerError::UnknownCapability { name: "FOO".into() };
        let back = decode(&encode(&other)).unwrap();
        assert_eq!(back.to_string(), "unknown capability \"FOO\"");
        assert_eq!(back.reason(), "CreateContainerError");
        assert!(decode(&[1, 0]).is_none());
    }

    #[test]
    fn missing_executable_message_matches_containerd() {
        let e = ContainerError::NotFound {
            program: "foo".into(),
        };
        assert_eq!(
            e.to_string(),
            "exec: \"foo\": executable file not found in $PATH"
        );
        assert_eq!(e.reason(), "StartError");
        let e = ContainerError::Exec {
            program: "/x".into(),
            errno: libc::ENOENT,
        };
        assert_eq!(e.to_string(), "exec: \"/x\": no such file or directory");
    }
}
