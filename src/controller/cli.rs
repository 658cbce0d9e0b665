//! The controller commands' command lines, and `apply` / `delete pod`.

use super::Target;
use super::client::{Client, ClientOptions};
use super::wait::{Verdict, Watch};
use crate::cli::args::Spec;
use crate::fleet::config::Credentials;
use crate::fleet::doc::{
    DecodeOptions, DesiredDoc, MAX_REVISION, decode_desired, encode_json, seal_envelope,
};
use crate::fleet::sign::{self, SigningKey};
use crate::fleet::topics::{DEFAULT_PREFIX, IdKind, Topics, validate_id};
use crate::fleet::transport::{BrokerUrl, TlsSettings};
use crate::reactor;
use crate::spec::Pod;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The usage lines of the controller commands.
pub const USAGE: &str =
    "  picolet apply -f FILE... (--device ID | --group G) --broker URL [--sign-key FILE]
                [--timeout SECONDS] [FLEET OPTIONS]
  picolet delete pod NAME (--device ID | --group G) --broker URL [-n NAMESPACE]
                [--sign-key FILE] [--timeout SECONDS] [FLEET OPTIONS]
  picolet fleet status [--device ID] --broker URL [-o json] [FLEET OPTIONS]
  picolet keygen [PREFIX]      writes PREFIX.key and PREFIX.pub (default ./fleet.*)
  FLEET OPTIONS: [--topic-prefix P] [--ca FILE] [--cert FILE] [--key FILE]
                 [--credentials FILE]
";

pub(super) const CONNECT_LIMIT: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT_S: u64 = 30;

/// The fleet options' help lines (shared by the controller commands).
macro_rules! fleet_options {
    () => {
        "  Fleet options:
      --broker URL           mqtt://HOST[:PORT] or mqtts://HOST[:PORT]
      --topic-prefix P       the topics' prefix
      --ca FILE              the CA of the broker's certificate
      --cert FILE --key FILE a client certificate
      --credentials FILE     user name and password
"
    };
}

/// `picolet apply --help`.
pub const APPLY_HELP: &str = concat!(
    "\
Publish pods to a device or a group through the MQTT broker, and wait until
the device reports the revision.

Usage:
  picolet apply -f FILE|DIR... (--device ID | --group G) --broker URL [options]

Options:
  -f, --filename FILE    a manifest file or directory (repeats)
      --device ID        the device
      --group G          every device of the group
      --sign-key FILE    sign the document (see `picolet keygen`)
      --timeout SECONDS  how long to wait for the device (default 30)
",
    fleet_options!(),
    "
Example:
  picolet apply -f web.yaml --device pi-1 --broker mqtt://hub
"
);

/// `picolet delete --help`.
pub const DELETE_HELP: &str = concat!(
    "\
Remove a pod from a device's or a group's desired pods, through the broker.

Usage:
  picolet delete pod NAME (--device ID | --group G) --broker URL [options]

Options:
  -n, --namespace NS     the namespace (default: default)
      --device ID        the device
      --group G          every device of the group
      --sign-key FILE    sign the document
      --timeout SECONDS  how long to wait for the device (default 30)
",
    fleet_options!(),
    "
Example:
  picolet delete pod web --device pi-1 --broker mqtt://hub
"
);

/// `picolet keygen --help`.
pub const KEYGEN_HELP: &str = "\
Write a fleet signing key pair: PREFIX.key (private; sign with
`apply --sign-key`) and PREFIX.pub (give it to devices as --fleet-key).

Usage:
  picolet keygen [PREFIX]      (default ./fleet)

Example:
  picolet keygen /etc/picolet/fleet
";

/// The controller commands' options (all take a value), parsed like every
/// other command line ([`crate::cli::args`]).
pub(super) use crate::cli::args::Args;

const SPEC: Spec<'static> = Spec {
    valued: &[
        "f",
        "filename",
        "device",
        "group",
        "broker",
        "sign-key",
        "timeout",
        "topic-prefix",
        "ca",
        "cert",
        "key",
        "credentials",
        "n",
        "namespace",
        "o",
        "output",
    ],
    flags: &[],
};

