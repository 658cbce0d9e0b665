//! Test support: a real `mosquitto` on free loopback ports, and a test PKI
//! made with the `openssl` CLI.
//!
//! Each [`Broker`] runs one `mosquitto -c <tempdir>/mosquitto.conf` child
//! (persistence off, anonymous allowed, `user root` so it keeps access to
//! the temp files) and kills and reaps exactly that PID on drop. Logs go to
//! `<tempdir>/broker.log` and are shown when it fails to start.
//!
//! **A second broker:** with `PICOLET_TEST_BROKER=aedes`, brokers with
//! plain listeners only and no extra config ([`Broker::start`] with `""`
//! listeners: what `tests/fleet.rs`, `tests/apply.rs` and the session's
//! broker tests use) are [aedes](https://github.com/moscajs/aedes) instead,
//! an independent MQTT 3.1.1 broker in Node.js, run as `node
//! <tempdir>/aedes.mjs` with in-memory persistence (like mosquitto's
//! `persistence false`: a restart forgets retained messages). It is
//! installed by `scripts/test.sh` into `target/aedes` (`npm ci` of
//! `tests/aedes/`, which pins it; `PICOLET_AEDES_DIR` to use another
//! directory). TLS listeners and mosquitto
//! limits (`start_with`) stay on mosquitto. `PICOLET_TEST_BROKER=mosquitto`
//! or unset: mosquitto; any other value is refused.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `mosquitto`'s path, or `None` (with the reason printed) when it is not
/// installed: tests then return early.
pub(crate) fn mosquitto() -> Option<PathBuf> {
    for p in [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ] {
        if Path::new(p).exists() {
            return Some(PathBuf::from(p));
        }
    }
    skip_or_fail("mosquitto is not installed (apt-get install mosquitto)")
}

/// `openssl`'s path, or `None` (with the reason printed).
pub(crate) fn openssl() -> Option<PathBuf> {
    for p in ["/usr/bin/openssl", "/usr/local/bin/openssl"] {
        if Path::new(p).exists() {
            return Some(PathBuf::from(p));
        }
    }
    skip_or_fail("openssl is not installed (apt-get install openssl)")
}

/// Says why a test returns early; in CI (`PICOLET_REQUIRE_ROOT` set, as
/// scripts/test.sh does) a missing tool is a failure, never a skip.
/// The lib's unit tests use it through `testutil::cannot_run`.
pub(crate) fn skip_or_fail<T>(why: &str) -> Option<T> {
    if std::env::var_os("PICOLET_REQUIRE_ROOT").is_some() {
        panic!("{why}, and PICOLET_REQUIRE_ROOT is set: CI must run this test");
    }
    eprintln!("SKIP: {why}");
    None
}

/// Loopback ports that were free a moment ago.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The aedes broker script: one listener per port given, logs on stdout.
const AEDES_SCRIPT: &str = r#"import { createServer } from 'node:net'
import { pathToFileURL } from 'node:url'
const [module, ...ports] = process.argv.slice(2)
const m = await import(pathToFileURL(module).href)
// aedes 0.51 (pinned: Node.js >= 16) exports a factory; 1.x a class.
const broker = m.Aedes?.createBroker ? await m.Aedes.createBroker() : (m.default ?? m)()
broker.on('clientError', (c, e) => console.log(`client ${c.id}: ${e.message}`))
broker.on('connectionError', (c, e) => console.log(`connection: ${e.message}`))
for (const port of ports) {
  createServer(broker.handle).listen(Number(port), '127.0.0.1',
    () => console.log(`aedes listening on 127.0.0.1:${port}`))
}
"#;

/// `PICOLET_TEST_BROKER=aedes`: the paths of `node` and of aedes' module,
/// or `None` (with the reason printed) when either is missing.
fn aedes() -> Option<(PathBuf, PathBuf)> {
    let dir = std::env::var_os("PICOLET_AEDES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/aedes"));
    let module = dir.join("node_modules/aedes/aedes.js");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let node = std::env::split_paths(&path)
        .map(|d| d.join("node"))
        .find(|p| p.exists());
    match node {
        Some(node) if module.exists() => Some((node, module)),
        Some(_) => skip_or_fail(&format!(
            "PICOLET_TEST_BROKER=aedes, but {} is missing (cp tests/aedes/package*.json {dir} && npm ci --prefix {dir}, as scripts/test.sh does)",
            module.display(),
            dir = dir.display()
        )),
        None => skip_or_fail("PICOLET_TEST_BROKER=aedes, but node is not installed"),
    }
}

/// Whether `PICOLET_TEST_BROKER` asks for aedes; panics on a value that
/// names no broker.
fn aedes_wanted() -> bool {
    match std::env::var("PICOLET_TEST_BROKER").as_deref() {
        Err(_) | Ok("") | Ok("mosquitto") => false,
        Ok("aedes") => true,
        Ok(other) => {
            panic!("PICOLET_TEST_BROKER={other:?}: the test brokers are mosquitto and aedes")
        }
    }
}

/// A running mosquitto (or aedes, see the module doc).
#[derive(Debug)]
pub(crate) struct Broker {
    exe: PathBuf,
    /// The arguments after `exe`.
    args: Vec<PathBuf>,
    dir: tempfile::TempDir,
    /// One port per listener, in the order given to `start`.
    pub ports: Vec<u16>,
    child: Option<Child>,
}

