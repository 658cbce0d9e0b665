//! Issue 7's attacks through images, the API socket and `exec`, run
//! against the real binary: device nodes and bombs in image layers, a
//! flood of API connections, and commands that cannot run.

mod support;
use support::*;

use sha2::Digest as _;
use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tar::{EntryType, Header};

fn sha256(bytes: &[u8]) -> String {
    let d = sha2::Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes an OCI image layout at `dir` with one layer blob and the given
/// diff ID, named `picolet.test/untrusted:1`.
fn oci_layout(dir: &Path, layer: &[u8], diff_id: &str) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let hex = sha256(bytes);
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let (layer_digest, layer_size) = put(layer);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": layer_size}],
    });
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest_size,
                       "annotations": {"io.containerd.image.name": "picolet.test/untrusted:1"}}],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    g.write_all(data).unwrap();
    g.finish().unwrap()
}

fn header(name: &str, kind: EntryType, size: u64, mode: u32) -> Header {
    let mut h = Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_000_000);
    h.set_cksum();
    h
}

fn import(state: &Path, layout: &Path) -> Output {
    Command::new(BIN)
        .args(["image", "import"])
        .arg(layout)
        .arg("--state-dir")
        .arg(state)
        .output()
        .unwrap()
}

/// Every path under `dir` (not following symlinks).
fn walk(dir: &Path, out: &mut Vec<(std::path::PathBuf, std::fs::Metadata)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            walk(&p, out);
        }
        out.push((p, m));
    }
}

/// Nothing of a refused import is left: no layer, no temp entry.
fn assert_store_empty(state: &Path) {
    for sub in ["images/layers/sha256", "images/tmp"] {
        let d = state.join(sub);
        let left: Vec<_> = std::fs::read_dir(&d)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left in {}: {left:?}", d.display());
    }
}

#[test]
fn image_import_drops_device_nodes_and_says_how_many() {
    let mut b = tar::Builder::new(Vec::new());
    b.append(&header("dev/", EntryType::Directory, 0, 0o755), &[][..])
        .unwrap();
    for (name, kind, major, minor) in [
        ("dev/loop0", EntryType::Block, 7, 0),
        ("dev/kmsg", EntryType::Char, 1, 11),
        ("dev/mmcblk0", EntryType::Block, 179, 0),
    ] {
        let mut h = header(name, kind, 0, 0o666);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    }
    b.append(&header("run/fifo", EntryType::Fifo, 0, 0o666), &[][..])
        .unwrap();
    b.append(
        &header("etc/motd", EntryType::Regular, 3, 0o644),
        &b"hi\n"[..],
    )
    .unwrap();
    let tar = b.into_inner().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    oci_layout(&layout, &gzip(&tar), &format!("sha256:{}", sha256(&tar)));
    let state = tmp.path().join("state");
    let out = import(&state, &layout);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("imported picolet.test/untrusted:1")
            && stdout.contains("dropped 3 device nodes"),
        "{stdout}"
    );
    let mut all = Vec::new();
    walk(&state.join("images/layers"), &mut all);
    let devices: Vec<_> = all
        .iter()
        .filter(|(_, m)| m.file_type().is_block_device() || m.file_type().is_char_device())
        .map(|(p, _)| p)
        .collect();
    assert!(devices.is_empty(), "device nodes in the store: {devices:?}");
    assert!(all.iter().any(|(p, _)| p.ends_with("etc/motd")));
    assert!(
        all.iter()
            .any(|(p, m)| p.ends_with("run/fifo") && m.file_type().is_fifo()),
        "FIFOs are kept"
    );
}

#[test]
fn a_gzip_bomb_layer_is_refused_by_image_import_and_leaves_nothing() {
    // The issue's bomb: about 2 MB of gzip that unpacks to 2 GiB (one
    // file of zeros), as concatenated gzip members of 1 MiB each.
    let mut layer = gzip(header("bomb", EntryType::Regular, 2 << 30, 0o644).as_bytes());
    let member = gzip(&vec![0u8; 1 << 20]);
    for _ in 0..2048 {
        layer.extend_from_slice(&member);
    }
    assert!(layer.len() < 3_000_000, "{}", layer.len());
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    // The diff ID cannot be known without unpacking: any will do, the
    // budget stops the unpack long before the end.
    oci_layout(&layout, &layer, &format!("sha256:{}", sha256(b"x")));
    let state = tmp.path().join("state");
    let t = Instant::now();
    let out = import(&state, &layout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("refused in {:?}: {stderr}", t.elapsed());
    assert!(!out.status.success());
    assert!(stderr.contains("decompression bomb"), "{stderr}");
    assert_store_empty(&state);
}

#[test]
fn an_old_gnu_sparse_entry_is_refused_by_image_import() {
    // 512 bytes of data at the end of a 1 GiB file, in a 10 KB archive.
    let octal = |field: &mut [u8], v: u64| {
        let s = format!("{v:0width$o}", width = field.len() - 1);
        field[..s.len()].copy_from_slice(s.as_bytes());
    };
    let mut h = header("sparse", EntryType::GNUSparse, 512, 0o644);
    {
        let g = h.as_gnu_mut().unwrap();
        octal(&mut g.realsize, 1 << 30);
        octal(&mut g.sparse[0].offset, (1 << 30) - 512);
        octal(&mut g.sparse[0].numbytes, 512);
    }
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &[7u8; 512][..]).unwrap();
    let tar = b.into_inner().unwrap();
    assert!(tar.len() <= 10_240);
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    oci_layout(&layout, &tar, &format!("sha256:{}", sha256(&tar)));
    let state = tmp.path().join("state");
    let out = import(&state, &layout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("\"sparse\"") && stderr.contains("sparse files"),
        "{stderr}"
    );
    assert_store_empty(&state);
}

