//! Registry pulls against a real registry: Debian's `docker-registry`
//! (distribution 2.8), started once per test binary on loopback, images
//! pushed with `skopeo copy`. A second instance serves the same storage
//! read-only over TLS (a test CA) with htpasswd Basic auth, a third with
//! `auth: token` and a token server written here (RS256 JWTs signed with
//! ring). A proxy in the test cuts or slows connections and counts bytes.
//!
//! Processes: the registries run under a small `sh` watchdog that kills
//! its registry (by PID) and removes its files when this test process
//! exits; pull helpers are our children, killed by PID.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::Digest as _;
use support::{BIN, images, root_or_skip, wait_for};

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

fn sha256_hex(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One registry process (under its watchdog).
struct Registry {
    port: u16,
    log: PathBuf,
    /// The `sh` watchdog: it ends with this test process and the registry.
    _watchdog: std::process::Child,
}

impl Registry {
    /// Starts `docker-registry serve` with `config` (YAML, `{port}`
    /// replaced) and waits until it answers.
    fn start(dir: &Path, name: &str, config: &str, tls: bool) -> Registry {
        let port = free_port();
        let cfg = dir.join(format!("{name}.yml"));
        std::fs::write(&cfg, config.replace("{port}", &port.to_string())).unwrap();
        let log = dir.join(format!("{name}.log"));
        let me = std::process::id().to_string();
        let watchdog = Command::new("sh")
            .args([
                "-c",
                "docker-registry serve \"$1\" >\"$2\" 2>&1 & r=$!; \
                 while kill -0 \"$3\" 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.5; done; \
                 kill $r 2>/dev/null; wait $r; [ -n \"$4\" ] && rm -rf \"$4\"",
                "sh",
            ])
            .arg(&cfg)
            .arg(&log)
            .arg(&me)
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
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            if tls {
                return Some(());
            }
            s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").ok()?;
            let mut r = String::new();
            s.read_to_string(&mut r).ok()?;
            r.starts_with("HTTP/1.").then_some(())
        });
        Registry {
            port,
            log,
            _watchdog: watchdog,
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Facts about the pushed images.
struct Fixture {
    dir: PathBuf,
    plain: Registry,
    /// TLS (test CA) + htpasswd, read-only on the same storage.
    secure: Registry,
    ca: PathBuf,
    /// TLS asking for a client certificate signed by the test CA.
    mtls: Registry,
    /// `auth: token`, read-only on the same storage.
    token: Registry,
    token_server: TokenServer,
    /// busybox:1's one layer (gzip) and its size.
    busybox_layer: String,
    /// three:1, 3 layers (the first is busybox's), ~7 MB.
    three_size: u64,
    three_big_layer: String,
    three_big_size: u64,
    multi_digests: BTreeMap<String, String>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(make_fixture)
}

/// A gzipped tar layer with `files`; returns (blob, diff_id hex).
fn layer(files: &[(&str, Vec<u8>)]) -> (Vec<u8>, String) {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        tar.append_data(&mut h, name, &data[..]).unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let diff = sha256_hex(&raw);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    (gz.finish().unwrap(), diff)
}

/// Incompressible bytes (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An OCI layout under construction.
struct Layout {
    dir: PathBuf,
    entries: Vec<Value>,
}

impl Layout {
    fn new(dir: PathBuf) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir,
            entries: Vec::new(),
        }
    }

    fn blob(&self, bytes: &[u8]) -> (String, u64) {
        let hex = sha256_hex(bytes);
        std::fs::write(self.dir.join("blobs/sha256").join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len() as u64)
    }

    /// Adds an image of `layers` ((blob, diff_id)); returns the manifest
    /// descriptor.
    fn image(&self, arch: &str, variant: &str, layers: &[(Vec<u8>, String)]) -> Value {
        let config = json!({
            "architecture": arch, "os": "linux", "variant": variant,
            "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| format!("sha256:{}", l.1)).collect::<Vec<_>>()},
        });
        let (cd, cs) = self.blob(config.to_string().as_bytes());
        let mut descs = Vec::new();
        for (blob, _) in layers {
            let (d, s) = self.blob(blob);
            descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s}));
        }
        let manifest = json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": descs,
        });
        let (md, ms) = self.blob(manifest.to_string().as_bytes());
        let mut platform = json!({"architecture": arch, "os": "linux"});
        if !variant.is_empty() {
            platform["variant"] = json!(variant);
        }
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms, "platform": platform})
    }

    fn tag(&mut self, mut desc: Value, name: &str) {
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": name});
        self.entries.push(desc);
    }

    fn write(&self) {
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": self.entries});
        std::fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }
}

fn push(src: &str, dest: &str, all: bool) {
    let mut c = Command::new("skopeo");
    c.args([
        "--insecure-policy",
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
    ]);
    if all {
        c.arg("--all");
    }
    run(c.arg(src).arg(dest));
}

const PLAIN_CONFIG: &str = "version: 0.1
log: {level: info, accesslog: {disabled: false}}
storage:
  filesystem: {rootdirectory: STORAGE}
