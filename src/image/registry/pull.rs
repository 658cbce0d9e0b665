//! Pulling one image into the store: resolve the manifest (mirrors in
//! order, then the registry), choose the platform, download the missing
//! blobs (at most [`PARALLEL`] at once, each resumable, each layer
//! unpacked while it downloads), then, under the store's index lock, tag
//! the image.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::Digest as _;

use super::auth::{AuthFile, Credentials, parse_challenge, query_escape};
use super::config::{Endpoint, Registries};
use super::http::{Client, HttpError, Response, Url};
use super::platform;
use crate::image::budget::Space;
use crate::image::digest::parse_json;
use crate::image::oci::{
    ConfigFile, Descriptor, DocKind, Index, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, Manifest, Platform, doc_kind, is_layer_media_type,
    sniff_kind,
};
use crate::image::store::check_diff_id;
use crate::image::unpack;
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
        /// How its layer was unpacked: `stream` (while it downloaded),
        /// `file` (from the stored blob), `none` (not a layer, or its
        /// layer was there already).
        unpack: &'static str,
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

/// Downloads what is missing of a resolved manifest (unpacking each layer
/// as it arrives), then tags it under the index lock.
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
    // while it downloads, and checked when its last byte is in.
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

/// Downloads every missing blob, [`PARALLEL`] at a time. A layer with
/// its diff ID is unpacked while it downloads (see [`fetch`]).
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
                    match fetch(store, repo, desc, diff_id.as_ref(), sink) {
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

/// [`fetch`] without unpacking.
#[cfg(test)]
fn fetch_blob(
    store: &ImageStore,
    repo: &Repo<'_>,
    desc: &Descriptor,
    sink: &(dyn Fn(Event) + Sync),
) -> Result<u64, PullError> {
    fetch(store, repo, desc, None, sink)
}

/// Downloads one blob to `<hex>.partial` (resuming what is there), checks
/// its digest and renames it into place; returns the bytes received. A
/// blob already in the store is not fetched. With `diff_id` (a layer not
/// unpacked yet), the layer is unpacked into `tmp/` from the bytes as
/// they arrive, checked against the diff ID once the blob's digest is
/// checked, and renamed into `layers/` with the blob after one `syncfs`.
/// If the download had to start over after bytes were unpacked, the
/// layer is unpacked again from the complete blob.
fn fetch(
    store: &ImageStore,
    repo: &Repo<'_>,
    desc: &Descriptor,
    diff_id: Option<&Digest>,
    sink: &(dyn Fn(Event) + Sync),
) -> Result<u64, PullError> {
    let digest = Digest::parse(&desc.digest)?;
    let diff_id = diff_id.filter(|d| !store.layer_path(d).is_dir());
    let done = |downloaded, unpack| {
        sink(Event::Blob {
            digest: digest.to_string(),
            size: desc.size,
            downloaded,
            unpack,
        })
    };
    let Some(mut stream) = BlobStream::open(store, repo, desc, &digest, sink)? else {
        if let Some(id) = diff_id {
            store.ensure_layer(&digest, id)?;
        }
        done(0, if diff_id.is_some() { "file" } else { "none" });
        return Ok(0);
    };
    let mut layer = None;
    if let Some(id) = diff_id {
        let staged = store.layer_temp(id)?;
        let space = Space::of(store.root())?;
        let label = format!("blob {digest}");
        let input = Box::new(&mut stream);
        let unpacked =
            unpack::unpack_layer_from(input, &label, desc.size, staged.dir(), Some(space));
        layer = Some((id, staged, unpacked));
    }
    let received = stream.finish()?;
    let partial = stream.partial.clone();
    let unpack = match layer {
        None => {
            stream.file.sync_all().map_err(stream.io("fsync"))?;
            "none"
        }
        Some((id, staged, unpacked)) => {
            let (staged, how) = if stream.broken {
                let space = Space::of(store.root())?;
                (store.stage_layer(&digest, &partial, id, space)?.0, "file")
            } else {
                check_diff_id(&digest, id, &unpacked?.diff_id)?;
                (staged, "stream")
            };
            // One syncfs for the blob and the layer, then both in place.
            store.sync()?;
            fs::rename(&partial, store.blob_path(&digest)).map_err(stream.io("rename"))?;
            staged.commit()?;
            how
        }
    };
    if unpack == "none" {
        fs::rename(&partial, store.blob_path(&digest)).map_err(stream.io("rename"))?;
    }
    sink(Event::Progress {
        digest: digest.to_string(),
        done: desc.size,
        total: desc.size,
    });
    done(received, unpack);
    Ok(received)
}

/// One blob's bytes in order, as a [`BufRead`]: first what a previous run
/// left in `<hex>.partial` (read back), then the registry's, each attempt
/// resuming at the next byte with `Range`; every byte is hashed and every
/// downloaded byte appended to the partial file (which is locked) before
/// it is served. [`BlobStream::finish`] reads what the reader left and
/// checks the digest.
struct BlobStream<'a> {
    repo: &'a Repo<'a>,
    digest: &'a Digest,
    size: u64,
    sink: &'a (dyn Fn(Event) + Sync),
    file: File,
    partial: PathBuf,
    sha: sha2::Sha256,
    /// Bytes hashed and in the file; `buf[pos..len]` are not served yet.
    have: u64,
    /// Still reading the partial file back.
    replay: bool,
    body: Option<super::http::Body>,
    /// Bytes of a 200 answer to a resume to drop (what is there already).
    skip: u64,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    received: u64,
    stalled: u32,
    attempt_start: u64,
    last_error: String,
    last_report: Instant,
    /// The download started over after bytes were served: what was read
    /// is not the start of the blob any more.
    broken: bool,
    /// A download error, kept for [`BlobStream::finish`].
    failed: Option<PullError>,
}

