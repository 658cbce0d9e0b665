//! Registry mirrors and credentials from the fleet (issue 9 item 6): a
//! desired document's `registries` block, sent through a real mosquitto,
//! drives the agent's pulls from real registries (Debian's
//! `docker-registry`, on loopback; images pushed with `skopeo copy`). The
//! agents have no registries file and no auth.json of their own.
//!
//! Processes: each registry runs under a small `sh` watchdog that kills it
//! (by PID) and removes its files when this test process exits.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};
use support::fleet::*;
use support::*;

const USER: &str = "puller";
const PASSWORD: &str = "s3cret-pull";
/// bcrypt (cost 4) of PASSWORD: the registry's htpasswd needs bcrypt.
const HTPASSWD_HASH: &str = "$2b$04$biWq1tRXw2YEFqr5K1o8NONPm/oRiCvNdsczhU9vJMY/u1/EdO4ke";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `docker-registry serve` with `config` (`{port}` replaced) under
/// a watchdog, and waits until it listens. Returns the port.
fn registry(dir: &Path, name: &str, config: &str) -> (u16, Child) {
    let port = free_port();
    let cfg = dir.join(format!("{name}.yml"));
    std::fs::write(&cfg, config.replace("{port}", &port.to_string())).unwrap();
    let watchdog = Command::new("sh")
        .args([
            "-c",
            "docker-registry serve \"$1\" >\"$2\" 2>&1 & r=$!; \
             while kill -0 \"$3\" 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.5; done; \
             kill $r 2>/dev/null; wait $r; [ -n \"$4\" ] && rm -rf \"$4\"",
            "sh",
        ])
        .arg(&cfg)
        .arg(dir.join(format!("{name}.log")))
        .arg(std::process::id().to_string())
        .arg(if name == "plain" {
            dir.as_os_str()
        } else {
            "".as_ref()
        })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (apt-get install docker-registry)");
    wait_for(20, &format!("registry {name} on port {port}"), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (port, watchdog)
}

/// A plain-HTTP registry with busybox:1, and a read-only TLS (test CA) +
/// htpasswd one on the same storage.
struct Fixture {
    dir: PathBuf,
    plain: u16,
    secure: u16,
    _watchdogs: Vec<Child>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("picolet-fleet-reg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let storage = dir.join("storage");
        let base = format!(
            "version: 0.1\nlog: {{level: info, accesslog: {{disabled: false}}}}\n\
             storage:\n  filesystem: {{rootdirectory: {}}}\n",
            storage.display()
        );
        let (plain, w1) = registry(
            &dir,
            "plain",
            &format!("{base}http: {{addr: \"127.0.0.1:{{port}}\"}}\n"),
        );
        wait_for(20, "the plain registry answering", || {
            let mut s = TcpStream::connect(("127.0.0.1", plain)).ok()?;
            s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").ok()?;
            let mut r = String::new();
            s.read_to_string(&mut r).ok()?;
            r.starts_with("HTTP/1.").then_some(())
        });
        run(Command::new("skopeo")
            .args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
            .arg(format!(
                "oci:{}:picolet.test/busybox:1",
                images().join("busybox-oci").display()
            ))
            .arg(format!("docker://127.0.0.1:{plain}/busybox:1")));
        let sh = format!(
            "set -e; cd {d}; \
             openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=picolet-test-ca 2>/dev/null; \
             openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null; \
             printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > ext; \
             openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext 2>/dev/null",
            d = dir.display()
        );
        run(Command::new("sh").args(["-c", &sh]));
        std::fs::write(dir.join("htpasswd"), format!("{USER}:{HTPASSWD_HASH}\n")).unwrap();
        let (secure, w2) = registry(
            &dir,
            "secure",
            &format!(
                "{base}  maintenance: {{readonly: {{enabled: true}}, uploadpurging: {{enabled: false}}}}\n\
                 http:\n  addr: \"127.0.0.1:{{port}}\"\n  tls: {{certificate: {d}/srv.pem, key: {d}/srv.key}}\n\
                 auth:\n  htpasswd: {{realm: picolet-test, path: {d}/htpasswd}}\n",
                d = dir.display()
            ),
        );
        Fixture {
            dir,
            plain,
            secure,
            _watchdogs: vec![w1, w2],
        }
    })
}

