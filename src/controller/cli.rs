//! The controller commands' command lines, and `apply` / `delete pod`.

use super::Target;
use super::client::{Client, ClientOptions};
use super::merge::{self, Plan};
use super::wait::{PodsVerdict, Verdict, Watch};
use crate::cli::args::Spec;
use crate::fleet::config::Bytes;
use crate::fleet::config::Credentials;
use crate::fleet::doc::{
    DecodeOptions, DesiredDoc, Format, MAX_DOC_BYTES, MAX_REVISION, RegistriesBlock,
    decode_desired, detect_format, encode_message, inflate, open_envelope,
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
    "  picolet apply -f FILE... [--manifests DIR] [--dry-run]      (the local manifests directory)
  picolet apply -f FILE... (--device ID | --group G) --broker URL [--prune] [--dry-run]
                [--registries FILE] [--sign-key FILE] [--timeout SECONDS]
                [--max-message-bytes N] [FLEET OPTIONS]
  picolet delete pod NAME... [-n NAMESPACE] [--manifests DIR]  (the local manifests directory)
  picolet delete pod NAME... (--device ID | --group G) --broker URL [-n NAMESPACE]
                [--dry-run] [--sign-key FILE] [--timeout SECONDS] [--max-message-bytes N]
                [FLEET OPTIONS]
  picolet fleet status [--device ID | --group G] --broker URL [-o json] [FLEET OPTIONS]
  picolet rollout -f FILE... --group G --broker URL [--canary N] [--batch N|P%]
                [--max-failures N|P%] [--verify D] [--health-deadline D] [--selector L=V]
                [--sign-key FILE] [--timeout D] [FLEET OPTIONS]
  picolet rollout status|abort --group G --broker URL [FLEET OPTIONS]
  picolet keygen [PREFIX]      writes PREFIX.key and PREFIX.pub (default ./fleet.*)
  FLEET OPTIONS: [--topic-prefix P] [--ca FILE] [--cert FILE] [--key FILE]
                 [--credentials FILE]
";

pub(super) const CONNECT_LIMIT: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT_S: u64 = 60;

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
        "max-message-bytes",
        "topic-prefix",
        "ca",
        "cert",
        "key",
        "credentials",
        "n",
        "namespace",
        "o",
        "output",
        "manifests",
        "manifests-dir",
        "config",
        "state-dir",
        "registries",
    ],
    flags: &["prune", "dry-run"],
};

/// Options of the local `apply`/`delete` (without `--broker`) only.
const LOCAL_ONLY: &[&str] = &["manifests", "manifests-dir", "config", "state-dir"];

/// Broker connection settings shared by the commands.
pub(super) struct Common {
    pub(super) opts: ClientOptions,
    pub(super) topics: Topics,
}

#[inline(never)] // shared with rollout
pub(super) fn common(a: &Args) -> Result<Common, String> {
    let url = a
        .one(&["broker"])
        .ok_or("--broker mqtt[s]://HOST[:PORT] is required")?;
    if let Some(o) = LOCAL_ONLY.iter().find(|o| a.has(&[o])) {
        return Err(format!(
            "--{o} is an option of the local apply/delete (without --broker), not of the fleet"
        ));
    }
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

pub(super) fn target(a: &Args) -> Result<Target, String> {
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

/// The largest message MQTT can carry: 256 MiB less the fixed header.
const MQTT_MAX_PAYLOAD: u64 = (256 << 20) - 1;

/// `--max-message-bytes N` (default [`MAX_DOC_BYTES`], what devices take
/// by default): the largest message `apply`/`delete` publish.
pub(super) fn max_message(a: &Args) -> Result<usize, String> {
    let Some(text) = a.one(&["max-message-bytes"]) else {
        return Ok(MAX_DOC_BYTES);
    };
    match Bytes::parse(text) {
        Ok(Bytes(n)) if (1..=MQTT_MAX_PAYLOAD).contains(&n) => Ok(n as usize),
        Ok(_) => Err(format!(
            "--max-message-bytes: {text:?} is not between 1 and {MQTT_MAX_PAYLOAD} (MQTT's largest message)"
        )),
        Err(e) => Err(format!("--max-message-bytes: {e}")),
    }
}

#[inline(never)] // shared with rollout
pub(super) fn sign_key(a: &Args) -> Result<Option<SigningKey>, String> {
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
#[inline(never)] // own stack frame: see docs/design-deviations.md §13
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

/// The files named by `-f`: each file, or a directory's `*.yaml`, `*.yml`
/// and `*.json` in name order.
pub(super) fn expand(files: &[&str]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for f in files {
        let path = Path::new(f);
        if path.is_dir() {
            let rd = std::fs::read_dir(path).map_err(|e| format!("{f}: {e}"))?;
            let mut paths: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("yaml" | "yml" | "json")
                    )
                })
                .collect();
            paths.sort();
            out.extend(paths);
        } else {
            out.push(path.to_path_buf());
        }
    }
    Ok(out)
}

