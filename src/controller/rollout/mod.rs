//! `picolet rollout -f FILES --group G --broker URL …` (a staged rollout
//! of a group's next revision over MQTT), `rollout status --group G` and
//! `rollout abort --group G` (docs/fleet.md, "Staged rollouts"). The
//! decisions are [`decide`]'s; this is the thin shell around them: the
//! broker, the document, the output.
//!
//! Topics: the overrides `<prefix>/devices/<id>/groups/<G>/desired`, the
//! group's `<prefix>/groups/<G>/desired`, the progress
//! `<prefix>/rollouts/<G>` (all retained), and the devices' statuses and
//! online flags. Exit codes: 0 complete, 1 error, 2 rolled back, 3 aborted.

mod decide;

use super::cli::{self, Args, CONNECT_LIMIT, Common};
use super::client::{Client, ClientError};
use crate::cli::args::Spec;
use crate::clock::{rfc3339, wall_ms};
use crate::fleet::doc::{DesiredDoc, OnFailure, Rollout, compress, encode_json, seal_envelope};
use crate::fleet::topics::{IdKind, Topic, Topics, validate_id};
use crate::reactor;
use crate::vecmap::VecMap;
use decide::{Action, Count, DevState, Options, Phase, Progress, Report};
use serde_json::Value;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const SPEC: Spec<'static> = Spec {
    valued: &[
        "f",
        "filename",
        "group",
        "broker",
        "canary",
        "batch",
        "max-failures",
        "verify",
        "health-deadline",
        "sign-key",
        "selector",
        "max-message-bytes",
        "timeout",
        "topic-prefix",
        "ca",
        "cert",
        "key",
        "credentials",
    ],
    flags: &[],
};

/// The usage lines of the fleet's `picolet rollout` (its errors print
/// them; the help is `src/cli/help/rollout-fleet.txt`).
const ROLLOUT_USAGE: &str = "\
  picolet rollout -f FILE... --group G --broker URL [--canary N] [--batch N|P%]
                  [--max-failures N|P%] [--verify DURATION] [--health-deadline DURATION]
                  [--selector LABEL=VALUE]... [--sign-key FILE] [--max-message-bytes N]
                  [--timeout DURATION] [FLEET OPTIONS]
  picolet rollout status --group G --broker URL [FLEET OPTIONS]
  picolet rollout abort --group G --broker URL [--timeout DURATION] [FLEET OPTIONS]
";

/// How long `rollout abort` waits for a running controller to take the
/// request before it rolls back itself.
const ABORT_ACK: Duration = Duration::from_secs(5);

/// Whether a `rollout` command line is the fleet's (`-f`, `--group` or
/// `--broker`), not the local Deployments'.
pub fn is_fleet(args: &[OsString]) -> bool {
    args.iter().take_while(|a| *a != "--").any(|a| {
        let a = a.to_string_lossy();
        let name = a.split('=').next().unwrap_or("");
        matches!(name, "--filename" | "--group" | "--broker") || a.starts_with("-f")
    })
}

/// Whether `picolet help rollout …`/`rollout --help …` names a fleet form.
pub fn is_fleet_help(rest: &[String]) -> bool {
    let a: Vec<OsString> = rest.iter().map(OsString::from).collect();
    is_fleet(&a)
}

/// `picolet rollout` (fleet forms).
pub fn run(args: Vec<OsString>) -> Result<ExitCode, String> {
    let a = Args::parse(args, &SPEC)?;
    let group = a
        .one(&["group"])
        .ok_or("picolet rollout -f FILES needs --group G")?
        .to_string();
    validate_id(IdKind::Group, &group).map_err(|e| e.to_string())?;
    let c = cli::common(&a)?;
    let verb = match a.free.as_slice() {
        [] => None,
        [v] => Some(v.as_str()),
        _ => return Err(format!("usage:\n{}", ROLLOUT_USAGE)),
    };
    let start_only = [
        "f",
        "filename",
        "canary",
        "batch",
        "max-failures",
        "verify",
        "health-deadline",
        "sign-key",
        "selector",
        "max-message-bytes",
    ];
    if let Some(v) = verb {
        if !matches!(v, "status" | "abort") {
            return Err(format!(
                "unknown rollout command {v:?}: -f FILES, status or abort (with --group)"
            ));
        }
        if let Some(o) = start_only.iter().find(|o| a.has(&[o])) {
            let dash = if o.len() == 1 { "-" } else { "--" };
            return Err(format!("rollout {v} does not take {dash}{o}"));
        }
    }
    let limit = match a.one(&["timeout"]) {
        Some(t) => secs("timeout", t)?,
        None => 0,
    };
    let limit = (limit > 0).then(|| Instant::now() + Duration::from_secs(limit));
    let sh = Shell::new(c, group);
    match verb {
        None => start(&a, sh, limit),
        Some("status") => status(sh),
        _ => abort(sh, limit),
    }
}

