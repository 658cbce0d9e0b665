//! Pulling one image into the store: resolve the manifest (mirrors in
//! order, then the registry), choose the platform, download the missing
//! blobs (at most [`PARALLEL`] at once, each resumable), then, under the
//! store's index lock, unpack the layers and tag the image.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::Digest as _;

use super::auth::{AuthFile, Credentials, parse_challenge, query_escape};
use super::config::{Endpoint, Registries};
use super::http::{Client, HttpError, Response, Url};
use super::platform;
use crate::image::digest::parse_json;
use crate::image::oci::{
    ConfigFile, Descriptor, DocKind, Index, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, Manifest, Platform, doc_kind, is_layer_media_type,
    sniff_kind,
};
use crate::image::{Digest, ImageError, ImageStore, JSON_LIMIT, Reference};

/// Layers downloaded at once.
pub const PARALLEL: usize = 3;
/// Attempts in a row that move no byte before a blob download gives up.
pub const MAX_STALLED_ATTEMPTS: u32 = 6;
/// Re-authentications per request (a token expiring mid-pull needs one).
const MAX_REAUTH: usize = 2;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// What kind of failure a pull had; the agent tells "offline"
/// (`Unreachable`) from real errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Unauthorized,
    Unreachable,
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not-found",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Other => "other",
        }
    }
}

/// A failed pull: its kind and a message naming what failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullError {
    pub kind: ErrorKind,
    pub message: String,
}

impl std::fmt::Display for PullError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PullError {}

fn other(message: impl Into<String>) -> PullError {
    PullError {
        kind: ErrorKind::Other,
        message: message.into(),
    }
}

impl From<ImageError> for PullError {
    fn from(e: ImageError) -> Self {
        other(e.to_string())
    }
}

impl From<HttpError> for PullError {
    fn from(e: HttpError) -> Self {
        PullError {
            kind: if e.is_unreachable() {
                ErrorKind::Unreachable
            } else {
                ErrorKind::Other
            },
            message: e.to_string(),
        }
    }
}

/// Progress reported while pulling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The manifest was resolved.
    Resolved {
        digest: String,
        endpoint: String,
        layers: usize,
        size: u64,
    },
    /// Bytes of a blob so far (throttled).
    Progress {
        digest: String,
        done: u64,
        total: u64,
    },
    /// A blob is in the store: `downloaded` bytes fetched now (0: it was
    /// already there).
    Blob {
        digest: String,
        size: u64,
        downloaded: u64,
    },
    /// A download attempt failed and is retried from `offset`.
    Retry {
        digest: String,
        offset: u64,
        error: String,
    },
}

/// The result of a successful pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub reference: String,
    pub image_id: String,
    pub manifest_digest: String,
    /// Manifest + config + layers, compressed.
    pub size: u64,
    /// Bytes received from the registry for blobs in this run.
    pub downloaded: u64,
}

/// Everything a pull needs besides the reference.
#[derive(Debug, Clone)]
pub struct Options {
    pub store: PathBuf,
    pub registries: Registries,
    pub auth: AuthFile,
    pub platform: Platform,
    /// Connect and per-read timeout.
    pub timeout: Duration,
}

/// The device's platform for pulls: `/proc/cpuinfo` for the ARM variant.
pub fn host_platform() -> Platform {
    let arch = crate::image::oci::host_platform().architecture;
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    platform::host_from_cpuinfo(&arch, &cpuinfo)
}

/// One endpoint's session for one repository: the client and the current
/// `Authorization` header.
struct Repo<'a> {
    client: &'a Client,
    base: String,
    name: String,
    creds: Option<Credentials>,
    authorization: Mutex<Option<String>>,
    endpoint: Url,
}

