//! The static pods' event source: the manifests directory, watched with
//! inotify (and read again on SIGHUP). Reading it gives the static pods;
//! what to do with them is the desired-state core's business
//! ([`crate::desired`]).

use super::{AgentError, Msg, io_err, manifests};
use crate::desired::StaticPod;
use crate::reactor::{self, Async};
use crate::vecmap::VecMap;
use async_channel::Sender;
use std::path::PathBuf;

/// The manifests directory and its last good scan.
#[derive(Debug)]
pub(super) struct StaticPods {
    dir: Option<PathBuf>,
    scan: manifests::Scan,
}

impl StaticPods {
    /// `dir`: `--manifests`, if given.
    pub(super) fn new(dir: Option<PathBuf>) -> StaticPods {
        StaticPods {
            dir,
            scan: manifests::Scan::default(),
        }
    }

    /// Creates the directory and starts the task that sends
    /// [`Msg::ManifestsChanged`] on every change. False without a
    /// directory.
    pub(super) fn watch(&self, tx: Sender<Msg>) -> Result<bool, AgentError> {
        let Some(dir) = &self.dir else {
            return Ok(false);
        };
        std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        let watch = manifests::Watch::new(dir).map_err(io_err("watching", dir))?;
        reactor::spawn(async move {
            let Ok(watch) = Async::new(watch) else { return };
            loop {
                if watch.readable().await.is_err() {
                    return;
                }
                let _ = watch.get_ref().drain();
                let _ = tx.send(Msg::ManifestsChanged).await;
            }
        })
        .detach();
        Ok(true)
    }

    /// The workloads of the last good scan.
    pub(super) fn workloads(&self) -> Vec<crate::desired::StaticWorkload> {
        manifests::workloads(&self.scan)
    }

    /// The ConfigMaps and Secrets of the last good scan.
    pub(super) fn objects(&self) -> crate::spec::Objects {
        manifests::objects(&self.scan)
    }

    /// Files that failed to load, with the error (naming the field).
    pub(super) fn errors(&self) -> &VecMap<PathBuf, String> {
        &self.scan.errors
    }

    /// Re-reads the directory (only the files that changed), keeping the
    /// last good version of a file that no longer loads. `None`: no
    /// directory, or it could not be read (nothing changes).
    pub(super) fn rescan(&mut self) -> Option<Vec<StaticPod>> {
        let dir = self.dir.as_ref()?;
        let started = std::time::Instant::now();
        let next = match manifests::rescan(dir, &self.scan) {
            Ok(s) => s,
            Err(e) => {
                log::error!("reading {}: {e}", dir.display());
                return None;
            }
        };
        for (path, err) in &next.errors {
            if self.scan.errors.get(path) != Some(err) {
                log::error!("invalid manifest, nothing changed: {err}");
            }
        }
        let mut merged = manifests::merge_keep_last_good(&self.scan, next);
        // Records the names defined twice as errors of the later files.
        manifests::desired(&mut merged);
        let statics = crate::desired::static_pods(&merged.files);
        self.scan = merged;
        log::debug!(
            "rescanned {}: {} pods in {} files, {} invalid, in {:?}",
            dir.display(),
            statics.len(),
            self.scan.files.len(),
            self.scan.errors.len(),
            started.elapsed()
        );
        Some(statics)
    }
}