/// What the files of `apply -f` hold.
pub(super) type Loaded = (
    Vec<Pod>,
    Vec<crate::spec::ConfigObject>,
    Vec<(crate::spec::workload::Workload, String)>,
);

/// The pods, ConfigMaps, Secrets and workloads of the files.
#[inline(never)] // shared with rollout
pub(super) fn load_pods(files: &[&str]) -> Result<Loaded, String> {
    let mut pods = Vec::new();
    let mut objects = Vec::new();
    let mut workloads = Vec::new();
    for p in expand(files)? {
        for m in crate::spec::load_manifests_file(&p).map_err(|e| e.to_string())? {
            match m.map_err(|e| e.to_string())? {
                crate::spec::Manifest::Pod(pod) => pods.push(*pod),
                crate::spec::Manifest::Object(o) => objects.push(o),
                crate::spec::Manifest::Workload(w, text) => workloads.push((*w, text)),
            }
        }
    }
    Ok((pods, objects, workloads))
}

/// What publishing does besides the document: sign, wait, or only show.
struct PublishOpts<'a> {
    key: Option<&'a SigningKey>,
    limit: Duration,
    dry_run: bool,
    /// `--max-message-bytes`.
    max_message: usize,
    /// `--registries FILE`: the document's new `registries` block (`None`
    /// inside: an empty file removes it); `None`: kept as it is.
    registries: Option<Option<RegistriesBlock>>,
}

/// The `registries` block of `apply --registries FILE`: k3s's
/// registries.yaml schema, PEM inline (docs/fleet.md); an empty file is
/// no block.
fn registries_file(path: &str) -> Result<Option<RegistriesBlock>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let v = crate::yaml::one(&text)
        .and_then(|d| d.to_value())
        .map_err(|e| format!("{path}: {e}"))?;
    // The block's errors name `registries.…`; the file is the block.
    RegistriesBlock::from_value(&v)
        .map(Some)
        .map_err(|e| format!("{path}: {e}"))
}

/// The diff line of a changed `registries` block: host keys only.
fn registries_line(old: &Option<RegistriesBlock>, new: &Option<RegistriesBlock>) -> String {
    match (old, new) {
        (_, None) => "- registries\n".to_string(),
        (None, Some(n)) => format!("+ registries ({})\n", n.summary()),
        (Some(_), Some(n)) => format!("~ registries ({})\n", n.summary()),
    }
}

/// What a command makes of the current document: a plan to publish, or
/// an answer to print on stderr with exit code 1 (nothing published).
enum Made {
    Plan(Plan),
    Refused(String),
}

/// Refuses the options of [`SPEC`] that `cmd` does not take (the
/// commands share one spec).
pub(super) fn only(a: &Args, cmd: &str, not: &[&str]) -> Result<(), String> {
    match not.iter().find(|o| a.has(&[o])) {
        Some(o) => {
            let dash = if o.len() == 1 { "-" } else { "--" };
            Err(format!(
                "{cmd} does not take {dash}{o}; see `picolet {cmd} --help`"
            ))
        }
        None => Ok(()),
    }
}

fn apply(a: Args) -> Result<ExitCode, String> {
    only(&a, "apply", &["n", "namespace", "o", "output"])?;
    let files = a.all(&["f", "filename"]);
    if !a.has(&["broker"]) {
        only(&a, "apply (without --broker)", &["registries"])?;
        return super::local::apply(&a);
    }
    let registries = a.one(&["registries"]).map(registries_file).transpose()?;
    if (files.is_empty() && registries.is_none()) || !a.free.is_empty() {
        return Err(format!("usage:\n{USAGE}"));
    }
    let (c, t, key, limit) = (common(&a)?, target(&a)?, sign_key(&a)?, timeout(&a)?);
    let (pods, objects, workloads) = load_pods(&files)?;
    let prune = a.has(&["prune"]);
    let opts = PublishOpts {
        key: key.as_ref(),
        limit,
        dry_run: a.has(&["dry-run"]),
        max_message: max_message(&a)?,
        registries,
    };
    publish_and_wait(&c, &t, &opts, |current| {
        merge_files(current, (pods, objects, workloads), prune).map(Made::Plan)
    })
}