/// Broker connection settings shared by the commands.
pub(super) struct Common {
    pub(super) opts: ClientOptions,
    pub(super) topics: Topics,
}

pub(super) fn common(a: &Args) -> Result<Common, String> {
    let url = a
        .one(&["broker"])
        .ok_or("--broker mqtt[s]://HOST[:PORT] is required")?;
    let mut opts = ClientOptions::new(BrokerUrl::parse(url).map_err(|e| e.to_string())?);
    opts.tls = TlsSettings {
        ca_file: a.one(&["ca"]).map(PathBuf::from),
        client_cert: a.one(&["cert"]).map(PathBuf::from),
        client_key: a.one(&["key"]).map(PathBuf::from),
    };
    if let Some(p) = a.one(&["credentials"]) {
        opts.credentials = Some(Credentials::load(Path::new(p)).map_err(|e| e.to_string())?);
    }
    let topics = Topics::new(a.one(&["topic-prefix"]).unwrap_or(DEFAULT_PREFIX))
        .map_err(|e| e.to_string())?;
    Ok(Common { opts, topics })
}

fn target(a: &Args) -> Result<Target, String> {
    match (a.one(&["device"]), a.one(&["group"])) {
        (Some(d), None) => {
            validate_id(IdKind::Device, d).map_err(|e| e.to_string())?;
            Ok(Target::Device(d.to_string()))
        }
        (None, Some(g)) => {
            validate_id(IdKind::Group, g).map_err(|e| e.to_string())?;
            Ok(Target::Group(g.to_string()))
        }
        _ => Err("give exactly one of --device ID or --group G".into()),
    }
}

fn timeout(a: &Args) -> Result<Duration, String> {
    match a.one(&["timeout"]) {
        None => Ok(Duration::from_secs(DEFAULT_TIMEOUT_S)),
        Some(t) => t
            .trim_end_matches('s')
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("--timeout: not a number of seconds: {t:?}")),
    }
}

fn sign_key(a: &Args) -> Result<Option<SigningKey>, String> {
    let Some(p) = a.one(&["sign-key"]) else {
        return Ok(None);
    };
    let der = sign::read_private_key(Path::new(p)).map_err(|e| e.to_string())?;
    SigningKey::from_pkcs8(&der)
        .map(Some)
        .map_err(|e| format!("{p}: {e}"))
}

/// Runs a controller command (`apply`, `delete`, `fleet`, `keygen`);
/// `None` when `cmd` is not one.
pub fn run(cmd: &str, args: Vec<OsString>) -> Option<Result<ExitCode, String>> {
    let run = |f: fn(Args) -> Result<ExitCode, String>| Some(Args::parse(args, &SPEC).and_then(f));
    match cmd {
        "apply" => run(apply),
        "delete" => run(delete),
        "fleet" => run(super::status::fleet),
        "keygen" => run(keygen),
        _ => None,
    }
}

fn load_pods(files: &[&str]) -> Result<Vec<Pod>, String> {
    let mut pods = Vec::new();
    for f in files {
        let path = Path::new(f);
        let mut paths = vec![path.to_path_buf()];
        if path.is_dir() {
            let rd = std::fs::read_dir(path).map_err(|e| format!("{f}: {e}"))?;
            paths = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("yaml" | "yml" | "json")
                    )
                })
                .collect();
            paths.sort();
        }
        for p in paths {
            for pod in crate::spec::load_file(&p).map_err(|e| e.to_string())? {
                pods.push(pod.map_err(|e| e.to_string())?);
            }
        }
    }
    Ok(pods)
}

fn apply(a: Args) -> Result<ExitCode, String> {
    let files = a.all(&["f", "filename"]);
    if files.is_empty() || !a.free.is_empty() {
        return Err(format!("usage:\n{USAGE}"));
    }
    let pods = load_pods(&files)?;
    let (c, t, key, limit) = (common(&a)?, target(&a)?, sign_key(&a)?, timeout(&a)?);
    publish_and_wait(&c, &t, key.as_ref(), limit, |_| Ok(pods))
}

