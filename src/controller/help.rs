//! `--help` texts of the controller's commands (`apply`, `delete`,
//! `fleet`, `keygen`): usage, what it does, options, examples.

/// `picolet apply --help`.
pub const APPLY_HELP: &str = "\
Usage:
  picolet apply -f FILE... [--manifests DIR]
  picolet apply -f FILE... (--device ID | --group G) --broker URL [--prune] [--dry-run]
                [--sign-key FILE] [--timeout SECONDS] [--max-message-bytes N] [FLEET OPTIONS]

Create or update pods.

Without --broker: on this device. Each pod is checked with the agent's loader (any error: nothing is
written), then written atomically to the file of the manifests directory that defines it already,
or to <namespace>_<name>.yaml. Prints pod/NAME created|configured|unchanged; the agent picks the
file up.

With --broker: in the desired document of a device or group. The pods are merged into the current
document (added or updated by namespace/name; the others stay); --prune makes them the whole set.
The diff is printed first (+ added, ~ changed, - removed, and the unchanged count); nothing is
published when nothing changes. The document is published compressed (zlib; devices take it
compressed or not), and refused, with its size, if the message would pass --max-message-bytes.
Then it waits until the devices took the revision and the pods it
added or changed run (Ready) or fail: a failing pod (ErrImagePull, CreateContainerError, refused by
policy, Failed...) is printed with its error and the exit code is 1.

Options:
  -f, --filename FILE      a manifest (YAML or JSON, several documents allowed) or a directory of
                           them (*.yaml, *.yml, *.json); repeatable
      --manifests DIR      (local) the manifests directory; default: manifests of the config file,
                           else /etc/picolet/manifests (also --manifests-dir)
      --config FILE        (local) the agent's config file (default /etc/picolet/config.yaml)
      --state-dir DIR      (local) the agent's state directory, to ask which source owns a pod
      --device ID          the device's desired document
      --group G            the group's desired document
      --broker URL         mqtt://HOST[:PORT] or mqtts://HOST[:PORT]
      --prune              replace the whole set of pods: pods not given are removed
      --dry-run            print the diff only; publish nothing
      --sign-key FILE      sign the document (ed25519, from picolet keygen)
      --timeout SECONDS    how long to wait for the devices and pods (default 60; 0: do not wait)
      --max-message-bytes N
                           publish nothing if the message (compressed, signed) is larger: 128Ki
                           for AWS IoT Core, 256Ki for Azure IoT Hub (default 1Mi, what devices
                           take by default: --max-document-bytes)
  FLEET OPTIONS: --topic-prefix P, --ca FILE, --cert FILE, --key FILE, --credentials FILE

Examples:
  picolet apply -f web.yaml
  picolet apply -f web.yaml --device pi-17 --broker mqtt://broker.lan --dry-run
  picolet apply -f pods/ --group kitchen --broker mqtts://broker.lan --prune --sign-key fleet.key
  picolet apply -f pods/ --group kitchen --broker mqtts://iot.example.com --max-message-bytes 128Ki
";

/// `picolet delete --help`.
pub const DELETE_HELP: &str = "\
Usage:
  picolet delete pod NAME... [-n NAMESPACE] [--manifests DIR]
  picolet delete pod NAME... [-n NAMESPACE] (--device ID | --group G) --broker URL
                 [--dry-run] [--sign-key FILE] [--timeout SECONDS] [--max-message-bytes N]
                 [FLEET OPTIONS]

Delete pods.

Without --broker: removes the pod's file from the manifests directory (or its document from a file
of several); the agent stops the pod. A pod that came from the fleet is refused, naming its source.
With --broker: publishes the current desired document without those pods (the diff is printed
first) and waits for the devices. A pod that is not there: Error from server (NotFound), exit 1.

Options:
  -n, --namespace NS       the pods' namespace (default: default)
      --manifests DIR      (local) the manifests directory (see picolet apply --help)
      --config FILE        (local) the agent's config file
      --state-dir DIR      (local) the agent's state directory
      --device ID | --group G, --broker URL, --dry-run, --sign-key FILE, --timeout SECONDS,
      --max-message-bytes N
                           as for picolet apply
  FLEET OPTIONS: --topic-prefix P, --ca FILE, --cert FILE, --key FILE, --credentials FILE

Examples:
  picolet delete pod web
  picolet delete pod web db --device pi-17 --broker mqtt://broker.lan
";

/// `picolet fleet --help`.
pub const FLEET_HELP: &str = "\
Usage:
  picolet fleet status [--device ID | --group G] --broker URL [-o json] [FLEET OPTIONS]

Show what the devices report on the broker. Without --device/--group: one row per device
(DEVICE ONLINE OBSERVED DEPLOYMENT PODS ERRORS UPDATED). With --device: its pods as get pods shows them
(NAME READY STATUS RESTARTS AGE, and MESSAGE with the error of a failing or refused pod). With
--group: the pods of every device that reports a revision of the group, one row per device and pod.

Options:
      --device ID          one device's pods
      --group G            the pods of the group's devices
      --broker URL         mqtt://HOST[:PORT] or mqtts://HOST[:PORT]
  -o, --output json        the retained statuses as JSON
  FLEET OPTIONS: --topic-prefix P, --ca FILE, --cert FILE, --key FILE, --credentials FILE

Examples:
  picolet fleet status --broker mqtt://broker.lan
  picolet fleet status --device pi-17 --broker mqtt://broker.lan
";