impl Repo<'_> {
    fn url(&self, tail: &str) -> Result<Url, PullError> {
        Ok(Url::parse(&format!(
            "{}/v2/{}/{tail}",
            self.base, self.name
        ))?)
    }

    /// A request with authentication: on a 401, answers the challenge
    /// (a new Bearer token, or Basic credentials) and tries again.
    fn get(
        &self,
        method: &str,
        tail: &str,
        extra: &[(String, String)],
    ) -> Result<Response, PullError> {
        let url = self.url(tail)?;
        for attempt in 0..=MAX_REAUTH {
            let mut headers: Vec<(String, String)> = extra.to_vec();
            let current = self
                .authorization
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(a) = &current {
                headers.push(("Authorization".into(), a.clone()));
            }
            let resp = self.client.request(method, &url, &headers)?;
            if resp.status != 401 {
                return Ok(resp);
            }
            let challenge = resp
                .headers_named("www-authenticate")
                .filter_map(parse_challenge)
                .find(|c| c.scheme == "bearer")
                .or_else(|| {
                    resp.headers_named("www-authenticate")
                        .filter_map(parse_challenge)
                        .next()
                });
            let msg = registry_message(resp);
            let unauthorized = |why: String| PullError {
                kind: ErrorKind::Unauthorized,
                message: format!("{url}: {why}"),
            };
            if attempt == MAX_REAUTH {
                return Err(unauthorized(format!("401 Unauthorized: {msg}")));
            }
            let Some(ch) = challenge else {
                return Err(unauthorized(format!(
                    "401 Unauthorized without a WWW-Authenticate challenge: {msg}"
                )));
            };
            let new = match ch.scheme.as_str() {
                "bearer" => {
                    let expired = ch.param("error") == Some("invalid_token");
                    if current.is_some() && !expired && attempt > 0 {
                        return Err(unauthorized(format!("401 Unauthorized: {msg}")));
                    }
                    format!("Bearer {}", self.token(&ch)?)
                }
                "basic" => {
                    let Some(c) = &self.creds else {
                        return Err(unauthorized(format!(
                            "401 Unauthorized (Basic auth, and no credentials for {} in auth.json or registries.yaml): {msg}",
                            self.endpoint.authority()
                        )));
                    };
                    if current.is_some() {
                        return Err(unauthorized(format!(
                            "401 Unauthorized: the credentials for {} were refused: {msg}",
                            self.endpoint.authority()
                        )));
                    }
                    c.basic()
                }
                other => {
                    return Err(unauthorized(format!(
                        "401 Unauthorized with an unsupported auth scheme {other:?}: {msg}"
                    )));
                }
            };
            *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = Some(new);
        }
        Err(other("unreachable: authentication loop"))
    }

    /// Fetches a token from the challenge's realm (anonymous, or with the
    /// credentials as Basic auth).
    fn token(&self, ch: &super::auth::Challenge) -> Result<String, PullError> {
        let realm = ch
            .param("realm")
            .ok_or_else(|| other("Bearer challenge without a realm"))?;
        let mut url = Url::parse(realm).map_err(|e| other(format!("token realm: {e}")))?;
        let scope = ch
            .param("scope")
            .map(str::to_string)
            .unwrap_or_else(|| format!("repository:{}:pull", self.name));
        let mut query = Vec::new();
        if let Some(s) = ch.param("service") {
            query.push(format!("service={}", query_escape(s)));
        }
        query.push(format!("scope={}", query_escape(&scope)));
        url.path = format!(
            "{}{}{}",
            url.path,
            if url.path.contains('?') { "&" } else { "?" },
            query.join("&")
        );
        let mut headers = Vec::new();
        if let Some(c) = &self.creds {
            headers.push(("Authorization".to_string(), c.basic()));
        }
        let resp = self.client.request("GET", &url, &headers)?;
        let status = resp.status;
        if status == 401 || status == 403 {
            let msg = registry_message(resp);
            return Err(PullError {
                kind: ErrorKind::Unauthorized,
                message: format!("token server {}: {status}: {msg}", url.authority()),
            });
        }
        if status != 200 {
            let msg = registry_message(resp);
            return Err(other(format!(
                "token server {}: {status}: {msg}",
                url.authority()
            )));
        }
        let body = resp.read_body(JSON_LIMIT)?;
        #[derive(serde::Deserialize)]
        struct Token {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
        }
        let t: Token = serde_json::from_slice(&body).map_err(|e| {
            other(format!(
                "token server {}: invalid JSON: {e}",
                url.authority()
            ))
        })?;
        let token = if t.token.is_empty() {
            t.access_token
        } else {
            t.token
        };
        if token.is_empty() {
            return Err(other(format!(
                "token server {}: no token in its answer",
                url.authority()
            )));
        }
        Ok(token)
    }

    /// `GET manifests/<ref>`: the bytes, media type and digest (verified
    /// when `reference` is a digest).
    fn manifest(&self, reference: &str) -> Result<(Vec<u8>, String, Digest), PullError> {
        let resp = self.get(
            "GET",
            &format!("manifests/{reference}"),
            &[("Accept".into(), ACCEPT.into())],
        )?;
        let status = resp.status;
        if status != 200 {
            return Err(status_error(resp, &format!("manifest {reference}")));
        }
        let media_type = resp
            .header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let body = resp.read_body(JSON_LIMIT)?;
        let digest = Digest::of_bytes(&body);
        if let Some(want) = reference.strip_prefix("sha256:") {
            let want = Digest::from_hex(want)?;
            digest.verify(&want, &format!("manifest from {}", self.endpoint))?;
        }
        Ok((body, media_type, digest))
    }
}

