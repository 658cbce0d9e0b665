//! The agent pulls what its pods name (issue 9, items 4 and 6 of the
//! brief): pull policies against a real registry (Debian's
//! `docker-registry`, started once per test binary on loopback, images
//! pushed with `skopeo copy`), the kubelet's events and waiting reasons,
//! back-off, and offline `Always`. Each agent reaches the registry over
//! plain HTTP through `PICOLET_REGISTRIES_CONFIG` (inherited by its
//! `picolet pull` helpers).
//!
//! Processes: the shared registry runs under a small `sh` watchdog that
//! kills it (by PID) when this test process exits; the registry a test
//! stops is its own child, killed by PID.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use support::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(storage: &Path, port: u16) -> String {
    format!(
        "version: 0.1\nlog: {{level: info, accesslog: {{disabled: false}}}}\n\
         storage:\n  filesystem: {{rootdirectory: {}}}\nhttp: {{addr: \"127.0.0.1:{port}\"}}\n",
        storage.display()
    )
}

fn wait_answering(port: u16) {
    wait_for(20, &format!("the registry on port {port}"), || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").ok()?;
        let mut r = String::new();
        s.read_to_string(&mut r).ok()?;
        r.starts_with("HTTP/1.").then_some(())
    });
}

/// The shared registry: busybox:1 (OCI) and busybox:2 (docker-archive,
/// two layers) pushed as `HOST/busybox:{1,2}`.
struct Fixture {
    dir: PathBuf,
    storage: PathBuf,
    host: String,
    _watchdog: Child,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("picolet-agent-pull-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let storage = dir.join("storage");
        let port = free_port();
        let cfg = dir.join("registry.yml");
        std::fs::write(&cfg, config(&storage, port)).unwrap();
        let watchdog = Command::new("sh")
            .args([
                "-c",
                "docker-registry serve \"$1\" >\"$2\" 2>&1 & r=$!; \
                 while kill -0 \"$3\" 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.5; done; \
                 kill $r 2>/dev/null; wait $r; rm -rf \"$4\"",
                "sh",
            ])
            .arg(&cfg)
            .arg(dir.join("registry.log"))
            .arg(std::process::id().to_string())
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        wait_answering(port);
        let host = format!("127.0.0.1:{port}");
        for (src, tag) in [
            (
                format!(
                    "oci:{}:picolet.test/busybox:1",
                    images().join("busybox-oci").display()
                ),
                "1",
            ),
            (
                format!(
                    "docker-archive:{}",
                    images().join("busybox.docker.tar").display()
                ),
                "2",
            ),
        ] {
            let out = Command::new("skopeo")
                .args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
                .arg(&src)
                .arg(format!("docker://{host}/busybox:{tag}"))
                .output()
                .expect("skopeo (apt-get install skopeo)");
            assert!(
                out.status.success(),
                "skopeo copy {src}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        push_noise(&dir, &host);
        Fixture {
            dir,
            storage,
            host,
            _watchdog: watchdog,
        }
    })
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Pushes `HOST/noise:1` ([`noise_layout`]).
fn push_noise(dir: &Path, host: &str) {
    let oci = noise_layout(dir, None);
    let out = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}", oci.display()))
        .arg(format!("docker://{host}/noise:1"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An OCI layout in `dir/noise-oci` of one image (named `name` when
/// given): busybox:1's layer and a 1.5 MB layer of pseudo-random bytes of
/// its own (no agent's store has it).
fn noise_layout(dir: &Path, name: Option<&str>) -> PathBuf {
    use serde_json::json;
    let oci = dir.join("noise-oci");
    let blobs = oci.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let h = sha256_hex(b);
        std::fs::write(blobs.join(&h), b).unwrap();
        json!({"digest": format!("sha256:{h}"), "size": b.len()})
    };
    let mut x = std::process::id() as u64 | 1;
    let data: Vec<u8> = (0..1_500_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    tar.append_data(&mut h, "noise.bin", &data[..]).unwrap();
    let raw = tar.into_inner().unwrap();
    // The base: busybox:1's layer and config's rootfs.
    let bb = images().join("busybox-oci");
    let read = |d: &str| {
        std::fs::read(
            bb.join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bb.join("index.json")).unwrap()).unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&read(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&read(m["config"]["digest"].as_str().unwrap())).unwrap();
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(json!(format!("sha256:{}", sha256_hex(&raw))));
    let base = &m["layers"][0];
    put(&read(base["digest"].as_str().unwrap()));
    let mut layer = put(&raw);
    layer["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
    let mut cfg = put(config.to_string().as_bytes());
    cfg["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
    let manifest = json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cfg, "layers": [base, layer]});
    let mut md = put(manifest.to_string().as_bytes());
    md["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
    std::fs::write(oci.join("oci-layout"), r#"{"imageLayoutVersion": "1.0.0"}"#).unwrap();
    if let Some(n) = name {
        md["annotations"] = json!({"io.containerd.image.name": n});
    }
    let index = json!({"schemaVersion": 2, "manifests": [md]});
    std::fs::write(oci.join("index.json"), index.to_string()).unwrap();
    oci
}

/// An agent whose pulls go to `host` over plain HTTP.
fn agent_for(host: &str, name: &str) -> Agent {
    let f = fixture();
    let reg = f.dir.join(format!("registries-{name}.yaml"));
    std::fs::write(
        &reg,
        format!("mirrors:\n  \"{host}\":\n    endpoint: [\"http://{host}\"]\n"),
    )
    .unwrap();
    let reg = reg.to_string_lossy().into_owned();
    let auth = f.dir.join("no-auth.json").to_string_lossy().into_owned();
    Agent::start_env(&[
        ("PICOLET_REGISTRIES_CONFIG", &reg),
        ("PICOLET_AUTH_FILE", &auth),
    ])
}

fn pod(name: &str, image: &str, policy: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    \
         image: {image}\n    imagePullPolicy: {policy}\n    command: [\"sleep\", \"1000\"]\n"
    )
}

/// `describe pod`'s event rows, spaces normalised.
fn events(a: &Agent, pod: &str) -> Vec<String> {
    let out = a.cli(&["describe", "pod", pod]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows = text.split_once("Events:").map_or("", |(_, e)| e);
    rows.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

fn has_event(a: &Agent, pod: &str, kind: &str, reason: &str, text: &str) -> bool {
    events(a, pod)
        .iter()
        .any(|l| l.starts_with(&format!("{kind} {reason} ")) && l.contains(text))
}

fn waiting(a: &Agent, pod: &str, reason: &str) -> serde_json::Value {
    wait_for(60, &format!("{pod}: waiting {reason}"), || {
        a.container(pod, "main")
            .filter(|s| s["state"]["waiting"]["reason"] == reason)
    })
}

#[test]
fn always_if_not_present_and_never_against_a_registry_as_the_kubelet() {
    if !root_or_skip() {
        return;
    }
    let host = &fixture().host;
    let a = agent_for(host, "policies");
    let one = format!("{host}/busybox:1");
    a.apply("always.yaml", &pod("always", &one, "Always"));
    a.wait_running("always", "main", 60);
    let q = format!("\"{one}\"");
    assert!(
        has_event(
            &a,
            "always",
            "Normal",
            "Pulling",
            &format!("Pulling image {q}")
        ),
        "{:#?}",
        events(&a, "always")
    );
    let pulled = events(&a, "always")
        .into_iter()
        .find(|l| l.starts_with("Normal Pulled "))
        .expect("a Pulled event");
    assert!(
        pulled.contains(&format!("Successfully pulled image {q} in "))
            && pulled.contains(" including waiting). Image size: ")
            && pulled.ends_with(" bytes."),
        "{pulled}"
    );
    // Present now: IfNotPresent does not pull it again.
    a.apply("ifnp.yaml", &pod("ifnp", &one, "IfNotPresent"));
    a.wait_running("ifnp", "main", 60);
    assert!(has_event(
        &a,
        "ifnp",
        "Normal",
        "Pulled",
        &format!("Container image {q} already present on machine")
    ));
    assert!(!has_event(&a, "ifnp", "Normal", "Pulling", ""));
    // A missing image is pulled for IfNotPresent; the kubelet's events.
    let two = format!("{host}/busybox:2");
    a.apply("ifnp2.yaml", &pod("ifnp2", &two, "IfNotPresent"));
    a.wait_running("ifnp2", "main", 60);
    assert!(has_event(&a, "ifnp2", "Normal", "Pulling", &two));
    // Never: not pulled, even though the registry has it.
    let never = format!("{host}/busybox:never");
    a.apply("never.yaml", &pod("never", &never, "Never"));
    let s = waiting(&a, "never", "ErrImageNeverPull");
    assert_eq!(
        s["state"]["waiting"]["message"],
        format!("Container image \"{never}\" is not present with pull policy of Never")
    );
    assert!(!has_event(&a, "never", "Normal", "Pulling", ""));
    let log = std::fs::read_to_string(fixture().dir.join("registry.log")).unwrap_or_default();
    assert!(
        !log.contains("/v2/busybox/manifests/never"),
        "Never asked the registry"
    );
    // Always with the image present: the manifest is asked again, no
    // layer is fetched again.
    let layer_gets = |log: &str| log.matches("GET /v2/busybox/blobs/").count();
    let before = layer_gets(&log);
    a.apply("always2.yaml", &pod("always2", &one, "Always"));
    a.wait_running("always2", "main", 60);
    let log = std::fs::read_to_string(fixture().dir.join("registry.log")).unwrap_or_default();
    assert_eq!(layer_gets(&log), before, "no blob fetched again");
    assert!(has_event(
        &a,
        "always2",
        "Normal",
        "Pulled",
        "Successfully pulled image"
    ));
    a.assert_one_thread();
}

#[test]
fn a_missing_image_is_err_image_pull_said_plainly_then_image_pull_back_off() {
    if !root_or_skip() {
        return;
    }
    let host = &fixture().host;
    let a = agent_for(host, "missing");
    let image = format!("{host}/nope:1");
    a.apply("nope.yaml", &pod("nope", &image, "IfNotPresent"));
    let s = waiting(&a, "nope", "ErrImagePull");
    let msg = s["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.starts_with(&format!("Failed to pull image \"{image}\": not found: ")),
        "{msg}"
    );
    assert!(has_event(
        &a,
        "nope",
        "Warning",
        "Failed",
        &format!("Failed to pull image \"{image}\": not found")
    ));
    assert!(has_event(
        &a,
        "nope",
        "Warning",
        "Failed",
        "Error: ErrImagePull"
    ));
    // The retry 10 s later fails too; 10 s into its 20 s window the
    // kubelet shows the back-off.
    let s = waiting(&a, "nope", "ImagePullBackOff");
    assert_eq!(
        s["state"]["waiting"]["message"],
        format!("Back-off pulling image \"{image}\"")
    );
    assert!(has_event(
        &a,
        "nope",
        "Normal",
        "BackOff",
        &format!("Back-off pulling image \"{image}\"")
    ));
    assert!(has_event(
        &a,
        "nope",
        "Warning",
        "Failed",
        "Error: ImagePullBackOff"
    ));
    a.assert_one_thread();
}

/// A registry of the test's own on the shared storage, read-only: killed
/// by PID when the test stops it (or ends).
struct Own(Option<Child>);

impl Own {
    fn stop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Own {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn offline_always_runs_the_local_copy_with_a_warning_and_a_missing_image_backs_off() {
    if !root_or_skip() {
        return;
    }
    let f = fixture();
    let port = free_port();
    let cfg = f.dir.join("own.yml");
    let text = config(&f.storage, port).replace(
        "storage:\n",
        "storage:\n  maintenance: {readonly: {enabled: true}}\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let mut own = Own(Some(
        Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    wait_answering(port);
    let host = format!("127.0.0.1:{port}");
    let a = agent_for(&host, "offline");
    let one = format!("{host}/busybox:1");
    a.apply("a.yaml", &pod("a", &one, "Always"));
    a.wait_running("a", "main", 60);
    own.stop();
    // Recreated: Always pulls again, the registry is gone.
    a.remove("a.yaml");
    wait_for(30, "pod a deleted", || a.pod("a").is_none().then_some(()));
    a.apply("a.yaml", &pod("a", &one, "Always"));
    a.wait_running("a", "main", 60);
    assert!(
        has_event(
            &a,
            "a",
            "Warning",
            "PullOffline",
            &format!("Could not reach the registry for image \"{one}\"")
        ),
        "{:#?}",
        events(&a, "a")
    );
    // IfNotPresent with the image present needs no network at all.
    a.apply("b.yaml", &pod("b", &one, "IfNotPresent"));
    a.wait_running("b", "main", 60);
    assert!(!has_event(&a, "b", "Normal", "Pulling", ""));
    assert!(!has_event(&a, "b", "Warning", "PullOffline", ""));
    // Missing and unreachable: an error, with back-off.
    let two = format!("{host}/busybox:2");
    a.apply("c.yaml", &pod("c", &two, "IfNotPresent"));
    let s = waiting(&a, "c", "ErrImagePull");
    let msg = s["state"]["waiting"]["message"].as_str().unwrap();
    assert!(msg.contains(": registry unreachable: "), "{msg}");
    waiting(&a, "c", "ImagePullBackOff");
    a.assert_one_thread();
}

/// A proxy to the registry that sends its answers at about `per_sec`
/// bytes a second (threads of this test, ending with it).
fn slow_proxy(upstream: u16, per_sec: u64) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let Ok(u) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (mut c_in, mut u_out) = (c.try_clone().unwrap(), u.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut u_out);
                let _ = u_out.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let (mut u, mut c) = (u, c);
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = u.read(&mut buf) {
                    if c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_micros(
                        n as u64 * 1_000_000 / per_sec,
                    ));
                }
                let _ = c.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

#[test]
fn get_pods_shows_the_progress_of_a_pull_under_way() {
    if !root_or_skip() {
        return;
    }
    let upstream: u16 = fixture().host.rsplit(':').next().unwrap().parse().unwrap();
    // noise:1's own layer is 1.5 MB: some 6 s at 256 KiB/s.
    let host = format!("127.0.0.1:{}", slow_proxy(upstream, 256 << 10));
    let a = agent_for(&host, "progress");
    let image = format!("{host}/noise:1");
    a.apply("slow.yaml", &pod("slow", &image, "IfNotPresent"));
    let prefix = format!("Pulling image \"{image}\": ");
    let s = wait_for(30, "a progress message", || {
        a.container("slow", "main").filter(|s| {
            s["state"]["waiting"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&prefix))
        })
    });
    assert_eq!(s["state"]["waiting"]["reason"], "ContainerCreating");
    let msg = s["state"]["waiting"]["message"].as_str().unwrap();
    let (done, total) = msg[prefix.len()..].split_once(" of ").unwrap();
    let mb = |t: &str| t.strip_suffix(" MB").unwrap().parse::<f64>().unwrap();
    assert!(mb(done) <= mb(total) && mb(total) > 2.0, "{msg}");
    a.wait_running("slow", "main", 60);
    let s = a.container("slow", "main").unwrap();
    assert!(s["state"]["waiting"].is_null(), "{s}");
}

#[test]
fn archives_in_the_preload_dir_are_imported_at_start_and_not_read_again() {
    if !root_or_skip() {
        return;
    }
    let mut a = Agent::prepare(None, &[]);
    let image = "preload.test/noise:1";
    let layout = noise_layout(a.dir.path(), Some(image));
    let archive = a.state().join("images/noise.tar");
    let st = Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    // Air-gapped: preload.test has no registry; the pod waits for the
    // archives instead of trying one.
    a.apply("p.yaml", &pod("p", image, "IfNotPresent"));
    a.spawn();
    a.wait_running("p", "main", 60);
    assert!(
        !has_event(&a, "p", "Normal", "Pulling", ""),
        "{:#?}",
        events(&a, "p")
    );
    assert!(has_event(
        &a,
        "p",
        "Normal",
        "Pulled",
        "already present on machine"
    ));
    let cache: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.state().join("images/preload.json")).unwrap())
            .unwrap();
    let imported = cache["noise.tar"]["images"][0].as_str().unwrap_or_default();
    assert!(
        imported.starts_with(&format!("imported {image} (sha256:")),
        "{cache}"
    );
    assert_eq!(
        cache["noise.tar"]["size"],
        std::fs::metadata(&archive).unwrap().len()
    );
    // Restarted: the archive is not read again.
    a.kill9();
    a.spawn();
    a.wait_running("p", "main", 30);
    let log = a.agent_log();
    assert_eq!(log.matches("preload: importing").count(), 1, "{log}");
    assert_eq!(
        log.matches("preload: noise.tar: imported").count(),
        1,
        "{log}"
    );
    a.assert_one_thread();
}
