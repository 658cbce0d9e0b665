//! Pure rules for running an image: the image's run config, the
//! Kubernetes command/args rules and environment merging (the pull policy
//! is the lifecycle core's: `crate::lifecycle::pull_decision`).

use serde::{Deserialize, Serialize};

use super::oci::RunConfig;

/// How the image says it should run (the `config` of the image config).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    /// `""` means `/`.
    pub working_dir: String,
    /// `""`, `uid`, `uid:gid`, `name` or `name:group`; see [`super::resolve_user`].
    pub user: String,
    /// `STOPSIGNAL`: `""` (SIGTERM), `SIGQUIT`, `QUIT` or `3`.
    #[serde(default)]
    pub stop_signal: String,
}

impl ImageConfig {
    pub(crate) fn from_run_config(rc: RunConfig) -> ImageConfig {
        ImageConfig {
            entrypoint: rc.entrypoint.unwrap_or_default(),
            cmd: rc.cmd.unwrap_or_default(),
            env: rc.env.unwrap_or_default(),
            working_dir: rc.working_dir.unwrap_or_default(),
            user: rc.user.unwrap_or_default(),
            stop_signal: rc.stop_signal.unwrap_or_default(),
        }
    }
}

/// The process argv for a container, by the Kubernetes rules (as
/// containerd's CRI plugin applies them):
///
/// | `command` | `args` | argv                          |
/// |-----------|--------|-------------------------------|
/// | set       | any    | command + args (NOT image Cmd) |
/// | unset     | set    | image Entrypoint + args       |
/// | unset     | unset  | image Entrypoint + image Cmd  |
///
/// An empty list counts as unset (CRI cannot tell them apart), and an
/// image Entrypoint of `[""]` counts as no Entrypoint. An empty result
/// means "no command specified"; the caller reports that error.
pub fn resolve_command(
    image: &ImageConfig,
    command: Option<&[String]>,
    args: Option<&[String]>,
) -> Vec<String> {
    let command = command.filter(|c| !c.is_empty());
    let args = args.filter(|a| !a.is_empty());
    match command {
        Some(command) => {
            let mut argv = command.to_vec();
            argv.extend_from_slice(args.unwrap_or_default());
            argv
        }
        None => {
            let mut argv = if image.entrypoint.len() == 1 && image.entrypoint[0].is_empty() {
                Vec::new()
            } else {
                image.entrypoint.clone()
            };
            argv.extend_from_slice(args.unwrap_or(&image.cmd));
            argv
        }
    }
}

fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// Merges `KEY=VALUE` lists: the image's order is kept, a container entry
/// replaces the image entry with the same key in place, new keys are
/// appended in container order, and a later duplicate wins. A container
/// entry without `=` removes the key (containerd's
/// `replaceOrAppendEnvValues`).
pub fn merge_env(image_env: &[String], container_env: &[String]) -> Vec<String> {
    let mut out: Vec<String> = image_env.to_vec();
    for entry in container_env {
        let key = env_key(entry);
        let pos = out.iter().position(|e| env_key(e) == key);
        match (pos, entry.contains('=')) {
            (Some(i), true) => out[i] = entry.clone(),
            (Some(i), false) => {
                out.remove(i);
            }
            (None, true) => out.push(entry.clone()),
            (None, false) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_configs_stop_signal_is_read() {
        let rc: RunConfig =
            serde_json::from_str(r#"{"Cmd":["nginx"],"StopSignal":"SIGQUIT"}"#).unwrap();
        let c = ImageConfig::from_run_config(rc);
        assert_eq!(c.stop_signal, "SIGQUIT");
        let rc: RunConfig = serde_json::from_str(r#"{"Cmd":["sh"]}"#).unwrap();
        assert_eq!(ImageConfig::from_run_config(rc).stop_signal, "");
    }

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            entrypoint: v(entrypoint),
            cmd: v(cmd),
            ..ImageConfig::default()
        }
    }

    #[test]
    fn kubernetes_command_and_args_table() {
        let img = image(&["/ep"], &["cmd-arg"]);
        let cmd = v(&["/bin/sh", "-c"]);
        let args = v(&["echo hi"]);
        let empty: Vec<String> = Vec::new();
        type Case<'a> = (Option<&'a [String]>, Option<&'a [String]>, &'a [&'a str]);
        let cases: [Case<'_>; 7] = [
            // neither: Entrypoint + Cmd
            (None, None, &["/ep", "cmd-arg"]),
            // only args: Entrypoint + args
            (None, Some(&args), &["/ep", "echo hi"]),
            // only command: command, image Cmd ignored
            (Some(&cmd), None, &["/bin/sh", "-c"]),
            // both
            (Some(&cmd), Some(&args), &["/bin/sh", "-c", "echo hi"]),
            // empty lists count as unset
            (Some(&empty), None, &["/ep", "cmd-arg"]),
            (None, Some(&empty), &["/ep", "cmd-arg"]),
            (Some(&cmd), Some(&empty), &["/bin/sh", "-c"]),
        ];
        for (command, args, want) in cases {
            assert_eq!(
                resolve_command(&img, command, args),
                v(want),
                "command={command:?} args={args:?}"
            );
        }
    }

    #[test]
    fn image_without_entrypoint_runs_cmd_or_args_and_empty_string_entrypoint_is_none() {
        let busybox = image(&[], &["sh"]);
        assert_eq!(resolve_command(&busybox, None, None), v(&["sh"]));
        let args = v(&["httpd", "-f"]);
        assert_eq!(resolve_command(&busybox, None, Some(&args)), args);
        let blank = image(&[""], &["run"]);
        assert_eq!(resolve_command(&blank, None, None), v(&["run"]));
        assert!(resolve_command(&ImageConfig::default(), None, None).is_empty());
    }

    #[test]
    fn merge_env_lets_the_container_win_and_keeps_image_order() {
        let image = v(&["PATH=/bin", "A=1", "B=2"]);
        let container = v(&["B=20", "C=3", "A=10", "C=30"]);
        assert_eq!(
            merge_env(&image, &container),
            v(&["PATH=/bin", "A=10", "B=20", "C=30"])
        );
        assert_eq!(merge_env(&image, &v(&["A", "Z"])), v(&["PATH=/bin", "B=2"]));
        assert_eq!(merge_env(&[], &v(&["X="])), v(&["X="]));
    }
}