impl Broker {
    /// Starts mosquitto with one loopback listener per entry of `listeners`;
    /// each entry holds the lines that follow its `listener` line (TLS
    /// settings), `""` for plain MQTT. `None` when mosquitto is missing.
    pub(crate) fn start(listeners: &[&str]) -> Option<Broker> {
        Broker::start_with("", listeners)
    }

    /// [`Broker::start`] with extra global config lines (`global`, each
    /// ending in a newline), e.g. limits.
    pub(crate) fn start_with(global: &str, listeners: &[&str]) -> Option<Broker> {
        if global.is_empty() && listeners.iter().all(|l| l.is_empty()) && aedes_wanted() {
            return Broker::start_aedes(listeners.len());
        }
        let exe = mosquitto()?;
        let mut last_err = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let mut b = Broker {
                exe: exe.clone(),
                args: vec!["-c".into(), dir.path().join("mosquitto.conf")],
                dir,
                ports: free_ports(listeners.len()),
                child: None,
            };
            let mut conf = String::from(
                "per_listener_settings false\nallow_anonymous true\npersistence false\nuser root\n",
            );
            conf.push_str(global);
            for (port, extra) in b.ports.iter().zip(listeners) {
                conf.push_str(&format!("listener {port} 127.0.0.1\n{extra}\n"));
            }
            fs::write(b.dir.path().join("mosquitto.conf"), conf).unwrap();
            match b.spawn() {
                Ok(()) => return Some(b),
                Err(e) => last_err = e,
            }
        }
        panic!("mosquitto did not start: {last_err}");
    }

    /// aedes with `n` plain listeners.
    fn start_aedes(n: usize) -> Option<Broker> {
        let (node, module) = aedes()?;
        let mut last_err = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let script = dir.path().join("aedes.mjs");
            fs::write(&script, AEDES_SCRIPT).unwrap();
            let ports = free_ports(n);
            let mut args = vec![script, module.clone()];
            args.extend(ports.iter().map(|p| PathBuf::from(p.to_string())));
            let mut b = Broker {
                exe: node.clone(),
                args,
                dir,
                ports,
                child: None,
            };
            match b.spawn() {
                Ok(()) => return Some(b),
                Err(e) => last_err = e,
            }
        }
        panic!("aedes did not start: {last_err}");
    }

    pub(crate) fn addr(&self, listener: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[listener]))
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = fs::File::create(self.dir.path().join("broker.log")).unwrap();
        let child = Command::new(&self.exe)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.exe.display()))?;
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!("exited with {status}: {}", self.log()));
            }
            let all_up = (0..self.ports.len()).all(|i| TcpStream::connect(self.addr(i)).is_ok());
            if all_up {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(format!("not listening after 10 s: {}", self.log()))
    }

    /// The broker's log so far.
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    /// Kills (SIGKILL) and reaps our broker; the ports stay reserved in
    /// the config for [`Broker::restart`].
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the broker again with the same config and ports.
    pub(crate) fn restart(&mut self) {
        self.stop();
        let start = Instant::now();
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The old sockets may linger a moment.
                Err(e) if start.elapsed() > Duration::from_secs(10) => {
                    panic!("the broker did not restart: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A throwaway PKI: a CA, a server certificate for `127.0.0.1`/`localhost`
/// and one for `wrong.example` only, a client certificate, and a second CA
/// that signed nothing here. All keys are P-256, PKCS#8 PEM.
#[derive(Debug)]
pub(crate) struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Makes the files in `dir`; `None` when openssl is missing.
    pub(crate) fn generate(dir: &Path) -> Option<Pki> {
        let openssl = openssl()?;
        let run = |args: &[&str]| {
            let out = Command::new(&openssl)
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            let subj = format!("/CN=picolet test {ca}");
            let (k, c) = (format!("{ca}.key"), format!("{ca}.crt"));
            let mut args = vec!["req", "-x509"];
            args.extend(key);
            args.extend(["-keyout", &k, "-out", &c, "-days", "2", "-subj", &subj]);
            run(&args);
        }
        let leaves = [
            (
                "server",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
            ),
            (
                "wrong-name",
                "subjectAltName=DNS:wrong.example\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ];
        for (name, ext) in leaves {
            let (k, csr, c, e) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
                format!("{name}.ext"),
            );
            fs::write(dir.join(&e), ext).unwrap();
            let subj = format!("/CN=picolet test {name}");
            let mut args = vec!["req"];
            args.extend(key);
            args.extend(["-keyout", &k, "-out", &csr, "-subj", &subj]);
            run(&args);
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &c,
                "-days",
                "2",
                "-extfile",
                &e,
            ]);
        }
        Some(Pki {
            dir: dir.to_path_buf(),
        })
    }

    /// mosquitto listener lines for a TLS listener with `cert`'s
    /// certificate and key, asking for client certificates when `mtls`.
    pub(crate) fn listener(&self, cert: &str, mtls: bool) -> String {
        format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {mtls}\n",
            self.path("ca.crt").display(),
            self.path(&format!("{cert}.crt")).display(),
            self.path(&format!("{cert}.key")).display(),
        )
    }
}
