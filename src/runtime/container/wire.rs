//! The record a failed child writes to the error pipe before `_exit`:
//! one tag byte, the errno as 4 little-endian bytes, then UTF-8 text
//! (the step or the program name).

use super::ContainerError;

/// Longest record the parent reads.
pub(crate) const MAX_LEN: usize = 8192;

const SETUP: u8 = 1;
const NOT_FOUND: u8 = 2;
const EXEC: u8 = 3;

/// A record, on the stack: the post-clone child must not allocate for it
/// (crun's rule: the child may be a copy of a process whose allocator lock
/// was held by another thread at `clone` time).
pub(crate) type Record = heapless::Vec<u8, MAX_LEN>;

/// Appends UTF-8 text up to the record's capacity, cutting at a character
/// boundary; never fails and never allocates.
struct Truncating<'a>(&'a mut Record);

impl std::fmt::Write for Truncating<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = self.0.capacity() - self.0.len();
        let mut end = s.len().min(room);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        // Cannot fail: `end` bytes fit.
        let _ = self.0.extend_from_slice(&s.as_bytes()[..end]);
        Ok(())
    }
}

pub(crate) fn encode(e: &ContainerError) -> Record {
    use std::fmt::Write as _;
    let (tag, errno, text): (u8, i32, &dyn std::fmt::Display) = match e {
        ContainerError::Setup { step, errno } => (SETUP, *errno, step),
        ContainerError::NotFound { program } => (NOT_FOUND, 0, program),
        ContainerError::Exec { program, errno } => (EXEC, *errno, program),
        other => (SETUP, 0, other),
    };
    let mut out = Record::new();
    // Five bytes always fit in MAX_LEN.
    let _ = out.push(tag);
    let _ = out.extend_from_slice(&errno.to_le_bytes());
    let _ = write!(Truncating(&mut out), "{text}");
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
    fn a_long_step_is_cut_at_a_character_boundary_within_the_record() {
        let step = format!("mount {}", "ä".repeat(MAX_LEN));
        let rec = encode(&ContainerError::setup(step.clone(), libc::EPERM));
        assert!(rec.len() <= MAX_LEN && rec.len() >= MAX_LEN - 1);
        let ContainerError::Setup { step: back, errno } = decode(&rec).unwrap() else {
            panic!("not a setup error");
        };
        assert_eq!(errno, libc::EPERM);
        assert!(step.starts_with(&back) && back.len() == rec.len() - 5);
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
