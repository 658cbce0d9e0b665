//! Text files the binary carries — the board files (`boards/*.toml`), the
//! systemd units, the default `config.yaml` and the commands' `--help`
//! texts (`src/cli/help/*.txt`) — deflated at build time by `build.rs` and
//! inflated when used. They are read by short-lived commands (`check`,
//! `install`, `pull`, `--help`) and once by the agent at start (its board's
//! node labels), so the few microseconds of inflating do not matter, and
//! the binary is smaller by about two thirds of their text
//! (docs/design-deviations.md §12).

use flate2::{Decompress, FlushDecompress};

/// Files deflated together as one raw deflate stream (they share one
/// dictionary, so a small file costs little).
#[derive(Debug)]
pub struct Bundle {
    deflated: &'static [u8],
    /// The length of the inflated text.
    len: usize,
    /// (name, offset, length) of each file in the inflated text, in the
    /// order `build.rs` lists them.
    files: &'static [(&'static str, usize, usize)],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// A bundle, inflated.
#[derive(Debug)]
pub struct Files {
    text: String,
    files: &'static [(&'static str, usize, usize)],
}

impl Bundle {
    /// The names of its files, without inflating.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        self.files.iter().map(|(name, _, _)| *name)
    }

    /// Inflates the bundle.
    pub fn open(&self) -> Files {
        let mut out = Vec::with_capacity(self.len);
        let status =
            Decompress::new(false).decompress_vec(self.deflated, &mut out, FlushDecompress::Finish);
        // build.rs wrote both the stream and its length: anything else is
        // a corrupt binary.
        assert!(
            matches!(status, Ok(flate2::Status::StreamEnd)) && out.len() == self.len,
            "embedded text files inflate"
        );
        Files {
            text: String::from_utf8(out).expect("build.rs checked the files are UTF-8"),
            files: self.files,
        }
    }

    /// One file, inflated; `None` when the bundle has no such file.
    pub fn file(&self, name: &str) -> Option<String> {
        self.open().get(name).map(str::to_string)
    }
}

impl Files {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, t)| t)
    }

    /// (name, text) of every file, in the bundle's order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.files
            .iter()
            .map(|&(name, at, len)| (name, &self.text[at..at + len]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file inflates to the bytes of its source file.
    #[test]
    fn every_bundled_file_inflates_to_its_source() {
        let root = env!("CARGO_MANIFEST_DIR");
        for (bundle, dir) in [(&BOARDS, "boards"), (&INSTALL, ""), (&HELP, "help")] {
            let files = bundle.open();
            assert_eq!(files.iter().count(), bundle.names().count());
            for (name, text) in files.iter() {
                let path = match (dir, name) {
                    ("boards", n) => format!("{root}/boards/{n}.toml"),
                    ("help", n) => format!("{root}/src/cli/help/{n}.txt"),
                    (_, "config.yaml") => format!("{root}/src/install/config.yaml"),
                    (_, n) => format!("{root}/systemd/{n}"),
                };
                assert_eq!(text, std::fs::read_to_string(&path).unwrap(), "{path}");
            }
            // Deflated to well under half (the binary's saving).
            assert!(bundle.deflated.len() * 2 < bundle.len, "{}", bundle.len);
        }
        // Every help file, none forgotten.
        let help = std::fs::read_dir(format!("{root}/src/cli/help")).unwrap();
        assert_eq!(help.count(), HELP.names().count());
        assert!(
            BOARDS
                .file("raspberry-pi-4")
                .unwrap()
                .contains("Raspberry Pi 4")
        );
        assert_eq!(BOARDS.file("pi9"), None);
    }
}