fn running_sleeper(a: &Agent, name: &str) {
    a.apply(
        &format!("{name}.yaml"),
        &sh_pod(name, "Always", "sleep 1000"),
    );
    a.wait_running(name, "main", 30);
}

#[test]
fn exec_of_a_missing_command_exits_127_and_of_a_non_executable_one_126() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    running_sleeper(&a, "ex");
    let out = a.cli(&["exec", "ex", "--", "/nonexistent"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{stderr}");
    assert!(stderr.contains("/nonexistent"), "{stderr}");
    let out = a.cli(&["exec", "ex", "--", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    let (code, _) = a.exec("ex", "main", &["sh", "-c", "echo x > /tmp/data"]);
    assert_eq!(code, 0);
    let out = a.cli(&["exec", "ex", "--", "/tmp/data"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(126), "{stderr}");
    assert!(stderr.contains("/tmp/data"), "{stderr}");
    // A command that runs keeps its own exit code and output.
    let (code, out) = a.exec("ex", "main", &["sh", "-c", "echo ran; exit 3"]);
    assert_eq!(
        (code, out.as_str()),
        (3, "ran\ncommand terminated with exit code 3\n")
    );
}

fn status_kb(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn a_socket_flood_keeps_the_agent_small_and_get_pods_answering() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start();
    running_sleeper(&a, "calm");
    let pid = a.pid();
    let sock = a.state().join("picolet.sock");
    let rss_before = status_kb(pid, "VmRSS:");
    let hwm_before = status_kb(pid, "VmHWM:");
    let fds_before = open_fds(pid);
    // Sample the agent's RSS during the flood.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(status_kb(pid, "VmRSS:"));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    // 500 connections, each sending 1 MB without a newline, 50 per thread
    // at once.
    let writers: Vec<_> = (0..10)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let conns: Vec<UnixStream> = (0..50)
                    .filter_map(|_| UnixStream::connect(&sock).ok())
                    .collect();
                let chunk = vec![b'x'; 64 << 10];
                for _ in 0..16 {
                    for mut c in &conns {
                        c.set_write_timeout(Some(Duration::from_millis(200)))
                            .unwrap();
                        let _ = c.write_all(&chunk);
                    }
                }
            })
        })
        .collect();
    // Meanwhile: 2,000 idle connections, kept open.
    let mut idle = Vec::new();
    for _ in 0..2000 {
        if let Ok(c) = UnixStream::connect(&sock) {
            idle.push(c);
        }
    }
    for w in writers {
        w.join().unwrap();
    }
    let t = Instant::now();
    let out = a.cli(&["get", "pods"]);
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("calm"));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sampled = sampler.join().unwrap();
    let hwm = status_kb(pid, "VmHWM:");
    let rss_peak = sampled.max(if hwm > hwm_before { hwm } else { 0 });
    let fds = open_fds(pid);
    eprintln!(
        "agent VmRSS {rss_before} kB before the flood (VmHWM {hwm_before} kB), peak {rss_peak} kB (sampled {sampled} kB, VmHWM {hwm} kB); fds {fds_before} -> {fds}; get pods in {took:?}"
    );
    assert!(took < Duration::from_secs(2), "get pods took {took:?}");
    // 64 connections of at most 64 KiB each, and the allocator's slack.
    assert!(
        rss_peak < rss_before + 8 * 1024,
        "the flood grew the agent from {rss_before} kB to {rss_peak} kB"
    );
    assert!(fds <= fds_before + 64 + 4, "{fds_before} -> {fds} fds");
    // The idle connections were closed to make room: most read EOF now.
    let mut closed = 0;
    for c in idle.iter_mut().take(100) {
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut b = [0u8; 64];
        if matches!(c.read(&mut b), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    assert!(closed > 0);
    a.assert_one_thread();
}