/// A fleet agent with no registries file and no auth.json of its own.
fn agent(url: &str, device: &str) -> Agent {
    let mut a = Agent::prepare(
        None,
        &["--broker", url, "--device-id", device, "--keepalive", "2"],
    );
    let none = a.dir.path().join("none");
    a.env = vec![
        (
            "PICOLET_REGISTRIES_CONFIG".into(),
            none.join("registries.yaml").display().to_string(),
        ),
        (
            "PICOLET_AUTH_FILE".into(),
            none.join("auth.json").display().to_string(),
        ),
    ];
    a.spawn();
    a
}

fn pod(name: &str, image: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "100000"]}]}})
}

fn publish(url: &str, device: &str, revision: u64, pods: Vec<Value>, registries: Value) {
    let doc = json!({"apiVersion": "picolet.io/v1", "kind": "DeviceState",
        "revision": revision, "pods": pods, "registries": registries});
    publish_raw(
        url,
        &format!("picolet/devices/{device}/desired"),
        serde_json::to_vec(&doc).unwrap(),
    );
}

fn observed(url: &str, device: &str, revision: u64) {
    wait_status(
        url,
        device,
        30,
        &format!("revision {revision} observed"),
        |s| s["observedRevision"]["device"] == revision,
    );
}

/// Files the pulls left in the run dir (there should be none).
fn pull_files(a: &Agent) -> Vec<String> {
    std::fs::read_dir(a.run_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pull-"))
        .collect()
}

#[test]
fn a_documents_mirror_serves_an_image_named_after_an_unreachable_registry() {
    if !root_or_skip() {
        return;
    }
    let f = fixture();
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let a = agent(&url, "mir1");
    // Nothing listens on port 1: the image's own registry is unreachable.
    let image = "127.0.0.1:1/fleet/busybox:1";
    let mirrors = json!({"mirrors": {"127.0.0.1:1": {
        "endpoint": [format!("http://127.0.0.1:{}", f.plain)],
        "rewrite": {"^fleet/(.*)": "$1"}}}});
    publish(&url, "mir1", 1, vec![pod("web", image)], mirrors.clone());
    let started = started_at(&a, "web");
    let log = std::fs::read_to_string(f.dir.join("plain.log")).unwrap();
    assert!(
        log.contains("GET /v2/busybox/manifests/1"),
        "the mirror served it"
    );
    assert!(pull_files(&a).is_empty(), "{:?}", pull_files(&a));
    // A new block alone, by `picolet apply --registries` (no -f: the pods
    // stay): pull settings apply to the next pull, the pod is not
    // restarted. The diff names host keys, never a value.
    let file = a.dir.path().join("registries.yaml");
    let more = format!(
        "mirrors:\n  \"127.0.0.1:1\":\n    endpoint: [\"http://127.0.0.1:{}\"]\n    \
         rewrite: {{\"^fleet/(.*)\": \"$1\"}}\nconfigs:\n  \"127.0.0.1:1\":\n    \
         auth: {{username: u, password: hunter2}}\n",
        f.plain
    );
    std::fs::write(&file, more).unwrap();
    let file = file.to_str().unwrap();
    let target = ("--device", "mir1");
    let out = ok(apply(
        &url,
        target,
        &[],
        &["--registries", file, "--timeout", "0"],
    ));
    assert!(
        out.contains("~ registries (mirrors: 127.0.0.1:1; configs: 127.0.0.1:1)\n  1 unchanged"),
        "{out}"
    );
    assert!(out.contains("published revision 2 (1 pods)"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    observed(&url, "mir1", 2);
    // The same block again: nothing to publish.
    let out = ok(apply(
        &url,
        target,
        &[],
        &["--registries", file, "--timeout", "0"],
    ));
    assert!(out.contains("no change"), "{out}");
    // apply checks the block as the devices do, and publishes nothing.
    let bad = a.dir.path().join("bad.yaml");
    std::fs::write(&bad, "configs:\n  r:\n    tls: {ca_file: /etc/ca.pem}\n").unwrap();
    let o = apply(&url, target, &[], &["--registries", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o)
            .contains("registries.configs[\"r\"].tls.ca_file: a fleet document cannot name files"),
        "{}",
        text(&o)
    );
    // A bad block refuses the whole document, with its path; what runs
    // keeps running, the previous block stays in effect.
    let bad = json!({"configs": {"127.0.0.1:1": {"tls": {"ca_file": "/etc/picolet/ca.pem"}}}});
    publish(
        &url,
        "mir1",
        3,
        vec![pod("web", image), pod("web2", image)],
        bad,
    );
    let topic = "picolet/devices/mir1/desired";
    let status = wait_status(&url, "mir1", 30, "the refusal in status", |s| {
        !errors_on(s, topic).is_empty()
    });
    let errors = errors_on(&status, topic);
    assert_eq!(errors[0].0, "Invalid", "{errors:?}");
    assert!(
        errors[0].1.starts_with(
            "registries.configs[\"127.0.0.1:1\"].tls.ca_file: a fleet document cannot name files on the device"
        ),
        "{errors:?}"
    );
    assert_eq!(status["observedRevision"]["device"], 2);
    assert!(a.pod("web2").is_none());
    assert_untouched(&a, "web", &started);
    // The kept block still serves a new pull.
    publish(
        &url,
        "mir1",
        4,
        vec![pod("web", image), pod("web3", image)],
        mirrors,
    );
    a.wait_running("web3", "main", 60);
    assert_untouched(&a, "web", &started);
    a.assert_one_thread();
}

#[test]
fn a_documents_credentials_and_inline_ca_authenticate_a_tls_registry() {
    if !root_or_skip() {
        return;
    }
    let f = fixture();
    let Some(broker) = plain_broker() else {
        return;
    };
    let url = url(&broker, 0);
    let mut a = agent(&url, "auth1");
    let host = format!("127.0.0.1:{}", f.secure);
    let image = format!("{host}/busybox:1");
    let ca = std::fs::read_to_string(f.dir.join("ca.pem")).unwrap();
    // Without credentials the registry refuses the pull.
    let tls_only = json!({"configs": {host.clone(): {"tls": {"ca": ca}}}});
    publish(&url, "auth1", 1, vec![pod("web", &image)], tls_only);
    let s = wait_for(60, "ErrImagePull", || {
        a.container("web", "main")
            .filter(|s| s["state"]["waiting"]["reason"] == "ErrImagePull")
    });
    let msg = s["state"]["waiting"]["message"].as_str().unwrap();
    assert!(msg.contains("unauthorized"), "{msg}");
    // The document's configs[host].auth, with the CA given inline.
    let creds = json!({"configs": {host.clone(): {
        "auth": {"username": USER, "password": PASSWORD},
        "tls": {"ca": ca}}}});
    publish(&url, "auth1", 2, vec![pod("web", &image)], creds);
    a.wait_running("web", "main", 90);
    assert!(pull_files(&a).is_empty(), "{:?}", pull_files(&a));
    // Never logged; kept in the state file, which only root reads.
    let log = a.agent_log();
    assert!(!log.contains(PASSWORD) && !log.contains("BEGIN CERTIFICATE"));
    let state = a.state().join("state.bin");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // After a restart without the broker, the stored document's block
    // still authenticates a pull: `Always` asks the registry again, and a
    // 401 would be an error, not "offline".
    let served = || {
        std::fs::read_to_string(f.dir.join("secure.log"))
            .unwrap()
            .matches("/v2/busybox/manifests/1 HTTP/1.1\" 200 ")
            .count()
    };
    let before = served();
    assert!(before >= 1, "the registry served the manifest");
    drop(broker);
    a.kill9();
    a.spawn();
    a.apply(
        "local.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: local}}\nspec:\n  \
             terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    \
             image: {image}\n    imagePullPolicy: Always\n    command: [\"sleep\", \"100000\"]\n"
        ),
    );
    a.wait_running("local", "main", 90);
    assert!(served() > before, "asked the registry again, authenticated");
    a.assert_one_thread();
}
