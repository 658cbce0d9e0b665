//! Registry pull budgets (issue 9), printed, never asserted:
//! - a 3-layer ~10 MB image from a loopback `docker-registry`: `picolet
//!   pull` (download, verify, unpack, tag) vs `skopeo copy docker://…
//!   oci:…` (download, verify) of the same image in the same run, as a
//!   ratio of medians (budget ≤ 1.5);
//! - the helper's peak RSS (`/usr/bin/time -v`, budget ≤ 6 MiB).
//!
//! Needs root (layers are unpacked as root), `docker-registry`, `skopeo`
//! and `/usr/bin/time`. `PICOLET_BENCH_ROUNDS` (default 5).
//! Run: `cargo bench --bench pull`.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, env_num, percentile, wait_for};
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
        let o = Command::new("/usr/bin/time")
            .arg("-v")
            .arg(bin())
            .args(["pull", &format!("{host}/bench:1"), "--store"])
            .arg(&store)
            .arg("--registries-config")
            .arg(&reg_yaml)
            .arg("--auth-file")
            .arg(tmp.path().join("none.json"))
            .output()
            .unwrap();
        ours.push(t.elapsed().as_secs_f64());
        let stdout = String::from_utf8_lossy(&o.stdout);
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
    println!("picolet pull peak RSS: {peak_kib} KiB (budget 6144)");
    let _ = registry.kill(); // our child, by PID
    let _ = registry.wait();
    std::thread::sleep(Duration::from_millis(10));
}
