//! Per-command help: `picolet COMMAND --help` (or `-h`, anywhere before
//! `--`; see [`super::args::help_requested`]) and `picolet help COMMAND
//! [SUBCOMMAND]` print the command's help text (`src/cli/help/CMD.txt`,
//! [`text`]) and exit 0. `picolet --help` stays the overview.

use std::process::ExitCode;

/// Every user command, in the order of `picolet --help`.
pub const COMMANDS: &[&str] = &[
    "agent",
    "get",
    "describe",
    "logs",
    "exec",
    "top",
    "image",
    "version",
    "check",
    "install",
    "cgroup-holder",
    "pull",
    "net",
    "apply",
    "delete",
    "rollout",
    "fleet",
    "keygen",
];

/// The help of `cmd`, or of its subcommand when `rest` names one (`image
/// ls`); `None` when `cmd` is no command. The texts are the files of
/// `src/cli/help/`, carried deflated ([`crate::assets::HELP`]), but for
/// the pull helper's, which share their options' lines with its code.
pub fn text(cmd: &str, rest: &[String]) -> Option<String> {
    let sub = rest
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str);
    let file = match (cmd, sub) {
        ("image", Some("import")) => "image-import",
        ("image", Some("ls" | "list")) => "image-ls",
        ("image", Some("rm" | "rmi")) => "image-rm",
        ("image", Some("prune")) => "image-prune",
        ("image", Some("pull")) => return Some(super::pull::IMAGE_PULL_HELP.into()),
        ("pull", _) => return Some(super::pull::HELPER_HELP.into()),
        ("rollout", _)
            if sub == Some("fleet") || crate::controller::rollout::is_fleet_help(rest) =>
        {
            "rollout-fleet"
        }
        _ if COMMANDS.contains(&cmd) => cmd,
        _ => return None,
    };
    crate::assets::HELP.file(file)
}

/// Prints `cmd`'s help (see [`text`]); an error for an unknown command.
#[inline(never)] // own stack frame: see docs/design-deviations.md §13
pub fn print(cmd: &str, rest: &[String]) -> Result<ExitCode, String> {
    let t =
        text(cmd, rest).ok_or_else(|| format!("unknown command {cmd:?}; see `picolet --help`"))?;
    super::ignore_closed_stdout();
    super::out(&t)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_a_usage_and_an_example() {
        for &cmd in COMMANDS {
            let t = text(cmd, &[]).unwrap_or_else(|| panic!("{cmd}: no help"));
            assert!(t.contains("Usage:"), "{cmd}: no Usage:\n{t}");
            assert!(
                t.contains(&format!("picolet {cmd}")),
                "{cmd}: the usage does not name it:\n{t}"
            );
            assert!(t.contains("Example"), "{cmd}: no example:\n{t}");
            let example = t.split("Example").nth(1).unwrap();
            assert!(
                example.contains("picolet") || example.contains("ExecStart"),
                "{cmd}: the example shows no command line:\n{t}"
            );
            assert!(t.ends_with('\n'), "{cmd}");
        }
        for sub in ["import", "ls", "rm", "prune", "pull"] {
            let t = text("image", &[sub.to_string()]).unwrap();
            assert!(t.contains(&format!("picolet image {sub}")), "{sub}: {t}");
            assert!(t.contains("Example"), "{sub}");
        }
        assert_eq!(text("frobnicate", &[]), None);
        // A file name of the bundle is no command.
        assert_eq!(text("image-ls", &[]), None);
        assert_eq!(text("usage", &[]), None);
        assert_eq!(
            text("image", &["list".into()]),
            text("image", &["ls".into()])
        );
        assert_eq!(text("image", &["frob".into()]), text("image", &[]));
        // The controller's commands start with their usage.
        for cmd in ["apply", "delete", "fleet", "keygen"] {
            let h = text(cmd, &[]).unwrap();
            assert!(h.starts_with(&format!("Usage:\n  picolet {cmd}")), "{h}");
        }
        // `net` (its README row comes with the pod network's merge).
        let t = text("net", &[]).unwrap();
        assert!(
            t.contains("picolet net reset") && t.contains("Example"),
            "{t}"
        );
    }

    #[test]
    fn every_command_parses_help_before_its_own_options() {
        // The command's own parser answers HELP_REQUESTED for `--help`
        // and `-h`, even those (agent, check, the controller's) where `-h`
        // is no option, and even with an option missing its value.
        for &cmd in COMMANDS {
            for flag in ["--help", "-h"] {
                let args = vec![std::ffi::OsString::from(flag)];
                let r = match cmd {
                    "agent" => crate::agent::flags::parse(args).map(|_| ()),
                    "version" | "cgroup-holder" => continue,
                    _ => super::super::run(cmd, args.clone())
                        .or_else(|| crate::controller::run(cmd, args))
                        .unwrap_or_else(|| panic!("{cmd}: not dispatched"))
                        .map(|_| ()),
                };
                assert_eq!(
                    r.unwrap_err(),
                    super::super::args::HELP_REQUESTED,
                    "{cmd} {flag}"
                );
            }
        }
    }

    /// The README's command table and `--help` agree: every command of
    /// [`COMMANDS`] users run has a row, and every `--option` a row names
    /// is in that command's help.
    #[test]
    fn the_readme_command_table_matches_the_help() {
        let readme = include_str!("../../README.md");
        let rows: Vec<&str> = readme
            .lines()
            .filter(|l| l.starts_with("| `picolet "))
            .collect();
        for &cmd in COMMANDS {
            if cmd == "cgroup-holder" || cmd == "pull" {
                // started by picolet-pods.service / by the agent, not by users
                continue;
            }
            let mine: Vec<&&str> = rows
                .iter()
                .filter(|r| {
                    r.starts_with(&format!("| `picolet {cmd} "))
                        || r.starts_with(&format!("| `picolet {cmd}`"))
                })
                .collect();
            assert!(!mine.is_empty(), "README has no row for `picolet {cmd}`");
            for row in mine {
                // The fleet's `rollout --group` has its own help.
                let rest = if cmd == "rollout" && row.contains("--group") {
                    vec!["fleet".to_string()]
                } else {
                    vec![]
                };
                let help = text(cmd, &rest).unwrap();
                // The command cell (the description may name other
                // commands' options, e.g. the agent's --run-dir).
                let cell = row.split("` |").next().unwrap();
                for opt in cell
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .filter(|w| w.starts_with("--") && w.len() > 2)
                {
                    assert!(
                        help.contains(opt),
                        "README row of `picolet {cmd}` names {opt}, which its --help does not:\n{row}"
                    );
                }
            }
        }
    }
}
