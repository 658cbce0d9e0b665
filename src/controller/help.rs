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
(DEVICE ONLINE OBSERVED PODS ERRORS UPDATED). With --device: its pods as get pods shows them
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
    }
}