fn delete(a: Args) -> Result<ExitCode, String> {
    let name = match a.free.as_slice() {
        [kind, name] if matches!(kind.as_str(), "pod" | "pods" | "po") => name.clone(),
        [name] if name.starts_with("pod/") => name[4..].to_string(),
        _ => {
            return Err(
                "usage: picolet delete pod NAME (--device ID | --group G) --broker URL".into(),
            );
        }
    };
    let ns = a.one(&["n", "namespace"]).unwrap_or("default").to_string();
    let (c, t, key, limit) = (common(&a)?, target(&a)?, sign_key(&a)?, timeout(&a)?);
    let topic = c.topics.desired(&t.source());
    publish_and_wait(&c, &t, key.as_ref(), limit, |current| {
        let doc = current.ok_or(format!("no readable desired state on {topic}"))?;
        let mut pods = doc.pods.clone();
        let before = pods.len();
        pods.retain(|p| !(p.metadata.name == name && p.metadata.namespace_or_default() == ns));
        if pods.len() == before {
            return Err(format!(
                "pod {ns}/{name} is not in the desired state of {t} (revision {})",
                doc.revision
            ));
        }
        Ok(pods)
    })
}

/// The revision after `current` (the retained document's) and `observed`
/// (the highest a device reports), or why there is none: devices refuse a
/// revision above [`MAX_REVISION`], so publishing it would only be refused
/// as invalid (and, wrapped around, as stale).
pub(super) fn next_revision(current: u64, observed: Option<u64>) -> Result<u64, String> {
    let last = current.max(observed.unwrap_or(0));
    match last.checked_add(1) {
        Some(next) if next <= MAX_REVISION => Ok(next),
        _ => Err(format!(
            "cannot publish: the last revision is {last}, and the next would be above the largest revision devices accept (2^53 = {MAX_REVISION}); nothing was published"
        )),
    }
}

/// The revision and pods of the retained desired document, as far as it
/// can be read (its signature is not checked: devices do that). The raw
/// revision of a document that does not decode still counts (devices may
/// have accepted it under an older key), unless devices refuse it anyway
/// (above [`MAX_REVISION`]): it would block every later `apply`.
fn read_current(payload: &[u8]) -> (u64, Option<DesiredDoc>) {
    let opts = DecodeOptions {
        max_bytes: usize::MAX,
        fleet_key: None,
    };
    match decode_desired(payload, &opts) {
        Ok(o) => (o.doc.revision, Some(o.doc)),
        Err(e) => {
            let rev = serde_json::from_slice::<serde_json::Value>(payload)
                .ok()
                .and_then(|v| v.get("revision").and_then(|r| r.as_u64()))
                .filter(|r| *r <= MAX_REVISION)
                .unwrap_or(0);
            eprintln!("warning: the current desired document does not decode ({e}); replacing it");
            (rev, None)
        }
    }
}

/// Publishes the next revision of `t`'s desired state (pods from `make`,
/// given the current document) and waits for the devices.
fn publish_and_wait(
    c: &Common,
    t: &Target,
    key: Option<&SigningKey>,
    limit: Duration,
    make: impl FnOnce(Option<&DesiredDoc>) -> Result<Vec<Pod>, String>,
) -> Result<ExitCode, String> {
    reactor::block_on(async {
        let s = |e: super::client::ClientError| e.to_string();
        let mut client = Client::connect(&c.opts, CONNECT_LIMIT).await.map_err(s)?;
        let mut w = Watch::new(c.topics.clone(), t.clone());
        let topic = w.desired_topic().to_string();
        let mut filters = vec![topic.clone()];
        filters.extend(t.watch_filters(&c.topics));
        client.subscribe(filters);
        client
            .sync(c.topics.prefix(), CONNECT_LIMIT)
            .await
            .map_err(s)?;
        let mut current = (0, None);
        while let Some(m) = client.next_message(Instant::now()).await.map_err(s)? {
            if m.topic == topic {
                if !m.payload.is_empty() {
                    current = read_current(&m.payload);
                }
            } else {
                w.observe(&m.topic, &m.payload);
            }
        }
        let revision = next_revision(current.0, w.observed())?;
        let doc = DesiredDoc {
            revision,
            pods: make(current.1.as_ref())?,
        };
        let mut payload = encode_json(&doc);
        let mut how = String::new();
        if let Some(k) = key {
            payload = seal_envelope(&payload, k);
            how = format!(", signed with key {}", k.public_key().key_id());
        }
        w.published(revision);
        client
            .publish(&topic, payload, true, CONNECT_LIMIT)
            .await
            .map_err(s)?;
        println!(
            "{t}: published revision {revision} ({} pods{how}) to {topic}",
            doc.pods.len()
        );
        if limit.is_zero() {
            client.disconnect().await;
            return Ok(ExitCode::SUCCESS);
        }
        let result = wait(&mut client, &mut w, &topic, limit).await;
        client.disconnect().await;
        result
    })
}