/// The pods, ConfigMaps, Secrets and workloads of the files merged into
/// `current` (or replacing its sets, `prune`), as `apply` does.
#[inline(never)] // shared with rollout
pub(super) fn merge_files(
    current: Option<&DesiredDoc>,
    (pods, objects, workloads): Loaded,
    prune: bool,
) -> Result<Plan, String> {
    let current_objects = current.map_or(&[][..], |d| &d.objects[..]);
    let current_workloads = current.map_or(&[][..], |d| &d.workloads[..]);
    let current = current.map_or(&[][..], |d| &d.pods[..]);
    let mut plan = merge::apply(current, pods, prune)?;
    plan.apply_objects(current_objects, objects, prune)?;
    plan.apply_workloads(current_workloads, workloads, prune)?;
    Ok(plan)
}

fn delete(a: Args) -> Result<ExitCode, String> {
    only(&a, "delete", &["f", "filename", "o", "output"])?;
    let names: Vec<String> = match a.free.as_slice() {
        [kind, names @ ..]
            if matches!(kind.as_str(), "pod" | "pods" | "po") && !names.is_empty() =>
        {
            names.to_vec()
        }
        [name] if name.starts_with("pod/") => vec![name[4..].to_string()],
        _ => {
            return Err(
                "usage: picolet delete pod NAME... [(--device ID | --group G) --broker URL]".into(),
            );
        }
    };
    if !a.has(&["broker"]) {
        return super::local::delete(&a, &names);
    }
    if a.has(&["prune"]) {
        return Err("--prune is an option of apply".into());
    }
    let ns = a.one(&["n", "namespace"]).unwrap_or("default").to_string();
    let (c, t, key, limit) = (common(&a)?, target(&a)?, sign_key(&a)?, timeout(&a)?);
    let topic = c.topics.desired(&t.source());
    let opts = PublishOpts {
        key: key.as_ref(),
        limit,
        dry_run: a.has(&["dry-run"]),
        max_message: max_message(&a)?,
        registries: None,
    };
    publish_and_wait(&c, &t, &opts, |current| {
        let doc = current.ok_or(format!("no readable desired state on {topic}"))?;
        let mut pods = doc.pods.clone();
        let mut removed = Vec::new();
        let mut missing = Vec::new();
        for name in &names {
            match merge::remove(&pods, &ns, name) {
                Some(plan) => {
                    pods = plan.pods;
                    removed.extend(plan.removed);
                }
                None => missing.push(format!(
                    "Error from server (NotFound): pods \"{name}\" not found (not in the desired state of {t}, revision {})",
                    doc.revision
                )),
            }
        }
        if !missing.is_empty() {
            return Ok(Made::Refused(missing.join("\n")));
        }
        Ok(Made::Plan(Plan {
            unchanged: pods.len(),
            pods,
            added: Vec::new(),
            changed: Vec::new(),
            removed,
            objects: None,
            object_lines: Vec::new(),
            workloads: None,
        }))
    })
}

/// The revision after `current` (the retained document's) and `observed`
/// (the highest a device reports), or why there is none: devices refuse a
/// revision above [`MAX_REVISION`], so publishing it would only be refused
/// as invalid (and, wrapped around, as stale).
#[inline(never)] // shared with rollout
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
#[inline(never)] // shared with rollout
pub(super) fn read_current(payload: &[u8]) -> (u64, Option<DesiredDoc>) {
    // Any message MQTT carries; a compressed one inflates to as much at most.
    let opts = DecodeOptions {
        max_bytes: MQTT_MAX_PAYLOAD as usize,
        fleet_key: None,
    };
    match decode_desired(payload, &opts) {
        Ok(o) => (o.doc.revision, Some(o.doc)),
        Err(e) => {
            let rev = raw_revision(payload, 2)
                .filter(|r| *r <= MAX_REVISION)
                .unwrap_or(0);
            eprintln!("warning: the current desired document does not decode ({e}); replacing it");
            (rev, None)
        }
    }
}

