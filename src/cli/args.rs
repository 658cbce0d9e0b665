//! The one command-line parser of every `picolet` command: the agent's,
//! the local commands' and the fleet controller's (all on `lexopt`).
//!
//! A command declares its options in a [`Spec`]: which take a value, which
//! are bare flags. Long and one-letter names are both written without
//! dashes (`"namespace"`, `"n"`); `--name VALUE`, `--name=VALUE`, `-n VALUE`
//! and `-nVALUE` all work, options and free arguments mix in any order, and
//! everything after `--` is free. An option the spec does not name is
//! refused with its name: `unknown option --frobnicate; see `picolet --help``.
//!
//! Help: `--help` or `-h` anywhere before `--` asks for the command's help
//! ([`help_requested`]), whatever the command's options are (`-h` included,
//! which no command takes otherwise). [`Args::parse`] looks for it before
//! anything else and answers [`HELP_REQUESTED`], so a command never parses
//! a line that asks for help; `main.rs` looks first and prints the
//! command's `HELP` text ([`crate::cli::help`]).

use std::ffi::OsString;

/// The options one command takes.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    /// Options followed by a value.
    pub valued: &'a [&'a str],
    /// Options without a value.
    pub flags: &'a [&'a str],
}

/// A parsed command line: free arguments and named options in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// Free arguments, those after `--` included, in order.
    pub free: Vec<String>,
    /// (name, value) in order; flags have no value.
    pub opts: Vec<(String, Option<String>)>,
}

/// The error [`Args::parse`] returns for a command line that asks for help
/// (the dispatcher prints the command's help instead; see the module doc).
pub const HELP_REQUESTED: &str = "help requested (--help): see `picolet help COMMAND`";

/// Whether `args` ask for help: `--help` or `-h` before any `--`.
pub fn help_requested(args: &[OsString]) -> bool {
    args.iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--help" || a == "-h")
}

impl Args {
    /// Parses `args` (without the command's name) by `spec`; a line that
    /// asks for help ([`help_requested`]) is answered [`HELP_REQUESTED`]
    /// before anything else is looked at.
    pub fn parse(args: Vec<OsString>, spec: &Spec<'_>) -> Result<Args, String> {
        use lexopt::prelude::*;
        if help_requested(&args) {
            return Err(HELP_REQUESTED.to_string());
        }
        let mut p = lexopt::Parser::from_args(args);
        let e = |e: lexopt::Error| e.to_string();
        let mut out = Args::default();
        while let Some(arg) = p.next().map_err(e)? {
            let (name, shown) = match arg {
                Value(v) => {
                    out.free.push(v.string().map_err(e)?);
                    continue;
                }
                Long(n) => (n.to_string(), format!("--{n}")),
                Short(c) => (c.to_string(), format!("-{c}")),
            };
            if spec.flags.contains(&name.as_str()) {
                out.opts.push((name, None));
            } else if spec.valued.contains(&name.as_str()) {
                let v = p.value().map_err(e)?.string().map_err(e)?;
                out.opts.push((name, Some(v)));
            } else {
                return Err(format!("unknown option {shown}; see `picolet --help`"));
            }
        }
        Ok(out)
    }

    /// Every value given to any of `names`, in order.
    pub fn all(&self, names: &[&str]) -> Vec<&str> {
        self.opts
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }

    /// The last value given to any of `names`.
    pub fn one(&self, names: &[&str]) -> Option<&str> {
        self.all(names).last().copied()
    }

    /// Whether any of `names` was given.
    pub fn has(&self, names: &[&str]) -> bool {
        self.opts.iter().any(|(n, _)| names.contains(&n.as_str()))
    }

    /// Refuses free arguments (for commands that take none).
    pub fn no_free(&self) -> Result<(), String> {
        match self.free.first() {
            Some(f) => Err(format!("unexpected argument {f:?}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec<'static> = Spec {
        valued: &["n", "namespace", "c", "state-dir"],
        flags: &["f", "follow"],
    };

    fn parse(a: &[&str]) -> Result<Args, String> {
        Args::parse(a.iter().map(OsString::from).collect(), &SPEC)
    }

    #[test]
    fn options_and_free_arguments_mix_and_the_last_value_wins() {
        let a = parse(&["pod", "-n", "a", "--namespace=b", "-f", "-cweb", "x"]).unwrap();
        assert_eq!(a.free, ["pod", "x"]);
        assert_eq!(a.one(&["n", "namespace"]), Some("b"));
        assert_eq!(a.all(&["n", "namespace"]), ["a", "b"]);
        assert_eq!(a.one(&["c"]), Some("web"));
        assert!(a.has(&["f", "follow"]));
        assert!(!a.has(&["state-dir"]));
    }

    #[test]
    fn everything_after_a_double_dash_is_free() {
        let a = parse(&["pod", "-c", "x", "--", "sh", "-c", "--follow"]).unwrap();
        assert_eq!(a.free, ["pod", "sh", "-c", "--follow"]);
        assert_eq!(a.one(&["c"]), Some("x"));
        assert!(!a.has(&["follow"]));
    }

    #[test]
    fn unknown_options_and_missing_values_are_named() {
        assert_eq!(
            parse(&["--frobnicate"]).unwrap_err(),
            "unknown option --frobnicate; see `picolet --help`"
        );
        assert_eq!(
            parse(&["-x"]).unwrap_err(),
            "unknown option -x; see `picolet --help`"
        );
        let e = parse(&["--state-dir"]).unwrap_err();
        assert!(e.contains("--state-dir"), "{e}");
        // A flag given a value.
        assert!(parse(&["--follow=yes"]).is_err());
        assert_eq!(
            parse(&["pod"]).unwrap().no_free().unwrap_err(),
            "unexpected argument \"pod\""
        );
    }

    #[test]
    fn help_is_recognised_before_anything_else_but_not_after_a_double_dash() {
        // `-h` is no option of SPEC, and `--state-dir --help` would
        // otherwise take `--help` as its value.
        for line in [
            &["--help"][..],
            &["-h"],
            &["pod", "--frobnicate", "-h"],
            &["--state-dir", "--help"],
        ] {
            assert_eq!(parse(line).unwrap_err(), HELP_REQUESTED, "{line:?}");
        }
        let a = parse(&["pod", "--", "sh", "-h", "--help"]).unwrap();
        assert_eq!(a.free, ["pod", "sh", "-h", "--help"]);
        assert!(!help_requested(&[OsString::from("-hx")]));
    }
}