/// The registry's error text from a JSON error body
/// (`{"errors":[{"code":"…","message":"…"}]}`), else the status.
fn registry_message(resp: Response) -> String {
    let status = resp.status;
    let body = resp.read_body(16 * 1024).unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errs {
        errors: Vec<E>,
    }
    #[derive(serde::Deserialize)]
    struct E {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errs>(&body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    if text.is_empty() || text.len() > 200 {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    }
}

fn status_error(resp: Response, what: &str) -> PullError {
    let status = resp.status;
    let url = resp.url.to_string();
    let msg = registry_message(resp);
    let kind = match status {
        404 => ErrorKind::NotFound,
        401 | 403 => ErrorKind::Unauthorized,
        _ => ErrorKind::Other,
    };
    PullError {
        kind,
        message: format!("{what} ({url}): {msg}"),
    }
}

/// Pulls `reference` into the store, reporting progress to `sink`.
pub fn pull(
    reference: &str,
    opts: &Options,
    sink: &(dyn Fn(Event) + Sync),
) -> Result<Pulled, PullError> {
    let reference = Reference::parse(reference)?;
    let store = ImageStore::open(&opts.store)?;
    // Unpack directories of killed pulls and imports (dead PIDs only).
    store.clean_stale_temp();
    let mut auth = opts.auth.clone();
    for (host, c) in &opts.registries.auth {
        auth.insert(host, c.clone());
    }
    let client = Client::new(opts.timeout, opts.registries.tls.clone());
    let endpoints = opts
        .registries
        .endpoints(reference.domain(), reference.path());
    let wanted = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    };
    let mut last_err = None;
    for ep in &endpoints {
        let repo = repo_for(&client, ep, &auth, reference.domain());
        match resolve(&repo, &wanted, &opts.platform) {
            Ok((manifest_bytes, manifest_digest, manifest_type)) => {
                return fetch_image(
                    &store,
                    &repo,
                    &reference,
                    &manifest_bytes,
                    &manifest_digest,
                    &manifest_type,
                    sink,
                );
            }
            Err(e) => {
                log::debug!("{}: {e}", ep.url);
                // A registry's answer (not found, unauthorized) says more
                // than another endpoint's failure; "unreachable" only when
                // no endpoint could be reached.
                let rank = |k: ErrorKind| match k {
                    ErrorKind::NotFound | ErrorKind::Unauthorized => 2,
                    ErrorKind::Other => 1,
                    ErrorKind::Unreachable => 0,
                };
                if last_err
                    .as_ref()
                    .is_none_or(|l: &PullError| rank(e.kind) > rank(l.kind))
                {
                    last_err = Some(e);
                }
            }
        }
    }
    Err(last_err.unwrap_or_else(|| other("no endpoint to pull from")))
}

fn repo_for<'a>(client: &'a Client, ep: &Endpoint, auth: &AuthFile, domain: &str) -> Repo<'a> {
    let mut base = ep.url.to_string();
    while base.ends_with('/') {
        base.pop();
    }
    if let Some(b) = base.strip_suffix("/v2") {
        base = b.to_string();
    }
    // Credentials of the endpoint's host; for the registry itself, those
    // of its name (docker.io for registry-1.docker.io).
    let creds = auth
        .get(&ep.url.authority())
        .or_else(|| (!ep.mirror).then(|| auth.get(domain)).flatten())
        .cloned();
    Repo {
        client,
        base,
        name: ep.name.clone(),
        creds,
        authorization: Mutex::new(None),
        endpoint: ep.url.clone(),
    }
}