/// The `revision` of a JSON document that does not decode, through
/// compression and `depth` levels of envelopes (signatures unchecked).
fn raw_revision(payload: &[u8], depth: u8) -> Option<u64> {
    let inflated;
    let mut bytes = payload;
    if detect_format(bytes) == Ok(Format::Zlib) {
        inflated = inflate(bytes, MQTT_MAX_PAYLOAD as usize).ok()?;
        bytes = &inflated;
    }
    let v = serde_json::from_slice::<serde_json::Value>(bytes).ok()?;
    if let Some(r) = v.get("revision") {
        return r.as_u64();
    }
    let (inner, _) = open_envelope(&v, None).ok()?;
    raw_revision(&inner, depth.checked_sub(1)?)
}

/// Publishes the next revision of `t`'s desired state (the plan `make`
/// returns, given the current document), after printing its diff, and
/// waits for the devices and the pods.
fn publish_and_wait(
    c: &Common,
    t: &Target,
    o: &PublishOpts<'_>,
    make: impl FnOnce(Option<&DesiredDoc>) -> Result<Made, String>,
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
        let plan = match make(current.1.as_ref())? {
            Made::Plan(p) => p,
            Made::Refused(msg) => {
                client.disconnect().await;
                eprintln!("{msg}");
                return Ok(ExitCode::from(1));
            }
        };
        let at = match &current.1 {
            Some(d) => format!("revision {}", d.revision),
            None => "no document".to_string(),
        };
        // The registries block: kept, or replaced by --registries.
        let kept = current.1.as_ref().and_then(|d| d.registries.clone());
        let (registries, reg_line) = match &o.registries {
            Some(new) if *new != kept => (new.clone(), registries_line(&kept, new)),
            _ => (kept, String::new()),
        };
        let noop = plan.is_noop() && reg_line.is_empty();
        // The same pods as a document the devices took: nothing to do. A
        // document they did not take (refused, or not seen yet) is sent
        // again under a new revision.
        let taken = current.1.is_some() && w.observed().unwrap_or(0) >= current.0;
        if noop && !taken {
            println!(
                "{t}: the pods of {at} on {topic} are unchanged, but no device reports that revision (refused or not seen yet): publishing them again"
            );
        } else if noop {
            client.disconnect().await;
            println!(
                "{t}: no change ({at} on {topic} has these pods already: {} unchanged); nothing published",
                plan.unchanged
            );
            return Ok(ExitCode::SUCCESS);
        }
        if !noop {
            print!(
                "{t}: changes to {at} on {topic}:\n{reg_line}{}",
                plan.render()
            );
        }
        if o.dry_run {
            client.disconnect().await;
            println!("dry run: nothing published");
            return Ok(ExitCode::SUCCESS);
        }
        let revision = next_revision(current.0, w.observed())?;
        let doc = DesiredDoc {
            revision,
            pods: plan.pods.clone(),
            // `delete pod` keeps the current ConfigMaps and Secrets.
            objects: match &plan.objects {
                Some(o) => o.clone(),
                None => current
                    .1
                    .as_ref()
                    .map(|d| d.objects.clone())
                    .unwrap_or_default(),
            },
            workloads: match &plan.workloads {
                Some(w) => w.clone(),
                None => current
                    .1
                    .as_ref()
                    .map(|d| d.workloads.clone())
                    .unwrap_or_default(),
            },
            // The retained document's rollout block is kept.
            rollout: current.1.as_ref().and_then(|d| d.rollout),
            registries,
        };
        let payload = encode_message(&doc, o.key);
        let how = match o.key {
            Some(k) => format!(", signed with key {}", k.public_key().key_id()),
            None => String::new(),
        };
        let size = payload.len();
        if size > o.max_message {
            client.disconnect().await;
            return Err(format!(
                "{t}: revision {revision} ({} pods{how}) is a message of {size} bytes (compressed), more than --max-message-bytes {}; nothing published",
                doc.pods.len(),
                o.max_message
            ));
        }
        w.track(plan.touched(), &plan.pods);
        w.published(revision);
        client
            .publish(&topic, payload, true, CONNECT_LIMIT)
            .await
            .map_err(s)?;
        println!(
            "{t}: published revision {revision} ({} pods{how}) to {topic} ({size} bytes)",
            doc.pods.len()
        );
        if o.limit.is_zero() {
            client.disconnect().await;
            return Ok(ExitCode::SUCCESS);
        }
        let result = wait(&mut client, &mut w, &topic, o.limit).await;
        client.disconnect().await;
        result
    })
}

