//! Registry pull budgets (issue 9), printed, never asserted:
//! - a 3-layer ~10 MB image from a loopback `docker-registry`: `picolet
//!   pull` (download, verify, unpack, tag) vs `skopeo copy docker://…
//!   oci:…` (download, verify) of the same image in the same run, as a
//!   ratio of medians (budget ≤ 1.5);
//! - the helper's peak RSS (`/usr/bin/time -v`, budget ≤ 6 MiB);
//! - the agent pulling the same image for a pod (its `picolet pull`
//!   helper): the agent's RSS growth during the pull (budget ≤ 256 KiB)
//!   and its threads (budget 1), sampled every 10 ms.
//!
//! Needs root (layers are unpacked as root), `docker-registry`, `skopeo`
//! and `/usr/bin/time`. `PICOLET_BENCH_ROUNDS` (default 5).
//! Run: `cargo bench --bench pull`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Env, bin, env_num, percentile, status_field, wait_for};
use sha2::Digest as _;

fn hex(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A gzipped layer holding one file of `len` pseudo-random bytes.
fn layer(name: &str, len: usize, seed: u64) -> (Vec<u8>, String) {
    let mut x = seed | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(len as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    tar.append_data(&mut h, name, &data[..]).unwrap();
    let raw = tar.into_inner().unwrap();
    let diff = hex(&raw);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    (gz.finish().unwrap(), diff)
}

/// Writes a one-image OCI layout of `layers`; returns its compressed size.
fn layout(dir: &Path, layers: &[(Vec<u8>, String)]) -> u64 {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let h = hex(b);
        std::fs::write(blobs.join(&h), b).unwrap();
        (format!("sha256:{h}"), b.len())
    };
    let diff_ids: Vec<String> = layers.iter().map(|l| format!("sha256:{}", l.1)).collect();
    let config = serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let (cd, cs) = put(config.to_string().as_bytes());
    let descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let (d, s) = put(&l.0);
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s})
        })
        .collect();
    let manifest = serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": descs});
    let (md, ms) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
        "annotations": {"org.opencontainers.image.ref.name": "bench"}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    (cs + ms) as u64 + layers.iter().map(|l| l.0.len() as u64).sum::<u64>()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !picolet::sys::process::is_root() {
        eprintln!("the pull benchmark needs root (layers are unpacked as root)");
        std::process::exit(1);
    }
    let rounds = env_num("PICOLET_BENCH_ROUNDS", 5) as usize;
    let tmp = tempfile::Builder::new()
        .prefix("picolet-bench-pull-")
        .tempdir()
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = tmp.path().join("registry.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp: {{addr: \"127.0.0.1:{port}\"}}\n",
            tmp.path().join("storage").display()
        ),
    )
    .unwrap();
    let mut registry = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (apt-get install docker-registry)");
    wait_for(20, "the registry", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let host = format!("127.0.0.1:{port}");
    let src = tmp.path().join("src");
    let layers = [
        layer("a.bin", 5 << 20, 1),
        layer("b.bin", 4 << 20, 2),
        layer("c.bin", 1 << 20, 3),
    ];
    let size = layout(&src, &layers);
    let st = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:bench", src.display()))
        .arg(format!("docker://{host}/bench:1"))
        .status()
        .unwrap();
    assert!(st.success(), "skopeo push failed");
    let reg_yaml = tmp.path().join("registries.yaml");
    std::fs::write(
        &reg_yaml,
        format!("mirrors:\n  \"{host}\":\n    endpoint: [\"http://{host}\"]\n"),
    )
    .unwrap();
    println!("image: 3 layers, {size} bytes compressed, from {host}");

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut downloads = Vec::new();
    let mut peak_kib = 0u64;
    for i in 0..rounds {
        let out = tmp.path().join(format!("skopeo-{i}"));
        let t = Instant::now();
        let st = Command::new("skopeo")
            .args(["--insecure-policy", "copy", "-q", "--src-tls-verify=false"])
            .arg(format!("docker://{host}/bench:1"))
            .arg(format!("oci:{}:bench", out.display()))
            .status()
            .unwrap();
        theirs.push(t.elapsed().as_secs_f64());
        assert!(st.success());
        let store = tmp.path().join(format!("store-{i}"));
        let t = Instant::now();
        let mut child = Command::new("/usr/bin/time")
            .arg("-v")
            .arg(bin())
            .args(["pull", &format!("{host}/bench:1"), "--store"])
            .arg(&store)
            .arg("--registries-config")
            .arg(&reg_yaml)
            .arg("--auth-file")
            .arg(tmp.path().join("none.json"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // When the last blob arrived (its `blob` line), for the split.
        let mut last_blob = 0.0;
        let mut stdout = String::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if line.contains("\"event\":\"blob\"") {
                last_blob = t.elapsed().as_secs_f64();
            }
            stdout.push_str(&line);
        }
        let o = child.wait_with_output().unwrap();
        ours.push(t.elapsed().as_secs_f64());
        downloads.push(last_blob);
        assert!(o.status.success(), "picolet pull failed: {stdout}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        let kib: u64 = stderr
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Maximum resident set size (kbytes): ")
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        peak_kib = peak_kib.max(kib);
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_dir_all(&store);
    }
    let (o, s) = (percentile(&mut ours, 0.5), percentile(&mut theirs, 0.5));
    println!(
        "pull of {size} bytes, median of {rounds}: picolet pull {:.0} ms (download + verify + unpack), skopeo copy docker:// oci: {:.0} ms (download + verify)",
        o * 1000.0,
        s * 1000.0
    );
    println!("ratio picolet/skopeo: {:.2} (budget 1.5)", o / s);
    let dl = percentile(&mut downloads, 0.5);
    println!(
        "of which downloading and verifying (until the last blob is in): {:.0} ms, ratio {:.2} to skopeo; the rest is unpacking the last layer, syncfs and the tag",
        dl * 1000.0,
        dl / s
    );
    println!("picolet pull peak RSS: {peak_kib} KiB (budget 6144)");
    agent_pull(&host, &reg_yaml, &tmp.path().join("none.json"));
    let _ = registry.kill(); // our child, by PID
    let _ = registry.wait();
    std::thread::sleep(Duration::from_millis(10));
}

/// The agent pulls `HOST/bench:1` for a pod: its RSS and threads from
/// before the pod is applied until the image is in (the container then
/// fails to start: the image has no program, which is not measured).
fn agent_pull(host: &str, registries: &Path, auth: &Path) {
    let env = Env::start_env(
        "pull",
        &[],
        &[
            ("PICOLET_REGISTRIES_CONFIG", registries.to_str().unwrap()),
            ("PICOLET_AUTH_FILE", auth.to_str().unwrap()),
        ],
    );
    let pid = env.agent_pid();
    let threads = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    // A first pod (its image present) warms the agent's allocations for
    // pods, sandboxes and statuses: what follows is the pull's.
    std::fs::write(
        env.manifests().join("warm.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: warm}\nspec:\n  containers:\n  - name: main\n    \
         image: picolet.test/busybox:1\n    command: [\"sleep\", \"1000\"]\n",
    )
    .unwrap();
    wait_for(60, "the warm-up pod running", || {
        env.pods()
            .iter()
            .any(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object())
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let before = status_field(pid, "VmRSS");
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: pulled}}\nspec:\n  restartPolicy: Never\n  \
         containers:\n  - name: main\n    image: {host}/bench:1\n    command: [\"/none\"]\n"
    );
    std::fs::write(env.manifests().join("pulled.yaml"), pod).unwrap();
    let t = Instant::now();
    let (mut peak, mut max_threads, mut progress) = (before, threads(), 0);
    let ours = |pods: &[serde_json::Value]| {
        pods.iter()
            .find(|p| p["metadata"]["name"] == "pulled")
            .map(|p| p["status"]["containerStatuses"][0].clone())
    };
    let pulled = |pods: &[serde_json::Value]| {
        let Some(c) = ours(pods) else {
            return false;
        };
        let w = &c["state"]["waiting"];
        !(w["reason"] == "ContainerCreating" || c.is_null())
    };
    let mut pods = Vec::new();
    while t.elapsed() < Duration::from_secs(120) {
        for _ in 0..10 {
            peak = peak.max(status_field(pid, "VmRSS"));
            max_threads = max_threads.max(threads());
            std::thread::sleep(Duration::from_millis(10));
        }
        pods = env.pods();
        let msg = ours(&pods)
            .and_then(|c| {
                c["state"]["waiting"]["message"]
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_default();
        progress += msg.contains(" MB of ") as u32;
        if pulled(&pods) {
            break;
        }
    }
    println!(
        "agent pulling for a pod: {:.0} ms until the image was in; agent RSS {before} KiB before, \
         peak {peak} KiB during: growth {} KiB (budget 256); threads at most {max_threads} (budget 1); \
         progress messages seen: {progress}",
        t.elapsed().as_secs_f64() * 1000.0,
        peak.saturating_sub(before)
    );
    if !pulled(&pods) {
        println!("the pull did not finish: {pods:?}");
    }
}