impl<'a> BlobStream<'a> {
    /// Opens and locks the partial file; `None` when the blob is in the
    /// store (maybe put there by another pull while we waited).
    fn open(
        store: &ImageStore,
        repo: &'a Repo<'a>,
        desc: &'a Descriptor,
        digest: &'a Digest,
        sink: &'a (dyn Fn(Event) + Sync),
    ) -> Result<Option<BlobStream<'a>>, PullError> {
        let dest = store.blob_path(digest);
        if dest.is_file() {
            return Ok(None);
        }
        let partial = dest.with_file_name(format!("{}.partial", digest.hex()));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&partial)
            .map_err(|e| PullError::from(ImageError::io("open", &partial)(e)))?;
        let mut s = BlobStream {
            repo,
            digest,
            size: desc.size,
            sink,
            file,
            partial,
            sha: sha2::Sha256::new(),
            have: 0,
            replay: true,
            body: None,
            skip: 0,
            buf: vec![0u8; 32 * 1024],
            pos: 0,
            len: 0,
            received: 0,
            stalled: 0,
            attempt_start: 0,
            last_error: String::new(),
            last_report: Instant::now(),
            broken: false,
            failed: None,
        };
        // Another pull of the same blob (another image sharing it) waits
        // here, then finds it done.
        crate::sys::fs::flock_exclusive(&s.file).map_err(|e| s.io("flock")(e.into()))?;
        if dest.is_file() {
            let _ = fs::remove_file(&s.partial);
            return Ok(None);
        }
        let len = s.file.metadata().map_err(s.io("stat"))?.len();
        if len > s.size {
            s.restart()?;
        }
        Ok(Some(s))
    }

    fn io(&self, op: &'static str) -> impl FnOnce(io::Error) -> PullError + use<> {
        let p = self.partial.clone();
        move |e: io::Error| PullError::from(ImageError::io(op, p)(e))
    }

    /// Empties the partial file: the download starts over.
    fn restart(&mut self) -> Result<(), PullError> {
        self.file.set_len(0).map_err(self.io("truncate"))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(self.io("seek"))?;
        self.sha = sha2::Sha256::new();
        self.broken |= self.have > 0;
        self.have = 0;
        self.replay = false;
        Ok(())
    }

    /// Records a failed attempt; the next one resumes at `have`.
    fn retry(&mut self, error: String, event: bool) {
        self.body = None;
        self.last_error = error;
        self.stalled = if self.have > self.attempt_start {
            0
        } else {
            self.stalled + 1
        };
        if event {
            (self.sink)(Event::Retry {
                digest: self.digest.to_string(),
                offset: self.have,
                error: self.last_error.clone(),
            });
        }
    }

    /// Sends a request for the rest of the blob; errors only when giving up.
    fn connect(&mut self) -> Result<(), PullError> {
        let tail = format!("blobs/{}", self.digest);
        loop {
            if self.stalled >= MAX_STALLED_ATTEMPTS {
                return Err(other(format!(
                    "blob {}: giving up after {} attempts without progress at byte {} of {}: {}",
                    self.digest, self.stalled, self.have, self.size, self.last_error
                )));
            }
            if self.stalled > 0 {
                std::thread::sleep(Duration::from_millis(200 << self.stalled.min(4)));
            }
            let mut headers = Vec::new();
            if self.have > 0 {
                headers.push(("Range".to_string(), format!("bytes={}-", self.have)));
            }
            self.attempt_start = self.have;
            let resp = match self.repo.get("GET", &tail, &headers) {
                Ok(r) => r,
                Err(e) if e.kind == ErrorKind::Unreachable || e.kind == ErrorKind::Other => {
                    self.retry(e.message, true);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match resp.status {
                206 => {
                    let start = resp.header("content-range").and_then(content_range_start);
                    if start != Some(self.have) {
                        // Not the range asked for: start over (containerd
                        // refuses such a response too).
                        let e = format!(
                            "asked for bytes {}-, got Content-Range {:?}",
                            self.have,
                            resp.header("content-range")
                        );
                        self.restart()?;
                        self.retry(e, false);
                        continue;
                    }
                }
                200 => self.skip = self.have,
                416 => {
                    self.restart()?;
                    self.retry("416 Range Not Satisfiable".to_string(), false);
                    continue;
                }
                s if s >= 500 => {
                    self.retry(registry_message(resp), false);
                    continue;
                }
                _ => return Err(status_error(resp, &format!("blob {}", self.digest))),
            }
            self.body = Some(resp.body);
            return Ok(());
        }
    }

    /// Puts the next bytes of the blob in `buf`; 0 at its end.
    fn refill(&mut self) -> Result<usize, PullError> {
        self.pos = 0;
        self.len = 0;
        loop {
            if self.replay {
                let n = self.file.read(&mut self.buf).map_err(self.io("read"))?;
                if n > 0 {
                    self.sha.update(&self.buf[..n]);
                    self.have += n as u64;
                    self.len = n;
                    return Ok(n);
                }
                self.replay = false;
            }
            if self.have >= self.size {
                return Ok(0);
            }
            let Some(body) = self.body.as_mut() else {
                self.connect()?;
                continue;
            };
            let left = if self.skip > 0 {
                self.skip
            } else {
                self.size - self.have
            };
            let want = usize::try_from(left.min(self.buf.len() as u64)).unwrap_or(0);
            let n = match body.read(&mut self.buf[..want]) {
                Ok(0) => {
                    let e = "the response ended before the blob's size";
                    self.retry(e.to_string(), true);
                    continue;
                }
                Ok(n) => n,
                Err(e) => {
                    self.retry(e.to_string(), true);
                    continue;
                }
            };
            self.received += n as u64;
            if self.skip > 0 {
                self.skip -= n as u64;
                continue;
            }
            self.file
                .write_all(&self.buf[..n])
                .map_err(self.io("write"))?;
            self.sha.update(&self.buf[..n]);
            self.have += n as u64;
            self.len = n;
            if self.last_report.elapsed() >= Duration::from_millis(250) {
                self.last_report = Instant::now();
                (self.sink)(Event::Progress {
                    digest: self.digest.to_string(),
                    done: self.have,
                    total: self.size,
                });
            }
            return Ok(n);
        }
    }

    /// Reads the rest of the blob and checks its digest (a mismatch
    /// deletes the partial file); returns the bytes received.
    fn finish(&mut self) -> Result<u64, PullError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        while self.refill()? > 0 {}
        let actual = Digest::from_sha(std::mem::take(&mut self.sha).finalize().as_slice());
        if &actual != self.digest {
            let _ = fs::remove_file(&self.partial);
            return Err(other(format!(
                "blob {}: content does not match its digest (got {actual}); the partial download is deleted",
                self.digest
            )));
        }
        Ok(self.received)
    }
}