http: {addr: \"127.0.0.1:{port}\"}
";

fn make_fixture() -> Fixture {
    assert!(
        Command::new("docker-registry")
            .arg("--version")
            .output()
            .is_ok(),
        "docker-registry is not installed (apt-get install docker-registry)"
    );
    let base = std::env::temp_dir().join(format!("picolet-registry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let storage = base.join("storage");
    let plain = Registry::start(
        &base,
        "plain",
        &PLAIN_CONFIG.replace("STORAGE", &storage.display().to_string()),
        false,
    );
    let host = plain.host();
    // busybox:1 as built by tests/images/build-busybox.sh.
    let oci = images().join("busybox-oci");
    push(
        &format!("oci:{}:picolet.test/busybox:1", oci.display()),
        &format!("docker://{host}/busybox:1"),
        false,
    );
    let bb_manifest: Value =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    let bb_digest = bb_manifest["manifests"][0]["digest"].as_str().unwrap();
    let read_blob = |d: &str| {
        std::fs::read(
            oci.join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let m: Value = serde_json::from_slice(&read_blob(bb_digest)).unwrap();
    let c: Value =
        serde_json::from_slice(&read_blob(m["config"]["digest"].as_str().unwrap())).unwrap();
    let busybox_layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let bb = (
        read_blob(&busybox_layer),
        c["rootfs"]["diff_ids"][0]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string(),
    );

    // three:1: busybox's layer + 6 MiB of noise + a small layer.
    let mut l = Layout::new(base.join("three"));
    let big = layer(&[("big.bin", noise(6 << 20, 7))]);
    let small = layer(&[("etc/three", b"three\n".to_vec())]);
    let three_big_layer = format!("sha256:{}", sha256_hex(&big.0));
    let three_big_size = big.0.len() as u64;
    let layers = [bb.clone(), big, small];
    let desc = l.image("amd64", "", &layers);
    let three_size =
        desc["size"].as_u64().unwrap() + layers.iter().map(|l| l.0.len() as u64).sum::<u64>() + 400; // config, about
    l.tag(desc, "three");
    l.write();
    push(
        &format!("oci:{}:three", l.dir.display()),
        &format!("docker://{host}/three:1"),
        false,
    );

    // multi:1: an index with amd64, arm64 and arm/v7 images.
    let mut l = Layout::new(base.join("multi"));
    let mut multi_digests = BTreeMap::new();
    let mut entries = Vec::new();
    for (arch, variant) in [("amd64", ""), ("arm64", "v8"), ("arm", "v7")] {
        let lay = layer(&[("etc/arch", format!("{arch}{variant}\n").into_bytes())]);
        let d = l.image(arch, variant, &[bb.clone(), lay]);
        let name = if variant.is_empty() {
            format!("linux/{arch}")
        } else {
            format!("linux/{arch}/{variant}")
        };
        multi_digests.insert(name, d["digest"].as_str().unwrap().to_string());
        entries.push(d);
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
    let (idx_digest, idx_size) = l.blob(index.to_string().as_bytes());
    l.tag(
        json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": idx_digest, "size": idx_size}),
        "multi",
    );
    l.write();
    push(
        &format!("oci:{}:multi", l.dir.display()),
        &format!("docker://{host}/multi:1"),
        true,
    );

    // The TLS + htpasswd instance.
    let ca = base.join("ca.pem");
    let sh = format!(
        "set -e; cd {d}; \
         openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=picolet-test-ca 2>/dev/null; \
         openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null; \
         printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > ext; \
         openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext 2>/dev/null; \
         openssl req -newkey rsa:2048 -nodes -keyout cli.key -out cli.csr -subj /CN=picolet-device 2>/dev/null; \
         printf 'extendedKeyUsage=clientAuth\\n' > cext; \
         openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cli.pem -days 2 -extfile cext 2>/dev/null",
        d = base.display()
    );
    run(Command::new("sh").args(["-c", &sh]));
    std::fs::write(base.join("htpasswd"), format!("{USER}:{HTPASSWD_HASH}\n")).unwrap();
    let readonly = format!(
        "version: 0.1
log: {{level: info, accesslog: {{disabled: false}}}}
storage:
  filesystem: {{rootdirectory: {s}}}
  maintenance: {{readonly: {{enabled: true}}, uploadpurging: {{enabled: false}}}}
",
        s = storage.display()
    );
    let secure = Registry::start(
        &base,
        "secure",
        &format!(
            "{readonly}http:
  addr: \"127.0.0.1:{{port}}\"
  tls: {{certificate: {d}/srv.pem, key: {d}/srv.key}}
auth:
  htpasswd: {{realm: picolet-test, path: {d}/htpasswd}}
",
            d = base.display()
        ),
        true,
    );

    // Mutual TLS: the same CA signs the client certificates it accepts.
    let mtls = Registry::start(
        &base,
        "mtls",
        &format!(
            "{readonly}http:
  addr: \"127.0.0.1:{{port}}\"
  tls: {{certificate: {d}/srv.pem, key: {d}/srv.key, clientcas: [{d}/ca.pem]}}
",
            d = base.display()
        ),
        true,
    );

    // The token instance and its token server.
    let sh = format!(
        "set -e; cd {d}; \
         openssl req -x509 -newkey rsa:2048 -nodes -keyout tok.key -out tok.pem -days 2 -subj /CN=picolet-test-token 2>/dev/null; \
         openssl pkcs8 -topk8 -nocrypt -in tok.key -outform DER -out tok.pk8",
        d = base.display()
    );
    run(Command::new("sh").args(["-c", &sh]));
    let token_server = TokenServer::start(&base);
    let token = Registry::start(
        &base,
        "token",
        &format!(
            "{readonly}http: {{addr: \"127.0.0.1:{{port}}\"}}
auth:
  token:
    realm: http://127.0.0.1:{tp}/token
    service: picolet-test-registry
    issuer: picolet-test-issuer
    rootcertbundle: {d}/tok.pem
",
            tp = token_server.port,
            d = base.display()
        ),
        false,
    );
    Fixture {
        dir: base,
        plain,
        secure,
        ca,
        mtls,
        token,
        token_server,
        busybox_layer,
        three_size,
        three_big_layer,
        three_big_size,
        multi_digests,
    }
}

/// A token server: anonymous or Basic (USER/PASSWORD) requests get an
/// RS256 JWT for the scope asked; `lifetime` (seconds) is how long the
/// next tokens live (the registry allows 60 s of clock skew, so a token
/// "for 2 s" expires 62 s before a normal one would).
struct TokenServer {
    port: u16,
    issued: Arc<AtomicUsize>,
    lifetime: Arc<Mutex<i64>>,
}

impl TokenServer {
    fn start(dir: &Path) -> TokenServer {
        let key =
            ring::signature::RsaKeyPair::from_pkcs8(&std::fs::read(dir.join("tok.pk8")).unwrap())
                .expect("RSA key");
        let pem = std::fs::read_to_string(dir.join("tok.pem")).unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let issued = Arc::new(AtomicUsize::new(0));
        let lifetime = Arc::new(Mutex::new(300i64));
        let (iss, lt) = (issued.clone(), lifetime.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut first = String::new();
                let _ = r.read_line(&mut first);
                let mut auth = None;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("Authorization: ") {
                        auth = Some(v.trim().to_string());
                    }
                }
                let query = first
                    .split(' ')
                    .nth(1)
                    .unwrap_or("")
                    .split_once('?')
                    .map(|x| x.1)
                    .unwrap_or("");
                let param = |k: &str| {
                    query
                        .split('&')
                        .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                        .map(|v| {
                            v.replace("%3A", ":")
                                .replace("%2F", "/")
                                .replace("%2C", ",")
                        })
                };
                let good = format!(
                    "Basic {}",
                    base64_encode(format!("{USER}:{PASSWORD}").as_bytes())
                );
                let subject = match auth {
                    Some(a) if a == good => USER.to_string(),
                    Some(_) => {
                        let _ = s.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        continue;
                    }
                    None => String::new(),
                };
                let scope = param("scope").unwrap_or_default();
                let access: Vec<Value> = scope
                    .split(' ')
                    .filter_map(|sc| {
                        let mut p = sc.splitn(3, ':');
                        let (t, n, a) = (p.next()?, p.next()?, p.next()?);
                        // Anonymous users may pull busybox only.
                        if subject.is_empty() && n != "busybox" {
                            return Some(json!({"type": t, "name": n, "actions": []}));
                        }
                        Some(json!({"type": t, "name": n, "actions": a.split(',').filter(|x| *x == "pull").collect::<Vec<_>>()}))
                    })
                    .collect();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
                let life = *lt.lock().unwrap();
                let n = iss.fetch_add(1, Ordering::SeqCst);
                let header = json!({"alg": "RS256", "typ": "JWT", "x5c": [b64]});
                let claims = json!({
                    "iss": "picolet-test-issuer", "sub": subject, "aud": "picolet-test-registry",
                    "exp": now + life - if life < 60 { 60 } else { 0 },
                    "nbf": now - 10, "iat": now - 10, "jti": format!("t{n}"), "access": access,
                });
                let signing_input = format!(
                    "{}.{}",
                    base64url(header.to_string().as_bytes()),
                    base64url(claims.to_string().as_bytes())
                );
                let mut sig = vec![0; key.public().modulus_len()];
                key.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &ring::rand::SystemRandom::new(),
                    signing_input.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                let jwt = format!("{signing_input}.{}", base64url(&sig));
                let body = json!({"token": jwt, "expires_in": life}).to_string();
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer {
            port,
            issued,
            lifetime,
        }
    }
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn base64url(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A TCP proxy to `upstream`: records request heads, counts the bytes
/// it sends back, and may cut each response after `cut` bytes or pace it
/// at `rate` bytes/s.
struct Proxy {
    port: u16,
    served: Arc<AtomicU64>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn start(upstream: u16, cut: Option<u64>, rate: Option<u64>) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let served = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (sv, rq) = (served.clone(), requests.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut client) = c else { continue };
                let (sv, rq) = (sv.clone(), rq.clone());
                std::thread::spawn(move || {
                    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        return;
                    };
                    // The request head (our client sends no bodies).
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match client.read(&mut b) {
                            Ok(1) => head.push(b[0]),
                            _ => return,
                        }
                    }
                    rq.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    if up.write_all(&head).is_err() {
                        return;
                    }
                    let mut sent = 0u64;
                    let mut buf = vec![0u8; 16 * 1024];
                    let start = Instant::now();
                    loop {
                        let n = match up.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let n = match cut {
                            Some(c) => n.min((c - sent) as usize),
                            None => n,
                        };
                        if client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent += n as u64;
                        sv.fetch_add(n as u64, Ordering::SeqCst);
                        if cut.is_some_and(|c| sent >= c) {
                            break;
                        }
                        if let Some(r) = rate {
                            let due = Duration::from_secs_f64(sent as f64 / r as f64);
                            if let Some(wait) = due.checked_sub(start.elapsed()) {
                                std::thread::sleep(wait);
                            }
                        }
                    }
                    let _ = client.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Proxy {
            port,
            served,
            requests,
        }
    }
}

/// A fresh store directory and the files a pull is configured with.
struct Dirs {
    dir: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        Dirs {
            dir: tempfile::Builder::new()
                .prefix("picolet-pull-")
                .tempdir()
                .unwrap(),
        }
    }
    fn store(&self) -> PathBuf {
        self.dir.path().join("images")
    }
    /// registries.yaml text → its path.
    fn registries(&self, text: &str) -> PathBuf {
        let p = self.dir.path().join("registries.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }
    fn auth(&self, text: &str) -> PathBuf {
        let p = self.dir.path().join("auth.json");
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// `registries.yaml` that lists `host` insecure (plain HTTP at `via`).
fn insecure(host: &str, via_port: u16) -> String {
    format!("mirrors:\n  \"{host}\":\n    endpoint: [\"http://127.0.0.1:{via_port}\"]\n")
}

fn helper_cmd(reference: &str, d: &Dirs, registries: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("pull")
        .arg(reference)
        .arg("--store")
        .arg(d.store())
        .arg("--registries-config")
        .arg(registries)
        .arg("--auth-file")
        .arg(d.dir.path().join("no-auth.json"))
        .args(["--timeout", "5"])
        .args(extra)
        .env_remove("PICOLET_AUTH_FILE");
    c
}

/// Runs the helper; returns its exit success and its JSON lines.
fn helper(reference: &str, d: &Dirs, registries: &Path, extra: &[&str]) -> (bool, Vec<Value>) {
    let out = helper_cmd(reference, d, registries, extra)
        .output()
        .unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (out.status.success(), lines)
}

fn last(lines: &[Value]) -> &Value {
    lines.last().expect("the helper printed nothing")
}

fn pulled(lines: &[Value]) -> &Value {
    let l = last(lines);
    assert_eq!(l["event"], "pulled", "{lines:#?}");
    l
}

/// Whether `picolet image ls --state-dir` lists `reference`.
fn listed(d: &Dirs, reference: &str) -> bool {
    let out = Command::new(BIN)
        .args(["image", "ls", "--state-dir"])
        .arg(d.dir.path())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains(reference.rsplit_once(':').unwrap().0)
}

#[test]
fn anonymous_pulls_by_tag_and_by_digest_and_the_image_resolves() {
    if !root_or_skip() {
        return;
    }
    let f = fixture();
    let d = Dirs::new();
    let reg = d.registries(&insecure(&f.plain.host(), f.plain.port));
    let r = format!("{}/busybox:1", f.plain.host());
    let (ok, lines) = helper(&r, &d, &reg, &[]);
    assert!(ok, "{lines:#?}");
    let p = pulled(&lines);
    assert_eq!(p["reference"], r.as_str());
    let digest = p["digest"].as_str().unwrap().to_string();
    assert!(p["image_id"].as_str().unwrap().starts_with("sha256:"));
    assert!(p["size"].as_u64().unwrap() > 1_000_000, "{p}");
    assert_eq!(lines[0]["event"], "resolved");
    assert!(listed(&d, &r));
    let store = picolet::image::ImageStore::open(d.store()).unwrap();
    let img = store.resolve(&r).unwrap().expect("pulled image resolves");
    assert!(img.layers[0].join("bin/busybox").exists());
    // By digest: the same manifest, nothing downloaded again.
    let by_digest = format!("{}/busybox@{digest}", f.plain.host());
    let (ok, lines) = helper(&by_digest, &d, &reg, &[]);
    assert!(ok, "{lines:#?}");
    assert_eq!(pulled(&lines)["downloaded"], 0);
    assert!(store.resolve(&by_digest).unwrap().is_some());
    // A wrong digest is "not found"; a stopped registry "unreachable".
    let wrong = format!("{}/busybox@sha256:{}", f.plain.host(), "0".repeat(64));
    let (ok, lines) = helper(&wrong, &d, &reg, &[]);
    assert!(!ok);
    assert_eq!(last(&lines)["kind"], "not-found", "{lines:#?}");
    let dead = free_port();
    let reg2 = d.registries(&insecure(&format!("127.0.0.1:{dead}"), dead));
    let (ok, lines) = helper(&format!("127.0.0.1:{dead}/busybox:1"), &d, &reg2, &[]);
    assert!(!ok);
    assert_eq!(last(&lines)["kind"], "unreachable", "{lines:#?}");
}

#[test]
fn a_shared_layer_already_in_the_store_is_never_fetched_again() {
    if !root_or_skip() {
        return;
    }
    let f = fixture();
    // Its own repository, so that no other test's pulls are in the log.
    let host = f.plain.host();
    push(
        &format!("docker://{host}/three:1"),
        &format!("docker://{host}/dedupe/three:1"),
        false,
    );
    let d = Dirs::new();
    let reg = d.registries(&insecure(&host, f.plain.port));
    let (ok, lines) = helper(&format!("{host}/busybox:1"), &d, &reg, &[]);
    assert!(ok, "{lines:#?}");
    let (ok, lines) = helper(&format!("{host}/dedupe/three:1"), &d, &reg, &[]);
    assert!(ok, "{lines:#?}");
    let shared: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "blob" && l["digest"] == f.busybox_layer.as_str())
        .collect();
    assert_eq!(shared.len(), 1, "{lines:#?}");
    assert_eq!(shared[0]["present"], true);
    // The registry's access log: the other layers were fetched, the
    // shared one never was, from this repository.
    let log = f.plain.access_log();
    let gets = |digest: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("\"GET /v2/dedupe/three/blobs/{digest} ")))
            .count()
    };
    assert_eq!(gets(&f.three_big_layer), 1, "{log}");
    assert_eq!(gets(&f.busybox_layer), 0, "{log}");
    // Pulling it again fetches no blob at all.
    let (ok, lines) = helper(&format!("{host}/dedupe/three:1"), &d, &reg, &[]);
    assert!(ok);
    assert_eq!(pulled(&lines)["downloaded"], 0);
    assert_eq!(gets(&f.three_big_layer), 1);
}

#[test]
fn connections_cut_every_512_kib_still_complete_the_pull_with_little_overhead() {
    if !root_or_skip() {
        return;
    }
    let f = fixture();
    let proxy = Proxy::start(f.plain.port, Some(512 * 1024), None);
    let d = Dirs::new();
    let reg = d.registries(&insecure(&f.plain.host(), proxy.port));
    let (ok, lines) = helper(&format!("{}/three:1", f.plain.host()), &d, &reg, &[]);
    assert!(ok, "{lines:#?}");
    let p = pulled(&lines);
    let retries = lines.iter().filter(|l| l["event"] == "retry").count();
    assert!(
        retries >= 10,
        "6 MiB in 512 KiB pieces needs many resumes: {retries}"
    );
    // Every resume asked for the next byte and got it (206, no refetch).
    let ranged = proxy
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains(&f.three_big_layer) && r.contains("Range: bytes="))
        .count();
    assert!(ranged >= 10, "{ranged}");
    let served = proxy.served.load(Ordering::SeqCst);
    let size = p["size"].as_u64().unwrap();
    assert!(size >= f.three_size - 1000, "{size} vs {}", f.three_size);
    assert!(
        served as f64 <= 1.1 * size as f64,
        "served {served} bytes for a {size}-byte image"
    );
    let store = picolet::image::ImageStore::open(d.store()).unwrap();
    let img = store
        .resolve(&format!("{}/three:1", f.plain.host()))
        .unwrap()
        .unwrap();
    assert_eq!(img.layers.len(), 3);
    // Every resume carried on the layer's unpacking from the stream.
    assert_eq!(big_layer_unpack(&lines, f), "stream", "{lines:#?}");
    assert!(
        std::fs::read(img.layers[1].join("big.bin")).unwrap() == noise(6 << 20, 7),
        "big.bin differs from what was pushed"
    );
}

/// How the helper unpacked three:1's big layer (its `blob` line).
fn big_layer_unpack<'a>(lines: &'a [Value], f: &Fixture) -> &'a str {
    lines
        .iter()
        .find(|l| l["event"] == "blob" && l["digest"] == f.three_big_layer.as_str())
        .and_then(|l| l["unpack"].as_str())
        .expect("a blob line for the big layer")
}

#[test]
fn a_helper_killed_mid_layer_resumes_from_the_partial_file() {
    if !root_or_skip() {
        return;
    }
    let f = fixture();
    let slow = Proxy::start(f.plain.port, None, Some(1 << 20));
    let d = Dirs::new();
    let reg = d.registries(&insecure(&f.plain.host(), slow.port));
    let r = format!("{}/three:1", f.plain.host());
    let mut child = helper_cmd(&r, &d, &reg, &[])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let partial = d.store().join("blobs/sha256").join(format!(
        "{}.partial",
        f.three_big_layer.trim_start_matches("sha256:")
    ));
    wait_for(30, "half of the big layer", || {
        let n = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        (n > f.three_big_size / 3).then_some(())
    });
    child.kill().unwrap(); // SIGKILL, by PID
    child.wait().unwrap();
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept < f.three_big_size, "{kept}");
    // The rerun (full speed) asks for the rest only.
    let proxy = Proxy::start(f.plain.port, None, None);
    let reg = d.registries(&insecure(&f.plain.host(), proxy.port));
    let (ok, lines) = helper(&r, &d, &reg, &[]);
    assert!(ok, "{lines:#?}");
    let reqs = proxy.requests.lock().unwrap().clone();
    let big: Vec<&String> = reqs
        .iter()
        .filter(|q| q.contains(&f.three_big_layer))
        .collect();
    assert_eq!(big.len(), 1, "{reqs:#?}");
    let range = big[0]
        .lines()
        .find_map(|l| l.strip_prefix("Range: bytes="))
        .expect("a Range request");
    let from: u64 = range.trim_end_matches('-').parse().unwrap();
    assert!(from >= kept - 64 * 1024 && from <= kept, "{from} vs {kept}");
    let blob = pulled(&lines);
    assert!(
        blob["downloaded"].as_u64().unwrap() < f.three_size - kept / 2,
        "{blob}"
    );
    assert!(!partial.exists());
    // The partial file was read back into the unpacker, then the rest
    // streamed in: the layer's file is whole.
    assert_eq!(big_layer_unpack(&lines, f), "stream", "{lines:#?}");
    let store = picolet::image::ImageStore::open(d.store()).unwrap();
    let img = store.resolve(&r).unwrap().unwrap();
    assert!(
        std::fs::read(img.layers[1].join("big.bin")).unwrap() == noise(6 << 20, 7),
        "big.bin differs from what was pushed"
    );
}

#[test]
fn a_multi_arch_index_gives_each_platform_its_manifest() {
    if !root_or_skip() {
        return;
    }
    let f = fixture();
    let d = Dirs::new();
    let reg = d.registries(&insecure(&f.plain.host(), f.plain.port));
    let r = format!("{}/multi:1", f.plain.host());
    for (platform, want) in [
        ("linux/arm64", "linux/arm64/v8"),
        ("linux/arm/v7", "linux/arm/v7"),
        ("linux/arm/v8", "linux/arm/v7"),
        ("linux/amd64", "linux/amd64"),
    ] {
        let (ok, lines) = helper(&r, &d, &reg, &["--platform", platform]);
        assert!(ok, "{platform}: {lines:#?}");
        assert_eq!(
            pulled(&lines)["digest"].as_str().unwrap(),
            f.multi_digests[want],
            "{platform}"
        );
    }
    // The Pi Zero's board file pins linux/arm/v6: not in this index.
    let (ok, lines) = helper(&r, &d, &reg, &["--board", "raspberry-pi-zero"]);
    assert!(!ok);
    let msg = last(&lines)["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("no manifest for platform linux/arm/v6")
            && msg.contains("linux/arm64/v8, linux/arm/v7"),
        "{msg}"
    );
}

#[test]
fn tls_with_a_test_ca_and_htpasswd_basic_auth() {
    if !root_or_skip() {
        return;
    }
    let f = fixture();
    let d = Dirs::new();
    let host = f.secure.host();
    let r = format!("{host}/busybox:1");
    // Without the CA: a TLS error (not "unreachable": the server answered).
    let reg = d.registries("");
    let (ok, lines) = helper(&r, &d, &reg, &[]);
    assert!(!ok);
    let e = last(&lines);
    assert_eq!(e["kind"], "other", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("certificate"),
        "{e}"
    );
    // With the CA but no credentials: unauthorized, saying so.
    let reg = d.registries(&format!(
        "configs:\n  \"{host}\":\n    tls:\n      ca_file: {}\n",
        f.ca.display()
    ));
    let (ok, lines) = helper(&r, &d, &reg, &[]);
    assert!(!ok);
    let e = last(&lines);
    assert_eq!(e["kind"], "unauthorized", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("no credentials"),
        "{e}"
    );
    // Wrong password (auth.json): unauthorized.
    let bad = d.auth(&format!(
        r#"{{"auths":{{"{host}":{{"auth":"{}"}}}}}}"#,
        base64_encode(format!("{USER}:nope").as_bytes())
    ));
    let (ok, lines) = helper(&r, &d, &reg, &["--auth-file", bad.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(last(&lines)["kind"], "unauthorized", "{lines:#?}");
    // Right password: pulled.
    let good = d.auth(&format!(
        r#"{{"auths":{{"{host}":{{"username":"{USER}","password":"{PASSWORD}"}}}}}}"#
    ));
    let (ok, lines) = helper(&r, &d, &reg, &["--auth-file", good.to_str().unwrap()]);
    assert!(ok, "{lines:#?}");
    assert_eq!(pulled(&lines)["reference"], r.as_str());
    // The same credentials from registries.yaml configs.<host>.auth.
    let d2 = Dirs::new();
    let reg = d2.registries(&format!(
        "configs:\n  \"{host}\":\n    auth: {{username: {USER}, password: {PASSWORD}}}\n    tls: {{ca_file: {}}}\n",
        f.ca.display()
    ));
    let (ok, lines) = helper(&r, &d2, &reg, &[]);
    assert!(ok, "{lines:#?}");
}

#[test]
fn bearer_tokens_anonymous_with_credentials_and_one_that_expires_mid_pull() {
    if !root_or_skip() {
        return;
    }
    let f = fixture();
    let host = f.token.host();
    let d = Dirs::new();
    let reg = d.registries(&insecure(&host, f.token.port));
    // Anonymous: busybox is public here.
    let (ok, lines) = helper(&format!("{host}/busybox:1"), &d, &reg, &[]);
    assert!(ok, "{lines:#?}");
    // three is not: unauthorized without credentials.
    let r = format!("{host}/three:1");
    let (ok, lines) = helper(&r, &d, &reg, &[]);
    assert!(!ok);
    assert_eq!(last(&lines)["kind"], "unauthorized", "{lines:#?}");
    // With credentials, through a proxy that cuts every 1 MiB and paces
    // at 2 MiB/s, with tokens that live 2 s: the resumed requests after
    // the expiry get 401 invalid_token, a new token, and go on from the
    // same byte.
    let proxy = Proxy::start(f.token.port, Some(1 << 20), Some(2 << 20));
    // Credentials go to an endpoint by its own host name (the proxy is a
    // mirror here), never to another host.
    let auth = d.auth(&format!(
        r#"{{"auths":{{"127.0.0.1:{}":{{"username":"{USER}","password":"{PASSWORD}"}}}}}}"#,
        proxy.port
    ));
    let reg = d.registries(&insecure(&host, proxy.port));
    *f.token_server.lifetime.lock().unwrap() = 2;
    let before = f.token_server.issued.load(Ordering::SeqCst);
    let (ok, lines) = helper(&r, &d, &reg, &["--auth-file", auth.to_str().unwrap()]);
    *f.token_server.lifetime.lock().unwrap() = 300;
    assert!(ok, "{lines:#?}");
    let tokens = f.token_server.issued.load(Ordering::SeqCst) - before;
    assert!(tokens >= 2, "one token lasted the whole pull: {tokens}");
    // The registry refused the expired token.
    let log = f.token.access_log();
    assert!(log.contains("token not to be used after"), "{log}");
    // Resumed from the same byte: Range offsets only grow for the big blob.
    let reqs = proxy.requests.lock().unwrap().clone();
    let offsets: Vec<u64> = reqs
        .iter()
        .filter(|q| q.contains(&f.three_big_layer))
        .map(|q| {
            q.lines()
                .find_map(|l| l.strip_prefix("Range: bytes="))
                .map_or(0, |r| r.trim_end_matches('-').parse().unwrap())
        })
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    let served = proxy.served.load(Ordering::SeqCst);
    assert!(served as f64 <= 1.1 * f.three_size as f64, "{served}");
    let _ = &f.dir;
}

#[test]
fn image_pull_prints_plain_lines_without_a_tty() {
    if !root_or_skip() {
        return;
    }
    let f = fixture();
    let d = Dirs::new();
    let reg = d.registries(&insecure(&f.plain.host(), f.plain.port));
    let r = format!("{}/busybox:1", f.plain.host());
    let out = Command::new(BIN)
        .args(["image", "pull", &r, "--state-dir"])
        .arg(d.dir.path())
        .arg("--registries-config")
        .arg(&reg)
        .arg("--auth-file")
        .arg(d.dir.path().join("none.json"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(": pulled "), "{text}");
    assert!(text.contains(&format!("pulled {r} (sha256:")), "{text}");
    assert!(!text.contains('\r'), "{text}");
    let out = Command::new(BIN)
        .args(["image", "pull", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--registries-config"));
}

#[test]
fn mirrors_are_tried_in_order_with_their_rewrite_then_the_upstream() {
    if !root_or_skip() {
        return;
    }
    let f = fixture();
    let d = Dirs::new();
    // "registry.invalid" has a dead mirror, then the test registry, which
    // serves its "mirrored/…" repositories as "…".
    let dead = free_port();
    let reg = d.registries(&format!(
        "mirrors:\n  registry.invalid:\n    endpoint:\n      - \"http://127.0.0.1:{dead}\"\n      - \"http://{}\"\n    rewrite:\n      \"^mirrored/(.*)\": \"$1\"\n",
        f.plain.host()
    ));
    let r = "registry.invalid/mirrored/busybox:1";
    let (ok, lines) = helper(r, &d, &reg, &[]);
    assert!(ok, "{lines:#?}");
    assert_eq!(lines[0]["endpoint"], format!("http://{}/", f.plain.host()));
    assert_eq!(pulled(&lines)["reference"], r);
    // Not in the mirror, and the upstream does not resolve: the mirror's
    // 404 is the answer, not "unreachable".
    let (ok, lines) = helper("registry.invalid/mirrored/nothing:1", &d, &reg, &[]);
    assert!(!ok);
    assert_eq!(last(&lines)["kind"], "not-found", "{lines:#?}");
    // No mirror answers and the upstream does not resolve: unreachable.
    let reg = d.registries(&format!(
        "mirrors:\n  registry.invalid:\n    endpoint: [\"http://127.0.0.1:{dead}\"]\n"
    ));
    let (ok, lines) = helper(r, &d, &reg, &[]);
    assert!(!ok);
    assert_eq!(last(&lines)["kind"], "unreachable", "{lines:#?}");
}

#[test]
fn mutual_tls_with_a_client_certificate_from_registries_yaml() {
    if !root_or_skip() {
        return;
    }
    let f = fixture();
    let d = Dirs::new();
    let host = f.mtls.host();
    let r = format!("{host}/busybox:1");
    let ca = f.ca.display();
    let reg = d.registries(&format!(
        "configs:\n  \"{host}\":\n    tls: {{ca_file: {ca}}}\n"
    ));
    let (ok, lines) = helper(&r, &d, &reg, &[]);
    assert!(!ok, "{lines:#?}");
    assert_eq!(last(&lines)["kind"], "other", "{lines:#?}");
    let msg = last(&lines)["message"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(msg.contains("certificate"), "{msg}");
    let dir = f.dir.display();
    let reg = d.registries(&format!(
        "configs:\n  \"{host}\":\n    tls: {{ca_file: {ca}, cert_file: {dir}/cli.pem, key_file: {dir}/cli.key}}\n"
    ));
    let (ok, lines) = helper(&r, &d, &reg, &[]);
    assert!(ok, "{lines:#?}");
    assert_eq!(pulled(&lines)["reference"], r.as_str());
}

/// `describe pod`'s text, spaces normalised.
fn described(a: &support::Agent, pod: &str) -> String {
    let out = a.cli(&["describe", "pod", pod]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_pods_image_pull_secrets_authenticate_its_pulls_and_only_its_own() {
    if !root_or_skip() {
        return;
    }
    let f = fixture();
    let d = Dirs::new();
    let host = f.secure.host();
    let reg = d.registries(&format!(
        "configs:\n  \"{host}\":\n    tls:\n      ca_file: {}\n",
        f.ca.display()
    ));
    let no_auth = d.dir.path().join("no-auth.json");
    let a = support::Agent::start_env(&[
        ("PICOLET_REGISTRIES_CONFIG", reg.to_str().unwrap()),
        ("PICOLET_AUTH_FILE", no_auth.to_str().unwrap()),
    ]);
    let image = format!("{host}/busybox:1");
    let good = json!({"auths": {&host: {"username": USER, "password": PASSWORD}}});
    let wrong = json!({&host: {"auth": base64_encode(format!("{USER}:nope").as_bytes())}});
    // Always: every pod asks the registry, all at once.
    let pod = |name: &str, secrets: &str| {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  \
             terminationGracePeriodSeconds: 1\n  imagePullSecrets: [{secrets}]\n  containers:\n  \
             - name: main\n    image: {image}\n    imagePullPolicy: Always\n    \
             command: [sleep, '1000']\n"
        )
    };
    a.apply(
        "pods.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: regcred}}\n\
             type: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n\
             ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: wrongcred}}\n\
             type: kubernetes.io/dockercfg\nstringData:\n  .dockercfg: '{wrong}'\n{}{}{}{}",
            base64_encode(good.to_string().as_bytes()),
            pod("good", "{name: regcred}"),
            pod("wrong", "{name: wrongcred}"),
            pod("none", ""),
            pod("missing", "{name: nope}, {name: regcred}"),
        ),
    );
    a.wait_running("good", "main", 60);
    // A missing secret: the kubelet's warning, and the pull goes on with
    // the others.
    a.wait_running("missing", "main", 60);
    let text = described(&a, "missing");
    assert!(
        text.contains("Warning FailedToRetrieveImagePullSecret ")
            && text.contains(
                " Unable to retrieve some image pull secrets (nope); attempting to pull the \
                 image may not succeed."
            ),
        "{text}"
    );
    // Another pod's credentials are not lent: wrong ones are refused, and
    // a pod without secrets has none.
    for (name, why) in [("wrong", "were refused"), ("none", "no credentials")] {
        let s = wait_for(60, &format!("{name}: ErrImagePull"), || {
            a.container(name, "main")
                .filter(|s| s["state"]["waiting"]["reason"] == "ErrImagePull")
        });
        let m = s["state"]["waiting"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            m.contains(": unauthorized (credentials missing or refused): ") && m.contains(why),
            "{name}: {m}"
        );
    }
    assert!(!described(&a, "good").contains("FailedToRetrieveImagePullSecret"));
    // Never logged, and no credentials file left behind.
    assert!(!a.agent_log().contains(PASSWORD));
    let left: Vec<_> = std::fs::read_dir(a.run_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pull-auth-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