/// `picolet keygen --help`.
pub const KEYGEN_HELP: &str = "\
Usage:
  picolet keygen [PREFIX]

Write an ed25519 key pair for signing desired documents: PREFIX.key (private, 0600; give it to
apply/delete as --sign-key) and PREFIX.pub (give it to devices as --fleet-key or fleetKey).
PREFIX defaults to ./fleet.

Example:
  picolet keygen /etc/picolet/fleet
";

/// The usage lines of the fleet's `picolet rollout`.
pub const ROLLOUT_USAGE: &str = "\
  picolet rollout -f FILE... --group G --broker URL [--canary N] [--batch N|P%]
                  [--max-failures N|P%] [--verify DURATION] [--health-deadline DURATION]
                  [--selector LABEL=VALUE]... [--sign-key FILE] [--max-message-bytes N]
                  [--timeout DURATION] [FLEET OPTIONS]
  picolet rollout status --group G --broker URL [FLEET OPTIONS]
  picolet rollout abort --group G --broker URL [--timeout DURATION] [FLEET OPTIONS]
";

/// `picolet rollout --help` with `-f`, `--group` or `--broker` (the fleet's
/// staged rollout; `picolet help rollout fleet` too).
pub const ROLLOUT_HELP: &str = "\
Usage:
  picolet rollout -f FILE... --group G --broker URL [--canary N] [--batch N|P%]
                  [--max-failures N|P%] [--verify DURATION] [--health-deadline DURATION]
                  [--selector LABEL=VALUE]... [--sign-key FILE] [--max-message-bytes N]
                  [--timeout DURATION] [FLEET OPTIONS]
  picolet rollout status --group G --broker URL [FLEET OPTIONS]
  picolet rollout abort --group G --broker URL [--timeout DURATION] [FLEET OPTIONS]

Roll the group's next revision out in stages, with the health gate decided on the devices.

The new document is the group's document merged with the files, as picolet apply --group merges
(the diff is printed first; it is published compressed, as apply publishes), with a rollout block (--verify, --health-deadline, onFailure
Rollback). The targets are the devices whose status reports a revision of the group (and whose
node labels match --selector), sorted by device id: the canary is the first N, then batches. Each
batch gets the revision on its devices' override topics (<prefix>/devices/<id>/groups/<G>/desired);
a device counts Healthy when its status reports the revision Healthy, failed when it reports it
Failed, FailedRollbackComplete, FailedUnableToRollback, Rejected or RolledBack, or is not Healthy
30 s after its health deadline (Offline when it is offline then, else NotHealthyInTime). When the
failures reach --max-failures, every device updated so far has its override cleared and goes back
to the group's document: the command waits until they report the old revision and exits 2. At the
end the group document is published and the overrides cleared: exit 0.

The progress is kept retained on <prefix>/rollouts/<G>: run the same command again (same files and
options) after the controller was stopped and it resumes; other files are refused until the
rollout is aborted. A table of the devices is redrawn in place on a terminal, else a line is
printed per change (device pi-3: Healthy (revision 8)).

  status   the progress and each device's state
  abort    asks the running controller to roll back (it exits 3); with none running after 5 s,
           rolls back itself

Exit codes: 0 rolled out (or aborted by rollout abort), 1 error, 2 rolled back, 3 aborted.

Options:
  -f, --filename FILE          manifests, as for picolet apply; repeatable
      --group G                the group
      --broker URL             mqtt://HOST[:PORT] or mqtts://HOST[:PORT]
      --canary N               devices in the first batch (default 1; 0: none)
      --batch N|P%             devices in each later batch (default 10%, rounded up)
      --max-failures N|P%      roll back when this many devices failed (default 5%, rounded up,
                               at least 1)
      --verify DURATION        how long the pods must stay Ready and not restart (default 60s)
      --health-deadline D      how long a device has to become Healthy (default 300s)
      --selector LABEL=VALUE   only devices with this node label; repeatable (a=b,c=d too)
      --sign-key FILE          sign the document (ed25519, from picolet keygen)
      --max-message-bytes N    refuse a (compressed, signed) document larger than N bytes, as
                               picolet apply does (default 1Mi; 128Ki for AWS IoT Core)
      --timeout DURATION       give up after this long (the rollout stays in progress; default:
                               no limit)
  FLEET OPTIONS: --topic-prefix P, --ca FILE, --cert FILE, --key FILE, --credentials FILE

Examples:
  picolet rollout -f web.yaml --group kitchen --broker mqtt://broker.lan --canary 1 --batch 2 --max-failures 1
  picolet rollout status --group kitchen --broker mqtt://broker.lan
  picolet rollout abort --group kitchen --broker mqtt://broker.lan
";

/// The help of controller command `cmd`, if it is one.
pub fn help(cmd: &str) -> Option<&'static str> {
    match cmd {
        "apply" => Some(APPLY_HELP),
        "delete" => Some(DELETE_HELP),
        "fleet" => Some(FLEET_HELP),
        "keygen" => Some(KEYGEN_HELP),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_usage_and_an_example() {
        for cmd in ["apply", "delete", "fleet", "keygen"] {
            let h = help(cmd).unwrap();
            assert!(h.starts_with(&format!("Usage:\n  picolet {cmd}")), "{h}");
            assert!(h.contains("Example"), "{h}");
        }
        assert!(help("get").is_none());
        assert!(
            ROLLOUT_HELP.starts_with("Usage:\n  picolet rollout")
                && ROLLOUT_HELP.contains(ROLLOUT_USAGE)
        );
    }
}