impl Read for BlobStream<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let b = self.fill_buf()?;
            let n = b.len().min(out.len());
            out[..n].copy_from_slice(&b[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for BlobStream<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.len && !self.broken && self.failed.is_none() {
            if let Err(e) = self.refill() {
                self.failed = Some(e);
            }
        }
        if let Some(e) = &self.failed {
            return Err(io::Error::other(e.message.clone()));
        }
        if self.broken {
            return Err(io::Error::other("the download started over"));
        }
        Ok(&self.buf[self.pos..self.len])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.len);
    }
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
            unpack,
        } => {
            serde_json::json!({"event": "blob", "digest": digest, "size": size, "downloaded": downloaded, "present": *downloaded == 0, "unpack": unpack})
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

    /// A gzipped layer of `files`: (blob, diff ID).
    fn layer(files: &[(&str, &[u8])]) -> (Vec<u8>, Digest) {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            tar.append_data(&mut h, name, *data).unwrap();
        }
        let raw = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        (gz.finish().unwrap(), Digest::of_bytes(&raw))
    }

    /// Incompressible bytes (xorshift).
    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn unpack_of(events: &Mutex<Vec<Event>>) -> Vec<&'static str> {
        let events = events.lock().unwrap();
        events
            .iter()
            .filter_map(|e| match e {
                Event::Blob { unpack, .. } => Some(*unpack),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_layer_is_unpacked_while_it_downloads() {
        let (a, b) = (noise(300_000, 1), noise(300_000, 2));
        let (blob, diff_id) = layer(&[("a.bin", &a), ("b.bin", &b)]);
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        // The registry sends two thirds, then waits until a.bin is
        // complete in the layer's temp directory before sending the rest:
        // an unpack that waited for the whole blob would never see it.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let tmp = store.root().join("tmp");
        let (body, seen) = (blob.clone(), Arc::new(Mutex::new(false)));
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            c.write_all(head.as_bytes()).unwrap();
            let half = body.len() * 2 / 3;
            c.write_all(&body[..half]).unwrap();
            let unpacked = || {
                fs::read_dir(&tmp)
                    .unwrap()
                    .flatten()
                    .any(|e| fs::metadata(e.path().join("a.bin")).is_ok_and(|m| m.len() == 300_000))
            };
            let t = Instant::now();
            while !unpacked() && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(5));
            }
            *seen2.lock().unwrap() = unpacked();
            c.write_all(&body[half..]).unwrap();
        });
        let c = client();
        let events = Mutex::new(Vec::new());
        let received = fetch(
            &store,
            &repo(&c, port),
            &desc(&blob),
            Some(&diff_id),
            &|e| events.lock().unwrap().push(e),
        )
        .unwrap();
        assert_eq!(received, blob.len() as u64);
        assert!(
            *seen.lock().unwrap(),
            "a.bin was not unpacked before the blob's end"
        );
        assert_eq!(unpack_of(&events), ["stream"]);
        let dest = store.layer_path(&diff_id);
        assert_eq!(fs::read(dest.join("a.bin")).unwrap(), a);
        assert_eq!(fs::read(dest.join("b.bin")).unwrap(), b);
        let digest = Digest::parse(&desc(&blob).digest).unwrap();
        assert_eq!(fs::read(store.blob_path(&digest)).unwrap(), blob);
        assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
        // Present now: neither fetched nor unpacked again.
        events.lock().unwrap().clear();
        let got = fetch(
            &store,
            &repo(&c, port),
            &desc(&blob),
            Some(&diff_id),
            &|e| events.lock().unwrap().push(e),
        );
        assert_eq!(got.unwrap(), 0);
        assert_eq!(unpack_of(&events), ["none"]);
    }

    /// Serves `blob` with Range support; the first `cuts` answers stop
    /// after `every` bytes. With `bad_range`, the first resume gets a
    /// wrong Content-Range (the download starts over).
    fn cutting_server(blob: Vec<u8>, every: usize, cuts: usize, bad_range: bool) -> u16 {
        let calls = Mutex::new(0usize);
        server(move |head| {
            let mut n = calls.lock().unwrap();
            *n += 1;
            let from = head
                .lines()
                .find_map(|l| l.strip_prefix("Range: bytes="))
                .map_or(0, |r| r.trim_end_matches('-').parse::<usize>().unwrap());
            let start = if bad_range && *n == 2 { from - 1 } else { from };
            let mut v = if from > 0 {
                let extra = format!(
                    "Content-Range: bytes {start}-{}/{}\r\n",
                    blob.len() - 1,
                    blob.len()
                );
                let mut v = ok(&blob[start..], &extra);
                v[9..12].copy_from_slice(b"206");
                v
            } else {
                ok(&blob, "")
            };
            if *n <= cuts {
                let body_at = v.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                v.truncate(body_at + every);
            }
            v
        })
        .0
    }

    #[test]
    fn a_resumed_layer_still_unpacks_and_one_that_starts_over_unpacks_from_the_file() {
        let (a, b) = (noise(200_000, 3), noise(100_000, 4));
        let (blob, diff_id) = layer(&[("a.bin", &a), ("dir/b.bin", &b)]);
        let c = client();
        // Cut twice, resumed with Range: the stream carries on. Cut once
        // and answered with the wrong range: unpacked again from the file.
        // A partial file from a killed run: read back, then resumed.
        for (cuts, bad_range, partial, how) in [
            (2, false, 0, "stream"),
            (1, true, 0, "file"),
            (0, false, 120_000, "stream"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let store = ImageStore::open(dir.path()).unwrap();
            let d = desc(&blob);
            let digest = Digest::parse(&d.digest).unwrap();
            if partial > 0 {
                let p = store
                    .blob_path(&digest)
                    .with_file_name(format!("{}.partial", digest.hex()));
                fs::write(p, &blob[..partial]).unwrap();
            }
            let port = cutting_server(blob.clone(), 90_000, cuts, bad_range);
            let events = Mutex::new(Vec::new());
            fetch(&store, &repo(&c, port), &d, Some(&diff_id), &|e| {
                events.lock().unwrap().push(e)
            })
            .unwrap();
            let retries = events
                .lock()
                .unwrap()
                .iter()
                .filter(|e| matches!(e, Event::Retry { .. }))
                .count();
            assert_eq!(retries, cuts, "{cuts} {bad_range}");
            assert_eq!(unpack_of(&events), [how], "{cuts} {bad_range} {partial}");
            let dest = store.layer_path(&diff_id);
            assert_eq!(fs::read(dest.join("a.bin")).unwrap(), a);
            assert_eq!(fs::read(dest.join("dir/b.bin")).unwrap(), b);
            assert_eq!(fs::read(store.blob_path(&digest)).unwrap(), blob);
            assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
        }
    }

    #[test]
    fn a_streamed_layer_with_a_wrong_digest_or_diff_id_leaves_nothing() {
        let (blob, diff_id) = layer(&[("a.bin", &noise(50_000, 5))]);
        let mut other_blob = blob.clone();
        other_blob[30_000] ^= 1;
        let c = client();
        // The registry sends a corrupted layer: the unpack fails (gzip's
        // CRC), and the error is the digest's, naming both.
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let b = other_blob.clone();
        let (port, _) = server(move |_| ok(&b, ""));
        let want = desc(&blob);
        let err = fetch(&store, &repo(&c, port), &want, Some(&diff_id), &|_| {}).unwrap_err();
        let got = Digest::of_bytes(&other_blob).to_string();
        assert!(
            err.message.contains(&want.digest) && err.message.contains(&got),
            "{err}"
        );
        let digest = Digest::parse(&want.digest).unwrap();
        let partial = store
            .blob_path(&digest)
            .with_file_name(format!("{}.partial", digest.hex()));
        assert!(!partial.exists() && !store.blob_path(&digest).exists());
        assert!(!store.layer_path(&diff_id).exists());
        assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
        // The right blob with a wrong diff ID.
        let b = blob.clone();
        let (port, _) = server(move |_| ok(&b, ""));
        let wrong = Digest::of_bytes(b"not the tar");
        let err = fetch(&store, &repo(&c, port), &want, Some(&wrong), &|_| {}).unwrap_err();
        assert!(
            err.message.contains(&wrong.to_string()) && err.message.contains(&diff_id.to_string()),
            "{err}"
        );
        assert!(!store.layer_path(&wrong).exists());
        assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn content_range_start_is_parsed() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/*"), Some(0));
        assert_eq!(content_range_start("items 1-2/3"), None);
    }
}