pub(super) fn isatty_stdout() -> bool {
    nix::unistd::isatty(std::io::stdout()).unwrap_or(false)
}

/// Waits for the revision to be observed (see the module doc), then for
/// the pods this publish added or changed to run or fail.
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
    let mut observed = false;
    loop {
        let waiting = if !observed {
            match w.verdict() {
                Verdict::Done { summary, refused } => {
                    clear();
                    println!("{summary}");
                    if !refused.is_empty() {
                        for r in &refused {
                            eprintln!("error: {r}");
                        }
                        return Ok(ExitCode::from(1));
                    }
                    observed = true;
                    continue;
                }
                Verdict::Failed(msg) => {
                    clear();
                    return Err(msg);
                }
                Verdict::Waiting(line) => line,
            }
        } else {
            match w.pods_verdict() {
                PodsVerdict::Ready(lines) => {
                    clear();
                    for l in lines {
                        println!("{l}");
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                PodsVerdict::Failed(lines) => {
                    clear();
                    const SHOWN: usize = 10;
                    for l in lines.iter().take(SHOWN) {
                        eprintln!("error: {l}");
                    }
                    if lines.len() > SHOWN {
                        eprintln!("error: and {} more failed pods", lines.len() - SHOWN);
                    }
                    return Ok(ExitCode::from(1));
                }
                PodsVerdict::Waiting(line) => line,
            }
        };
        if tty {
            let secs = start.elapsed().as_secs();
            print!("\r\x1b[K[{secs:>2}s] {waiting}");
            let _ = std::io::stdout().flush();
        }
        if Instant::now() >= deadline {
            clear();
            return Err(format!("timed out after {} s: {waiting}", limit.as_secs()));
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

    fn run_args(cmd: &str, args: &[&str]) -> Result<ExitCode, String> {
        run(cmd, args.iter().map(OsString::from).collect()).unwrap()
    }

    #[test]
    fn options_a_command_does_not_take_are_refused() {
        let e = run_args("apply", &["-f", "x.yaml", "-n", "kube-system"]).unwrap_err();
        assert_eq!(e, "apply does not take -n; see `picolet apply --help`");
        let e = run_args("fleet", &["status", "--prune", "--broker", "mqtt://h"]).unwrap_err();
        assert_eq!(e, "fleet does not take --prune; see `picolet fleet --help`");
        let e = run_args("delete", &["pod", "x", "-f", "y"]).unwrap_err();
        assert_eq!(e, "delete does not take -f; see `picolet delete --help`");
        let e = run_args(
            "apply",
            &["-f", "x.yaml", "--broker", "mqtt://h", "--manifests", "/d"],
        )
        .unwrap_err();
        assert!(
            e.contains("--manifests is an option of the local apply/delete"),
            "{e}"
        );
        let e = run_args(
            "apply",
            &["-f", "x.yaml", "--manifests", "/nonexistent", "--prune"],
        )
        .unwrap_err();
        assert!(
            e.contains("--prune is an option of the fleet (give --broker URL)"),
            "{e}"
        );
    }

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
        // Compressed, and in an envelope, the revision still counts.
        let zipped = crate::fleet::doc::compress(bad_pods);
        assert!(matches!(read_current(&zipped), (41, None)));
        let key = SigningKey::from_pkcs8(&sign::generate_keypair().unwrap().0).unwrap();
        let sealed = crate::fleet::doc::seal_envelope(&zipped, &key);
        assert!(matches!(read_current(&sealed), (41, None)));
    }

    #[test]
    fn max_message_bytes_takes_a_byte_count_from_1_byte_to_256_mib() {
        let parse = |v: &[&str]| {
            let args = v.iter().map(OsString::from).collect();
            max_message(&Args::parse(args, &SPEC).unwrap())
        };
        assert_eq!(parse(&[]), Ok(1 << 20));
        assert_eq!(parse(&["--max-message-bytes", "128Ki"]), Ok(131_072));
        assert_eq!(parse(&["--max-message-bytes", "256000"]), Ok(256_000));
        assert_eq!(
            parse(&["--max-message-bytes", "0"]),
            Err("--max-message-bytes: \"0\" is not between 1 and 268435455 (MQTT's largest message)".into())
        );
        assert_eq!(
            parse(&["--max-message-bytes", "lots"]),
            Err("--max-message-bytes: \"lots\" is not a byte count: invalid quantity \"lots\": expected a number".into())
        );
    }
}