/// `60`, `60s`, `5m`, `1h` → seconds.
fn secs(flag: &str, s: &str) -> Result<u64, String> {
    let (n, unit) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        _ => (s, 1),
    };
    n.parse::<u64>()
        .map(|n| n * unit)
        .map_err(|_| format!("--{flag} {s:?}: expected a duration (90, 90s, 5m, 1h)"))
}

/// `--selector k=v` (repeatable; `a=b,c=d` too).
fn selectors(a: &Args) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for s in a.all(&["selector"]) {
        for kv in s.split(',') {
            match kv.split_once('=') {
                Some((k, v)) if !k.is_empty() && !k.ends_with('!') => {
                    out.push((k.to_string(), v.to_string()))
                }
                _ => {
                    return Err(format!(
                        "--selector {kv:?}: expected LABEL=VALUE (node labels)"
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// The connection, the topics and what the broker holds.
struct Shell {
    c: Common,
    group: String,
    progress_topic: String,
    group_topic: String,
    devices: VecMap<String, Report>,
    current: Option<Vec<u8>>,
    progress: Option<Progress>,
}

impl Shell {
    fn new(c: Common, group: String) -> Shell {
        Shell {
            progress_topic: format!("{}/rollouts/{group}", c.topics.prefix()),
            group_topic: c.topics.group_desired(&group),
            c,
            group,
            devices: VecMap::new(),
            current: None,
            progress: None,
        }
    }

    fn override_topic(&self, id: &str) -> String {
        override_topic(&self.c.topics, id, &self.group)
    }

    /// Connects and reads the retained messages.
    async fn connect(&mut self) -> Result<Client, String> {
        let mut client = Client::connect(&self.c.opts, CONNECT_LIMIT)
            .await
            .map_err(err)?;
        client.subscribe(vec![
            self.group_topic.clone(),
            self.progress_topic.clone(),
            self.c.topics.all_status_filter(),
            self.c.topics.all_online_filter(),
        ]);
        client
            .sync(self.c.topics.prefix(), CONNECT_LIMIT)
            .await
            .map_err(err)?;
        while let Some(m) = client.next_message(Instant::now()).await.map_err(err)? {
            self.take(&m.topic, &m.payload)?;
        }
        Ok(client)
    }

    /// Takes one message in; a progress message is returned.
    fn take(&mut self, topic: &str, payload: &[u8]) -> Result<Option<Progress>, String> {
        if topic == self.group_topic {
            self.current = (!payload.is_empty()).then(|| payload.to_vec());
        } else if topic == self.progress_topic {
            let p = match payload {
                [] => None,
                _ => Some(Progress::from_json(payload).map_err(|e| {
                    format!("{topic}: unreadable rollout progress ({e}); clear it to start over")
                })?),
            };
            self.progress = p.clone();
            return Ok(p);
        } else {
            match self.c.topics.parse(topic) {
                Some(Topic::Online(id)) if !payload.is_empty() => {
                    self.devices.entry(id).or_default().online = Some(payload == b"true")
                }
                Some(Topic::Status(id)) if !payload.is_empty() => {
                    let v: Value = serde_json::from_slice(payload).unwrap_or_default();
                    let seen = self.devices.entry(id).or_default();
                    seen_status(seen, &v, &self.group);
                }
                _ => {}
            }
        }
        Ok(None)
    }
}

fn override_topic(t: &Topics, id: &str, group: &str) -> String {
    t.group_override(id, group)
}

fn err(e: ClientError) -> String {
    e.to_string()
}

/// Reads what a [`Report`] holds of a status document (`observedRevision`,
/// `deployments`, `node.labels`).
fn seen_status(seen: &mut Report, v: &Value, group: &str) {
    seen.observed = v["observedRevision"]["groups"][group].as_u64();
    let source = format!("group/{group}");
    let entry = v["deployments"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["source"] == source.as_str()));
    seen.deployment =
        entry.and_then(|d| Some((d["revision"].as_u64()?, d["state"].as_str()?.to_string())));
    seen.why = entry
        .and_then(|d| d["reason"].as_str().or(d["message"].as_str()))
        .unwrap_or("")
        .to_string();
    seen.labels = v["node"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
}

/// The document's JSON with the `rollout` block of `o` set.
fn with_rollout(doc: &DesiredDoc, o: &Options) -> Vec<u8> {
    let secs = |s: u64| u32::try_from(s).unwrap_or(u32::MAX);
    let mut doc = doc.clone();
    doc.rollout = Some(Rollout {
        health_deadline_seconds: secs(o.health_deadline_seconds),
        verify_seconds: secs(o.verify_seconds),
        on_failure: OnFailure::Rollback,
    });
    encode_json(&doc)
}

fn start(a: &Args, mut sh: Shell, limit: Option<Instant>) -> Result<ExitCode, String> {
    let files = a.all(&["f", "filename"]);
    if files.is_empty() {
        return Err("picolet rollout --group G needs -f FILE (or status, abort)".into());
    }
    let count = |flag: &str, default: &str| Count::parse(flag, a.one(&[flag]).unwrap_or(default));
    let (batch, max_failures) = (count("batch", "10%")?, count("max-failures", "5%")?);
    let canary = match a.one(&["canary"]) {
        Some(n) => n
            .parse()
            .map_err(|_| format!("--canary {n:?}: not a number"))?,
        None => 1,
    };
    let opt_secs = |flag: &str, default: u64| a.one(&[flag]).map_or(Ok(default), |v| secs(flag, v));
    let options = Options {
        canary,
        batch: a.one(&["batch"]).unwrap_or("10%").to_string(),
        max_failures: a.one(&["max-failures"]).unwrap_or("5%").to_string(),
        verify_seconds: opt_secs("verify", 60)?,
        health_deadline_seconds: opt_secs("health-deadline", 300)?,
        selector: a.all(&["selector"]).iter().map(|s| s.to_string()).collect(),
    };
    if options.verify_seconds >= options.health_deadline_seconds {
        return Err(format!(
            "--verify {}s must be shorter than --health-deadline {}s",
            options.verify_seconds, options.health_deadline_seconds
        ));
    }
    let sel = selectors(a)?;
    let key = cli::sign_key(a)?;
    let max_message = cli::max_message(a)?;
    let loaded = cli::load_pods(&files)?;
    reactor::block_on(async {
        let mut client = sh.connect().await?;
        let current = sh.current.as_deref().map(cli::read_current);
        let (cur_rev, cur_doc) = current.unwrap_or((0, None));
        let plan = cli::merge_files(cur_doc.as_ref(), loaded, false)?;
        let g = sh.group.clone();
        let make = |revision: u64| {
            let mut doc = cur_doc.clone().unwrap_or_default();
            doc.revision = revision;
            doc.pods = plan.pods.clone();
            if let Some(o) = &plan.objects {
                doc.objects = o.clone();
            }
            if let Some(w) = &plan.workloads {
                doc.workloads = w.clone();
            }
            let json = with_rollout(&doc, &options);
            let digest = crate::image::Digest::of_bytes(&json).hex().to_string();
            (json, digest)
        };
        let in_flight = sh.progress.clone().filter(|p| !p.phase.done());
        let (mut p, json, mut acts) = match in_flight {
            Some(p) => {
                let (json, digest) = make(p.revision);
                if digest != p.digest || p.options != options {
                    client.disconnect().await;
                    let what = if p.options != options {
                        "different options"
                    } else {
                        "different files"
                    };
                    return Err(format!(
                        "group {g}: the rollout of revision {} is in progress (phase {:?}, started {}); {what} cannot resume it: run it with the same files and options, or abort it first (picolet rollout abort --group {g})",
                        p.revision, p.phase, p.started
                    ));
                }
                println!(
                    "group {g}: resuming the rollout of revision {} (phase {:?}, batch {} of {}, {} Healthy)",
                    p.revision,
                    p.phase,
                    p.batch,
                    p.batches().len(),
                    p.count(DevState::Healthy)
                );
                let acts = decide::resume(&p);
                (p, json, acts)
            }
            None => {
                let at = match &cur_doc {
                    Some(d) => format!("revision {}", d.revision),
                    None => "no document".into(),
                };
                if plan.is_noop() {
                    client.disconnect().await;
                    println!(
                        "group {g}: no change ({at} on {} has these pods already); nothing to roll out",
                        sh.group_topic
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                print!(
                    "group {g}: changes to {at} on {}:\n{}",
                    sh.group_topic,
                    plan.render()
                );
                let observed = sh
                    .devices
                    .values()
                    .flat_map(|s| {
                        let d = s.deployment.as_ref().map(|d| d.0);
                        s.observed.into_iter().chain(d)
                    })
                    .max();
                let last = sh.progress.as_ref().map_or(0, |p| p.revision);
                let revision = cli::next_revision(cur_rev.max(last), observed)?;
                let targets: Vec<String> = sh
                    .devices
                    .iter()
                    .filter(|(_, s)| {
                        s.observed.is_some() && sel.iter().all(|(k, v)| s.labels.get(k) == Some(v))
                    })
                    .map(|(id, _)| id.clone())
                    .collect();
                if targets.is_empty() {
                    client.disconnect().await;
                    return Err(format!(
                        "group {g}: no device reports a revision of the group{}; nothing to roll out (picolet apply --group publishes to the group at once)",
                        if sel.is_empty() {
                            ""
                        } else {
                            " and matches --selector"
                        }
                    ));
                }
                let (json, digest) = make(revision);
                let p = Progress::new(
                    &g,
                    revision,
                    cur_rev,
                    digest,
                    targets,
                    options.clone(),
                    batch,
                    max_failures,
                    rfc3339(wall_ms()),
                );
                println!(
                    "group {g}: rolling out revision {revision} to {} devices in {} batches (canary {}, batch {}, stop at {} failed)",
                    p.devices.len(),
                    p.batches().len(),
                    p.options.canary.min(p.devices.len()),
                    p.batch_size,
                    p.failure_limit
                );
                (p, json, Vec::new())
            }
        };
        // Compressed (then signed) as `apply` publishes, and capped the same.
        let compressed = compress(&json);
        let payload = match &key {
            Some(k) => seal_envelope(&compressed, k),
            None => compressed,
        };
        if payload.len() > max_message {
            return Err(format!(
                "group {}: revision {} is a message of {} bytes (compressed), more than --max-message-bytes {max_message}; nothing published",
                sh.group,
                p.revision,
                payload.len()
            ));
        }
        let r = drive(
            &mut client,
            &mut sh,
            &mut p,
            Some(&payload),
            &mut acts,
            limit,
        )
        .await;
        client.disconnect().await;
        let phase = r?;
        Ok(summary(&sh, &p, phase, false))
    })
}

/// Prints how it ended; the exit code.
fn summary(sh: &Shell, p: &Progress, phase: Phase, by_abort_command: bool) -> ExitCode {
    let g = &sh.group;
    for d in &p.devices {
        if d.state == DevState::NotReverted {
            eprintln!(
                "warning: device {}: did not report revision {} again in time{}",
                d.id,
                p.previous,
                if d.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", d.reason)
                }
            );
        }
    }
    match phase {
        Phase::Complete => {
            println!(
                "group {g}: revision {} rolled out to {} devices ({} Healthy, {} Failed) and published to {}",
                p.revision,
                p.devices.len(),
                p.count(DevState::Healthy),
                p.count(DevState::Failed),
                sh.group_topic
            );
            ExitCode::SUCCESS
        }
        Phase::RolledBack => {
            let failed = p.devices.iter().filter(|d| !d.reason.is_empty()).count();
            println!(
                "group {g}: rolled back revision {}: {failed} failed (--max-failures {}); {} devices back at revision {}",
                p.revision,
                p.options.max_failures,
                p.count(DevState::Reverted),
                p.previous
            );
            ExitCode::from(2)
        }
        _ => {
            println!(
                "group {g}: rollout of revision {} aborted; {} devices back at revision {}",
                p.revision,
                p.count(DevState::Reverted),
                p.previous
            );
            ExitCode::from(if by_abort_command { 0 } else { 3 })
        }
    }
}

/// Runs the decisions until the rollout ends (its final phase), carrying
/// out `acts` first. `payload`: the document (none for `rollout abort`,
/// which only clears).
async fn drive(
    client: &mut Client,
    sh: &mut Shell,
    p: &mut Progress,
    payload: Option<&[u8]>,
    acts: &mut Vec<Action>,
    limit: Option<Instant>,
) -> Result<Phase, String> {
    let mut out = Out::new();
    loop {
        acts.extend(decide::step(p, &sh.devices, wall_ms()));
        for a in acts.drain(..) {
            let (topic, bytes) = match a {
                Action::Done(phase) => {
                    out.show(sh, p);
                    return Ok(phase);
                }
                Action::Save => (sh.progress_topic.clone(), p.to_json()),
                Action::Clear(d) => (sh.override_topic(&d), Vec::new()),
                Action::Publish(d) => (sh.override_topic(&d), doc(payload)?),
                Action::PublishGroup => (sh.group_topic.clone(), doc(payload)?),
            };
            client
                .publish(&topic, bytes, true, CONNECT_LIMIT)
                .await
                .map_err(err)?;
        }
        out.show(sh, p);
        if limit.is_some_and(|l| Instant::now() >= l) {
            out.end();
            let next = if p.phase == Phase::Running {
                "run the same command again to resume it, or picolet rollout abort --group"
            } else {
                "picolet rollout abort --group"
            };
            return Err(format!(
                "timed out; the rollout of revision {} stays in progress (phase {:?}, batch {} of {}): {next} {} finishes it",
                p.revision,
                p.phase,
                p.batch,
                p.batches().len(),
                sh.group
            ));
        }
        let step = Instant::now() + Duration::from_secs(1);
        let step = limit.map_or(step, |l| l.min(step));
        while let Some(m) = client.next_message(step).await.map_err(err)? {
            if let Some(q) = sh.take(&m.topic, &m.payload)? {
                if q.phase == Phase::AbortRequested && q.revision == p.revision {
                    p.request_abort();
                }
            }
        }
    }
}

fn doc(payload: Option<&[u8]>) -> Result<Vec<u8>, String> {
    payload
        .map(<[u8]>::to_vec)
        .ok_or_else(|| "rollout abort cannot publish a document".to_string())
}

/// The progress output: a table redrawn in place on a TTY, else a line
/// per change (`device pi-3: Healthy (revision 8)`).
struct Out {
    tty: bool,
    drawn: usize,
    /// The table drawn last.
    text: String,
    last: VecMap<String, (DevState, String)>,
    phase: Option<Phase>,
}

impl Out {
    fn new() -> Out {
        Out {
            tty: cli::isatty_stdout(),
            drawn: 0,
            text: String::new(),
            last: VecMap::new(),
            phase: None,
        }
    }

    fn show(&mut self, sh: &Shell, p: &Progress) {
        if self.tty {
            let text = table(sh, p);
            if text == self.text {
                return;
            }
            if self.drawn > 0 {
                print!("\x1b[{}A\x1b[J", self.drawn);
            }
            self.drawn = text.lines().count();
            print!("{text}");
            self.text = text;
            let _ = std::io::stdout().flush();
            return;
        }
        // A device failed and cleared in one step: its failure first.
        for d in &p.devices {
            let last = self.last.get(&d.id).map(|l| l.0);
            if d.state == DevState::Reverting
                && !d.reason.is_empty()
                && !matches!(last, Some(DevState::Failed | DevState::Reverting))
            {
                println!(
                    "device {}: Failed (revision {}: {})",
                    d.id, p.revision, d.reason
                );
            }
        }
        if self.phase != Some(p.phase) {
            if self.phase.is_some() {
                let failed = p.devices.iter().filter(|d| !d.reason.is_empty()).count();
                match p.phase {
                    Phase::RollingBack => println!(
                        "group {}: rolling back: {failed} failed (--max-failures {})",
                        sh.group, p.options.max_failures
                    ),
                    Phase::Aborting => {
                        println!("group {}: abort requested: rolling back", sh.group)
                    }
                    other => println!("group {}: {other:?}", sh.group),
                }
            }
            self.phase = Some(p.phase);
        }
        for d in &p.devices {
            let now = (d.state, d.reason.clone());
            if self.last.get(&d.id) != Some(&now) {
                if d.state != DevState::Pending {
                    println!("device {}: {}", d.id, line(p, d));
                }
                self.last.insert(d.id.clone(), now);
            }
        }
    }

    /// Leaves the table as it is (the next output goes below).
    fn end(&mut self) {
        self.drawn = 0;
    }
}

/// `Healthy (revision 8)`, `Failed (revision 8: FailedRollbackComplete)`…
fn line(p: &Progress, d: &decide::Device) -> String {
    let why = if d.reason.is_empty() {
        String::new()
    } else {
        format!(": {}", d.reason)
    };
    let (state, rev) = (format!("{:?}", d.state), p.revision);
    match d.state {
        DevState::Reverting => format!("{state} (to revision {}{why})", p.previous),
        DevState::Reverted => format!("{state} (revision {}{why})", p.previous),
        DevState::NotReverted => format!("{state} (still revision {rev}{why})"),
        _ => format!("{state} (revision {rev}{why})"),
    }
}

/// The progress header and a row per device: its state in the rollout
/// and what it reports.
fn table(sh: &Shell, p: &Progress) -> String {
    let rows: Vec<Vec<String>> = p
        .devices
        .iter()
        .map(|d| {
            let seen = sh.devices.get(&d.id);
            let reported = seen.and_then(|s| {
                let (r, st) = s.deployment.as_ref()?;
                let why = match s.why.as_str() {
                    "" => String::new(),
                    w => format!(": {w}"),
                };
                Some(format!("{st} (revision {r}{why})"))
            });
            let reported = reported.unwrap_or_else(|| "-".into());
            let online = seen
                .and_then(|s| s.online)
                .map_or("unknown".into(), |o| o.to_string());
            vec![
                d.id.clone(),
                format!("{:?}", d.state),
                if d.reason.is_empty() {
                    "-".into()
                } else {
                    d.reason.clone()
                },
                reported,
                online,
            ]
        })
        .collect();
    let head = format!(
        "group {}: revision {} (from {}), {:?}, batch {} of {}, started {}\n",
        sh.group,
        p.revision,
        p.previous,
        p.phase,
        p.batch,
        p.batches().len(),
        p.started
    );
    head + &crate::api::print::table(&["DEVICE", "STATE", "REASON", "REPORTED", "ONLINE"], &rows)
}

/// `picolet rollout status --group G`.
fn status(mut sh: Shell) -> Result<ExitCode, String> {
    reactor::block_on(async {
        let client = sh.connect().await?;
        client.disconnect().await;
        Ok::<_, String>(())
    })?;
    let Some(p) = sh.progress.clone() else {
        eprintln!(
            "No rollout of group {} ({} holds none).",
            sh.group, sh.progress_topic
        );
        return Ok(ExitCode::from(1));
    };
    let o = &p.options;
    println!(
        "{}options: --canary {} --batch {} --max-failures {} --verify {}s --health-deadline {}s{}",
        table(&sh, &p),
        o.canary,
        o.batch,
        o.max_failures,
        o.verify_seconds,
        o.health_deadline_seconds,
        o.selector
            .iter()
            .map(|s| format!(" --selector {s}"))
            .collect::<String>()
    );
    Ok(ExitCode::SUCCESS)
}

/// `picolet rollout abort --group G`: asks the running controller to roll
/// back (its progress phase `AbortRequested`); without an answer within
/// [`ABORT_ACK`] (no controller running), rolls back here.
fn abort(mut sh: Shell, limit: Option<Instant>) -> Result<ExitCode, String> {
    reactor::block_on(async {
        let mut client = sh.connect().await?;
        let g = sh.group.clone();
        let Some(mut p) = sh.progress.clone().filter(|p| !p.phase.done()) else {
            client.disconnect().await;
            return Err(format!("group {g}: no rollout in progress"));
        };
        let mut acked = false;
        if p.phase == Phase::Running {
            p.request_abort();
            let bytes = p.to_json();
            client
                .publish(&sh.progress_topic, bytes, true, CONNECT_LIMIT)
                .await
                .map_err(err)?;
            let until = Instant::now() + ABORT_ACK;
            while let Some(m) = client.next_message(until).await.map_err(err)? {
                if let Some(q) = sh.take(&m.topic, &m.payload)? {
                    if matches!(q.phase, Phase::Aborting | Phase::Aborted) {
                        acked = true;
                        p = q;
                        break;
                    }
                }
            }
        }
        let phase = if acked {
            println!(
                "group {g}: the running controller is rolling back revision {}",
                p.revision
            );
            let mut out = Out::new();
            loop {
                out.show(&sh, &p);
                if p.phase.done() {
                    break p.phase;
                }
                if limit.is_some_and(|l| Instant::now() >= l) {
                    client.disconnect().await;
                    return Err(format!("timed out; the rollback is in phase {:?}", p.phase));
                }
                let step = Instant::now() + Duration::from_secs(1);
                while let Some(m) = client.next_message(step).await.map_err(err)? {
                    if let Some(q) = sh.take(&m.topic, &m.payload)? {
                        p = q;
                    }
                }
            }
        } else {
            println!(
                "group {g}: no controller answered; rolling back revision {} here",
                p.revision
            );
            let mut acts = decide::resume(&p);
            let r = drive(&mut client, &mut sh, &mut p, None, &mut acts, limit).await;
            client.disconnect().await;
            r?
        };
        Ok(summary(&sh, &p, phase, true))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn fleet_forms_are_told_from_the_local_deployment_ones() {
        for fleet in [
            &["-f", "x.yaml", "--group", "g"][..],
            &["status", "--group=g", "--broker", "mqtt://h"],
            &["abort", "--broker=mqtt://h"],
            &["--filename", "a"],
            &["-fa.yaml"],
        ] {
            assert!(is_fleet(&os(fleet)), "{fleet:?}");
        }
        for local in [
            &["status", "deployment/web"][..],
            &["undo", "deploy/web", "--to-revision", "2", "-n", "x"],
            &["status", "deploy/web", "--", "--group"],
        ] {
            assert!(!is_fleet(&os(local)), "{local:?}");
        }
    }

    #[test]
    fn the_table_shows_each_device_its_reason_and_what_it_reports() {
        let c = cli::common(&Args::parse(os(&["--broker", "mqtt://h"]), &SPEC).unwrap()).unwrap();
        let mut sh = Shell::new(c, "g".into());
        let st = |obs, dep: (u64, &str)| {
            serde_json::to_vec(
                &serde_json::json!({"observedRevision": {"groups": {"g": obs}},
                "deployments": [{"source": "group/g", "revision": dep.0, "state": dep.1}]}),
            )
            .unwrap()
        };
        sh.take("picolet/devices/a/status", &st(8, (8, "Healthy")))
            .unwrap();
        sh.take(
            "picolet/devices/b/status",
            &st(8, (8, "FailedRollbackComplete")),
        )
        .unwrap();
        sh.take("picolet/devices/b/online", b"false").unwrap();
        let o = Options {
            canary: 1,
            batch: "1".into(),
            max_failures: "2".into(),
            verify_seconds: 1,
            health_deadline_seconds: 9,
            selector: vec![],
        };
        let ids = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let mut p = Progress::new(
            "g",
            8,
            7,
            "d".into(),
            ids,
            o,
            Count::N(1),
            Count::N(2),
            "t".into(),
        );
        p.batch = 2;
        p.devices[0].state = DevState::Healthy;
        (p.devices[1].state, p.devices[1].reason) = (DevState::Failed, "Offline".into());
        assert_eq!(p.devices[2].id, "c");
        let t = table(&sh, &p);
        let rows: Vec<Vec<&str>> = t
            .lines()
            .map(|l| {
                l.split("   ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect();
        assert_eq!(
            rows[0],
            ["group g: revision 8 (from 7), Running, batch 2 of 3, started t"]
        );
        assert_eq!(rows[1], ["DEVICE", "STATE", "REASON", "REPORTED", "ONLINE"]);
        assert_eq!(
            rows[2],
            ["a", "Healthy", "-", "Healthy (revision 8)", "unknown"]
        );
        assert_eq!(
            rows[3],
            [
                "b",
                "Failed",
                "Offline",
                "FailedRollbackComplete (revision 8)",
                "false"
            ]
        );
        assert_eq!(rows[4], ["c", "Pending", "-", "-", "unknown"]);
        assert_eq!(line(&p, &p.devices[1]), "Failed (revision 8: Offline)");
        p.devices[1].state = DevState::Reverted;
        assert_eq!(line(&p, &p.devices[1]), "Reverted (revision 7: Offline)");
        // A progress message is returned to the loop; a bad one is an error.
        assert_eq!(
            sh.take("picolet/rollouts/g", &p.to_json()).unwrap(),
            Some(p)
        );
        let e = sh.take("picolet/rollouts/g", b"{").unwrap_err();
        assert!(e.contains("unreadable rollout progress"), "{e}");
    }

    #[test]
    fn the_fleet_form_has_its_own_help() {
        let h = |rest: &[&str]| {
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            crate::cli::help::text("rollout", &rest).unwrap()
        };
        let fleet = h(&["fleet"]);
        assert!(fleet.starts_with("Usage:\n  picolet rollout") && fleet.contains(ROLLOUT_USAGE));
        assert_eq!(h(&["--group", "g", "--help"]), fleet);
        assert_eq!(h(&["-f", "x.yaml"]), fleet);
        let local = h(&["status", "deploy/web"]);
        assert!(local.contains("picolet help rollout fleet"), "{local}");
        for opt in [
            "--canary",
            "--batch",
            "--max-failures",
            "--verify",
            "--health-deadline",
            "--selector",
            "--sign-key",
            "--timeout",
            "--topic-prefix",
            "status",
            "abort",
        ] {
            assert!(fleet.contains(opt), "{opt}");
        }
        assert_eq!(
            run(os(&["--group", "g", "--help"])).unwrap_err(),
            crate::cli::args::HELP_REQUESTED
        );
    }

    #[test]
    fn bad_command_lines_are_refused_naming_the_problem() {
        let e = |a: &[&str]| run(os(a)).unwrap_err();
        assert!(e(&["-f", "x", "--broker", "mqtt://h"]).contains("needs --group G"));
        assert!(e(&["-f", "x", "--group", "a/b", "--broker", "mqtt://h"]).contains("group name"));
        assert!(e(&["--group", "g"]).contains("--broker"));
        let bad = |extra: &[&str]| {
            let mut a = vec!["-f", "x", "--group", "g", "--broker", "mqtt://h"];
            a.extend_from_slice(extra);
            e(&a)
        };
        assert!(bad(&["--batch", "0"]).contains("--batch 0: must be at least 1"));
        assert!(bad(&["--max-failures", "x%"]).contains("--max-failures \"x%\""));
        assert!(bad(&["--canary", "-1"]).contains("--canary"));
        assert!(bad(&["--verify", "10m", "--health-deadline", "5m"]).contains("shorter"));
        assert!(bad(&["--verify", "soon"]).contains("--verify \"soon\""));
        assert!(bad(&["--timeout", "1d"]).contains("--timeout"));
        assert!(bad(&["--selector", "board"]).contains("--selector \"board\""));
        assert!(bad(&["--prune"]).contains("unknown option --prune"));
        let e2 = e(&[
            "status", "--group", "g", "--broker", "mqtt://h", "--canary", "1",
        ]);
        assert_eq!(e2, "rollout status does not take --canary");
        let e3 = e(&["pause", "--group", "g", "--broker", "mqtt://h"]);
        assert!(e3.contains("unknown rollout command \"pause\""), "{e3}");
        assert!(e(&["--group", "g", "--broker", "mqtt://h"]).contains("needs -f FILE"));
    }

    #[test]
    fn durations_and_selectors_parse() {
        assert_eq!(secs("verify", "90"), Ok(90));
        assert_eq!(secs("verify", "90s"), Ok(90));
        assert_eq!(secs("verify", "5m"), Ok(300));
        assert_eq!(secs("verify", "1h"), Ok(3600));
        let a = Args::parse(
            os(&["--selector", "board=rpi5,zone=a", "--selector", "x="]),
            &SPEC,
        )
        .unwrap();
        assert_eq!(
            selectors(&a).unwrap(),
            [
                ("board".into(), "rpi5".into()),
                ("zone".into(), "a".into()),
                ("x".into(), String::new())
            ]
        );
        let a = Args::parse(os(&["--selector", "a!=b"]), &SPEC).unwrap();
        assert!(selectors(&a).is_err());
    }

    #[test]
    fn the_status_gives_the_report_of_the_group_and_the_node_labels() {
        let v: Value = serde_json::from_str(
            r#"{"observedRevision":{"groups":{"g":7,"h":2}},
                "deployments":[{"source":"group/h","revision":2,"state":"Healthy"},
                               {"source":"group/g","revision":8,"state":"Failed","reason":"CrashLoopBackOff"}],
                "node":{"labels":{"board":"rpi5"}}}"#,
        )
        .unwrap();
        let mut s = Report::default();
        seen_status(&mut s, &v, "g");
        assert_eq!(s.observed, Some(7));
        assert_eq!(s.deployment, Some((8, "Failed".into())));
        assert_eq!(s.why, "CrashLoopBackOff");
        assert_eq!(s.labels["board"], "rpi5");
        seen_status(&mut s, &serde_json::json!({}), "g");
        assert_eq!(s.observed, None);
        assert_eq!(s.deployment, None);
    }

    #[test]
    fn the_document_carries_the_rollout_block_and_the_topics_are_named() {
        let doc = DesiredDoc {
            revision: 8,
            ..Default::default()
        };
        let o = Options {
            canary: 1,
            batch: "2".into(),
            max_failures: "1".into(),
            verify_seconds: 20,
            health_deadline_seconds: 90,
            selector: vec![],
        };
        let v: Value = serde_json::from_slice(&with_rollout(&doc, &o)).unwrap();
        assert_eq!(v["revision"], 8);
        assert_eq!(
            v["rollout"],
            serde_json::json!({"healthDeadlineSeconds": 90, "verifySeconds": 20, "onFailure": "Rollback"})
        );
        assert_eq!(
            override_topic(&Topics::default(), "pi-1", "g"),
            "picolet/devices/pi-1/groups/g/desired"
        );
    }
}