fn isatty_stdout() -> bool {
    nix::unistd::isatty(std::io::stdout()).unwrap_or(false)
}

async fn wait(
    client: &mut Client,
    w: &mut Watch,
    topic: &str,
    limit: Duration,
) -> Result<ExitCode, String> {
    let tty = isatty_stdout();
    let start = Instant::now();
    let deadline = start + limit;
    let clear = || {
        if tty {
            print!("\r\x1b[K");
            let _ = std::io::stdout().flush();
        }
    };
    loop {
        match w.verdict() {
            Verdict::Done { summary, refused } => {
                clear();
                println!("{summary}");
                if refused.is_empty() {
                    return Ok(ExitCode::SUCCESS);
                }
                for r in &refused {
                    eprintln!("error: {r}");
                }
                return Ok(ExitCode::from(1));
            }
            Verdict::Failed(msg) => {
                clear();
                return Err(msg);
            }
            Verdict::Waiting(line) => {
                if tty {
                    let secs = start.elapsed().as_secs();
                    print!("\r\x1b[K[{secs:>2}s] {line}");
                    let _ = std::io::stdout().flush();
                }
                if Instant::now() >= deadline {
                    clear();
                    return Err(format!("timed out after {} s: {line}", limit.as_secs()));
                }
            }
        }
        let step = deadline.min(Instant::now() + Duration::from_secs(1));
        let msg = client.next_message(step).await.map_err(|e| e.to_string())?;
        if let Some(m) = msg.filter(|m| m.topic != topic) {
            w.observe(&m.topic, &m.payload);
        }
    }
}

fn keygen(a: Args) -> Result<ExitCode, String> {
    if !a.opts.is_empty() || a.free.len() > 1 {
        return Err("usage: picolet keygen [PREFIX]".into());
    }
    let prefix = a.free.first().map_or(".", String::as_str);
    let files = sign::keygen(Path::new(prefix)).map_err(|e| e.to_string())?;
    println!(
        "wrote {} (private: keep it secret; sign with --sign-key) and {} (key id {}; give it to devices as --fleet-key)",
        files.private_path.display(),
        files.public_path.display(),
        files.public.key_id()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_revision_never_passes_2_pow_53_nor_wraps() {
        assert_eq!(next_revision(0, None), Ok(1));
        assert_eq!(next_revision(3, Some(7)), Ok(8));
        assert_eq!(next_revision(9, Some(2)), Ok(10));
        assert_eq!(next_revision(MAX_REVISION - 1, None), Ok(MAX_REVISION));
        for (current, observed) in [
            (MAX_REVISION, None),
            (0, Some(MAX_REVISION)),
            (u64::MAX, None),
            (0, Some(u64::MAX)),
        ] {
            let e = next_revision(current, observed).unwrap_err();
            assert!(
                e.contains("the next would be above the largest revision devices accept (2^53 = 9007199254740992); nothing was published"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_retained_document_above_2_pow_53_does_not_block_apply() {
        let max = br#"{"apiVersion":"picolet.io/v1","kind":"DeviceState","revision":18446744073709551615,"pods":[]}"#;
        assert!(matches!(read_current(max), (0, None)));
        let bad_pods =
            br#"{"apiVersion":"picolet.io/v1","kind":"DeviceState","revision":41,"pods":[1]}"#;
        assert!(matches!(read_current(bad_pods), (41, None)));
    }
}