/// Resolves the manifest for `platform`: returns its bytes, digest and
/// media type.
fn resolve(
    repo: &Repo<'_>,
    wanted: &str,
    platform: &Platform,
) -> Result<(Vec<u8>, Digest, String), PullError> {
    let (bytes, media_type, digest) = repo.manifest(wanted)?;
    let kind = match doc_kind(&media_type) {
        DocKind::Unknown => sniff_kind(&bytes),
        k => k,
    };
    match kind {
        DocKind::Manifest => Ok((bytes, digest, media_type)),
        DocKind::Index => {
            let index: Index = parse_json(&bytes, &format!("index {digest}"))?;
            let chosen = platform::choose(&index.manifests, platform)
                .map_err(|e| other(format!("{wanted} ({digest}): {e}")))?;
            if doc_kind(&chosen.media_type) == DocKind::Index {
                return Err(other(format!(
                    "{wanted}: nested image indexes are not supported"
                )));
            }
            let (b, t, d) = repo.manifest(&chosen.digest)?;
            let t = if t.is_empty() {
                chosen.media_type.clone()
            } else {
                t
            };
            Ok((b, d, t))
        }
        DocKind::Unknown => Err(other(format!(
            "{wanted}: unsupported manifest media type {media_type:?} (Docker schema 1 and others are not supported)"
        ))),
    }
}

/// Downloads what is missing of a resolved manifest, then unpacks and
/// tags it under the index lock.
fn fetch_image(
    store: &ImageStore,
    repo: &Repo<'_>,
    reference: &Reference,
    manifest_bytes: &[u8],
    manifest_digest: &Digest,
    manifest_type: &str,
    sink: &(dyn Fn(Event) + Sync),
) -> Result<Pulled, PullError> {
    let manifest: Manifest = parse_json(manifest_bytes, &format!("manifest {manifest_digest}"))?;
    for l in &manifest.layers {
        if !is_layer_media_type(&l.media_type) {
            return Err(other(format!(
                "layer {}: unsupported media type {:?}",
                l.digest, l.media_type
            )));
        }
        if l.media_type.ends_with("zstd") {
            return Err(other(format!(
                "layer {}: media type {:?}: zstd layers are not supported (only gzip or plain tar)",
                l.digest, l.media_type
            )));
        }
        if l.media_type.contains("foreign") || !l.media_type.contains("tar") {
            return Err(other(format!(
                "layer {}: unsupported media type {:?}",
                l.digest, l.media_type
            )));
        }
    }
    let size = manifest_bytes.len() as u64
        + manifest.config.size
        + manifest.layers.iter().map(|l| l.size).sum::<u64>();
    sink(Event::Resolved {
        digest: manifest_digest.to_string(),
        endpoint: repo.endpoint.to_string(),
        layers: manifest.layers.len(),
        size,
    });
    let downloaded = Mutex::new(0u64);
    // The config first (small): its diff IDs let each layer be unpacked
    // by the thread that downloaded it, while others still download.
    let config_digest = Digest::parse(&manifest.config.digest)?;
    download_all(
        store,
        repo,
        &[(manifest.config.clone(), None)],
        sink,
        &downloaded,
    )?;
    let config_bytes = store.read_small_blob(&config_digest, "image config")?;
    let config: ConfigFile = parse_json(&config_bytes, &format!("image config {config_digest}"))?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(other(format!(
            "image config {config_digest}: {} diff_ids for {} layers",
            config.rootfs.diff_ids.len(),
            manifest.layers.len()
        )));
    }
    let mut jobs = Vec::new();
    for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        jobs.push((layer.clone(), Some(Digest::parse(diff_id)?)));
    }
    // Image GC could delete what is downloaded or unpacked before the
    // lock is taken (nothing references it yet): check under the lock,
    // and fetch again, a few times.
    for round in 0..3 {
        if round > 0 {
            let config = [(manifest.config.clone(), None)];
            download_all(store, repo, &config, sink, &downloaded)?;
        }
        download_all(store, repo, &jobs, sink, &downloaded)?;
        let lock = store.lock_index()?;
        // (A missing layer directory is unpacked again below.)
        let missing = !store.blob_path(&config_digest).is_file()
            || jobs.iter().any(|(b, _)| {
                Digest::parse(&b.digest).is_ok_and(|d| !store.blob_path(&d).is_file())
            });
        if missing && round < 2 {
            drop(lock);
            continue;
        }
        for (layer, diff_id) in &jobs {
            if let Some(diff_id) = diff_id {
                store.ensure_layer(&Digest::parse(&layer.digest)?, diff_id)?;
            }
        }
        store.put_blob(
            manifest_bytes,
            Some(manifest_digest),
            &format!("manifest {manifest_digest}"),
        )?;
        store.sync()?;
        let media_type = if manifest.media_type.is_empty() {
            match manifest_type {
                MEDIA_DOCKER_MANIFEST | MEDIA_OCI_MANIFEST => manifest_type.to_string(),
                MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST | "" => MEDIA_OCI_MANIFEST.to_string(),
                t => t.to_string(),
            }
        } else {
            manifest.media_type.clone()
        };
        let desc = Descriptor {
            media_type,
            digest: manifest_digest.to_string(),
            size: manifest_bytes.len() as u64,
            annotations: Default::default(),
            platform: None,
        };
        store.add_tags(&lock, &[(reference.clone(), desc)])?;
        drop(lock);
        return Ok(Pulled {
            reference: reference.to_string(),
            image_id: config_digest.to_string(),
            manifest_digest: manifest_digest.to_string(),
            size,
            downloaded: *downloaded.lock().unwrap_or_else(|e| e.into_inner()),
        });
    }
    Err(other(
        "blobs kept disappearing from the store (image GC?); try again",
    ))
}

/// Downloads every missing blob, [`PARALLEL`] at a time.
/// A layer with its diff ID is unpacked (`ensure_layer`) by the thread
/// that downloaded it.
fn download_all(
    store: &ImageStore,
    repo: &Repo<'_>,
    blobs: &[(Descriptor, Option<Digest>)],
    sink: &(dyn Fn(Event) + Sync),
    downloaded: &Mutex<u64>,
) -> Result<(), PullError> {
    let queue = Mutex::new(blobs.iter().collect::<Vec<_>>());
    let failed: Mutex<Option<PullError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(blobs.len()) {
            s.spawn(|| {
                loop {
                    if failed.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                        return;
                    }
                    let Some((desc, diff_id)) =
                        queue.lock().unwrap_or_else(|e| e.into_inner()).pop()
                    else {
                        return;
                    };
                    let result = fetch_blob(store, repo, desc, sink).and_then(|n| {
                        if let Some(id) = diff_id {
                            store.ensure_layer(&Digest::parse(&desc.digest)?, id)?;
                        }
                        Ok(n)
                    });
                    match result {
                        Ok(n) => *downloaded.lock().unwrap_or_else(|e| e.into_inner()) += n,
                        Err(e) => {
                            failed
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Parses `Content-Range: bytes START-END/TOTAL`; returns START.
fn content_range_start(v: &str) -> Option<u64> {
    let r = v.trim().strip_prefix("bytes")?.trim_start();
    let (start, _) = r.split_once('-')?;
    start.trim().parse().ok()
}

/// Downloads one blob to `<hex>.partial` (resuming what is there), checks
/// its digest and size, and renames it into place. Returns the bytes
/// received. A blob already in the store is not fetched.
fn fetch_blob(
    store: &ImageStore,
    repo: &Repo<'_>,
    desc: &Descriptor,
    sink: &(dyn Fn(Event) + Sync),
) -> Result<u64, PullError> {
    let digest = Digest::parse(&desc.digest)?;
    let dest = store.blob_path(&digest);
    let done_event = |downloaded| {
        sink(Event::Blob {
            digest: digest.to_string(),
            size: desc.size,
            downloaded,
        })
    };
    if dest.is_file() {
        done_event(0);
        return Ok(0);
    }
    let partial = dest.with_file_name(format!("{}.partial", digest.hex()));
    let io = |op: &'static str| {
        let p = partial.clone();
        move |e: io::Error| PullError::from(ImageError::io(op, p)(e))
    };
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&partial)
        .map_err(io("open"))?;
    // Another pull of the same blob (another image sharing it) waits
    // here, then finds it done.
    crate::sys::fs::flock_exclusive(&file).map_err(|e| io("flock")(e.into()))?;
    if dest.is_file() {
        let _ = fs::remove_file(&partial);
        done_event(0);
        return Ok(0);
    }
    // What a previous run (killed, or cut off) left: hash it again.
    let mut sha = sha2::Sha256::new();
    let mut have = 0u64;
    {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(io("read"))?;
            if n == 0 {
                break;
            }
            sha.update(&buf[..n]);
            have += n as u64;
        }
    }
    let restart =
        |file: &mut File, sha: &mut sha2::Sha256, have: &mut u64| -> Result<(), PullError> {
            file.set_len(0).map_err(io("truncate"))?;
            file.seek(SeekFrom::Start(0)).map_err(io("seek"))?;
            *sha = sha2::Sha256::new();
            *have = 0;
            Ok(())
        };
    if have > desc.size {
        restart(&mut file, &mut sha, &mut have)?;
    }
    let mut received = 0u64;
    let mut stalled = 0u32;
    let mut last_error = String::new();
    let mut buf = vec![0u8; 64 * 1024];
    let tail = format!("blobs/{digest}");
    while have < desc.size {
        if stalled >= MAX_STALLED_ATTEMPTS {
            return Err(PullError {
                kind: ErrorKind::Other,
                message: format!(
                    "blob {digest}: giving up after {stalled} attempts without progress at byte {have} of {}: {last_error}",
                    desc.size
                ),
            });
        }
        if stalled > 0 {
            std::thread::sleep(Duration::from_millis(200 << stalled.min(4)));
        }
        let mut headers = Vec::new();
        if have > 0 {
            headers.push(("Range".to_string(), format!("bytes={have}-")));
        }
        let before = have;
        let resp = match repo.get("GET", &tail, &headers) {
            Ok(r) => r,
            Err(e) if e.kind == ErrorKind::Unreachable || e.kind == ErrorKind::Other => {
                last_error = e.message;
                stalled += 1;
                sink(Event::Retry {
                    digest: digest.to_string(),
                    offset: have,
                    error: last_error.clone(),
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut skip = 0u64;
        match resp.status {
            206 => {
                let start = resp.header("content-range").and_then(content_range_start);
                if start != Some(have) {
                    // Not the range asked for: start over (containerd
                    // refuses such a response too).
                    last_error = format!(
                        "asked for bytes {have}-, got Content-Range {:?}",
                        resp.header("content-range")
                    );
                    restart(&mut file, &mut sha, &mut have)?;
                    stalled += 1;
                    continue;
                }
            }
            200 => skip = have,
            416 => {
                last_error = "416 Range Not Satisfiable".to_string();
                restart(&mut file, &mut sha, &mut have)?;
                stalled += 1;
                continue;
            }
            404 => return Err(status_error(resp, &format!("blob {digest}"))),
            s if s >= 500 => {
                last_error = registry_message(resp);
                stalled += 1;
                continue;
            }
            _ => return Err(status_error(resp, &format!("blob {digest}"))),
        }
        let mut body = resp.body;
        let mut last_report = Instant::now();
        let result: io::Result<()> = (|| {
            while skip > 0 {
                let n = body.read(&mut buf[..usize::try_from(skip.min(65536)).unwrap_or(65536)])?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                skip -= n as u64;
                received += n as u64;
            }
            loop {
                let want = usize::try_from((desc.size - have).min(buf.len() as u64)).unwrap_or(0);
                if want == 0 {
                    return Ok(());
                }
                let n = body.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the response ended before the blob's size",
                    ));
                }
                file.write_all(&buf[..n])?;
                sha.update(&buf[..n]);
                have += n as u64;
                received += n as u64;
                if last_report.elapsed() >= Duration::from_millis(250) {
                    last_report = Instant::now();
                    sink(Event::Progress {
                        digest: digest.to_string(),
                        done: have,
                        total: desc.size,
                    });
                }
            }
        })();
        if let Err(e) = result {
            last_error = e.to_string();
            stalled = if have > before { 0 } else { stalled + 1 };
            sink(Event::Retry {
                digest: digest.to_string(),
                offset: have,
                error: last_error.clone(),
            });
        }
    }
    file.sync_all().map_err(io("fsync"))?;
    let actual = Digest::from_sha(sha.finalize().as_slice());
    if actual != digest {
        let _ = fs::remove_file(&partial);
        return Err(other(format!(
            "blob {digest}: content does not match its digest (got {actual}); the partial download is deleted"
        )));
    }
    fs::rename(&partial, &dest).map_err(io("rename"))?;
    sink(Event::Progress {
        digest: digest.to_string(),
        done: have,
        total: desc.size,
    });
    done_event(received);
    Ok(received)
}

/// The JSON line for an event (the helper's protocol, docs/images.md).
pub fn event_json(e: &Event) -> serde_json::Value {
    match e {
        Event::Resolved {
            digest,
            endpoint,
            layers,
            size,
        } => {
            serde_json::json!({"event": "resolved", "digest": digest, "endpoint": endpoint, "layers": layers, "size": size})
        }
        Event::Progress {
            digest,
            done,
            total,
        } => {
            serde_json::json!({"event": "progress", "digest": digest, "done": done, "total": total})
        }
        Event::Blob {
            digest,
            size,
            downloaded,
        } => {
            serde_json::json!({"event": "blob", "digest": digest, "size": size, "downloaded": downloaded, "present": *downloaded == 0})
        }
        Event::Retry {
            digest,
            offset,
            error,
        } => {
            serde_json::json!({"event": "retry", "digest": digest, "offset": offset, "error": error})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::sync::Arc;

    /// A registry stand-in: `answer(request head)` gives each response;
    /// the request heads are kept.
    fn server(answer: impl Fn(&str) -> Vec<u8> + Send + 'static) -> (u16, Arc<Mutex<Vec<String>>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                s2.lock().unwrap().push(head.clone());
                let _ = c.write_all(&answer(&head));
            }
        });
        (port, seen)
    }

    fn ok(body: &[u8], extra: &str) -> Vec<u8> {
        let mut v = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{extra}\r\n",
            body.len()
        )
        .into_bytes();
        v.extend_from_slice(body);
        v
    }

    fn repo(client: &Client, port: u16) -> Repo<'_> {
        Repo {
            client,
            base: format!("http://127.0.0.1:{port}"),
            name: "x".into(),
            creds: None,
            authorization: Mutex::new(None),
            endpoint: Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
        }
    }

    fn desc(bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: crate::image::oci::MEDIA_OCI_LAYER_GZIP.into(),
            digest: Digest::of_bytes(bytes).to_string(),
            size: bytes.len() as u64,
            annotations: Default::default(),
            platform: None,
        }
    }

    fn client() -> Client {
        Client::new(Duration::from_secs(5), Default::default())
    }

    #[test]
    fn a_blob_that_does_not_match_its_digest_is_deleted_and_both_digests_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let (port, _) = server(|_| ok(b"world", ""));
        let c = client();
        let want = desc(b"hello");
        let err = fetch_blob(&store, &repo(&c, port), &want, &|_| {}).unwrap_err();
        let got = Digest::of_bytes(b"world").to_string();
        assert!(
            err.message.contains(&want.digest) && err.message.contains(&got),
            "{err}"
        );
        let d = Digest::parse(&want.digest).unwrap();
        let partial = store
            .blob_path(&d)
            .with_file_name(format!("{}.partial", d.hex()));
        assert!(!partial.exists() && !store.blob_path(&d).exists());
    }

    #[test]
    fn a_partial_blob_resumes_with_range_and_a_200_answer_skips_what_is_there() {
        let blob: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for honours_range in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let store = ImageStore::open(dir.path()).unwrap();
            let d = desc(&blob);
            let digest = Digest::parse(&d.digest).unwrap();
            let partial = store
                .blob_path(&digest)
                .with_file_name(format!("{}.partial", digest.hex()));
            fs::write(&partial, &blob[..120_000]).unwrap();
            let b = blob.clone();
            let (port, seen) = server(move |head| {
                let from = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Range: bytes="))
                    .map(|r| r.trim_end_matches('-').parse::<usize>().unwrap());
                match from {
                    Some(n) if honours_range => {
                        let extra =
                            format!("Content-Range: bytes {n}-{}/{}\r\n", b.len() - 1, b.len());
                        let mut v = ok(&b[n..], &extra);
                        v[9..12].copy_from_slice(b"206");
                        v
                    }
                    _ => ok(&b, ""),
                }
            });
            let c = client();
            let got = fetch_blob(&store, &repo(&c, port), &d, &|_| {}).unwrap();
            assert_eq!(fs::read(store.blob_path(&digest)).unwrap(), blob);
            assert!(!partial.exists());
            let heads = seen.lock().unwrap().clone();
            assert!(heads[0].contains("Range: bytes=120000-"), "{heads:?}");
            // 206: only the rest is received; 200: all, the start skipped.
            assert_eq!(got, if honours_range { 80_000 } else { 200_000 });
        }
    }

    #[test]
    fn a_wrong_content_range_starts_over_and_a_cut_body_is_resumed() {
        let blob: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let d = desc(&blob);
        let b = blob.clone();
        let calls = Arc::new(Mutex::new(0));
        let c2 = calls.clone();
        let (port, seen) = server(move |head| {
            let mut n = c2.lock().unwrap();
            *n += 1;
            match *n {
                // Announces everything, sends 30 000 bytes, closes.
                1 => {
                    let mut v = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b.len())
                        .into_bytes();
                    v.extend_from_slice(&b[..30_000]);
                    v
                }
                // Answers the resume with the wrong range.
                2 => {
                    assert!(head.contains("Range: bytes=30000-"), "{head}");
                    let mut v = ok(&b[10..], "Content-Range: bytes 10-99999/100000\r\n");
                    v[9..12].copy_from_slice(b"206");
                    v
                }
                _ => ok(&b, ""),
            }
        });
        let c = client();
        let events = Mutex::new(Vec::new());
        fetch_blob(&store, &repo(&c, port), &d, &|e| {
            events.lock().unwrap().push(e)
        })
        .unwrap();
        let digest = Digest::parse(&d.digest).unwrap();
        assert_eq!(fs::read(store.blob_path(&digest)).unwrap(), blob);
        let heads = seen.lock().unwrap().clone();
        assert_eq!(heads.len(), 3, "{heads:?}");
        assert!(!heads[2].contains("Range"), "started over: {heads:?}");
        assert!(
            events
                .lock()
                .unwrap()
                .iter()
                .any(|e| matches!(e, Event::Retry { offset: 30_000, .. }))
        );
    }

    #[test]
    fn zstd_layers_are_refused_naming_the_media_type_before_any_download() {
        let dir = tempfile::tempdir().unwrap();
        let config = br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of_bytes(config).to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": Digest::of_bytes(b"z").to_string(), "size": 1}],
        })
        .to_string();
        let (port, seen) = server(move |_| {
            ok(
                manifest.as_bytes(),
                &format!("Content-Type: {MEDIA_OCI_MANIFEST}\r\n"),
            )
        });
        let registries = Registries::parse(
            &format!(
                "mirrors:\n  \"127.0.0.1:{port}\":\n    endpoint: [\"http://127.0.0.1:{port}\"]\n"
            ),
            "r",
        )
        .unwrap();
        let opts = Options {
            store: dir.path().to_path_buf(),
            registries,
            auth: AuthFile::default(),
            platform: platform::parse_platform("linux/amd64").unwrap(),
            timeout: Duration::from_secs(5),
        };
        let err = pull(&format!("127.0.0.1:{port}/x:1"), &opts, &|_| {}).unwrap_err();
        assert!(
            err.message
                .contains("application/vnd.oci.image.layer.v1.tar+zstd"),
            "{err}"
        );
        assert!(
            err.message.contains("zstd layers are not supported"),
            "{err}"
        );
        assert!(seen.lock().unwrap().iter().all(|h| !h.contains("/blobs/")));
    }

    #[test]
    fn content_range_start_is_parsed() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/*"), Some(0));
        assert_eq!(content_range_start("items 1-2/3"), None);
    }
}
