//! Applying the manifests directory: diff the scan against what runs.

use super::*;

impl Agent {
    /// Re-reads the manifests dir and applies the difference.
    pub(super) fn rescan(&mut self) {
        let Some(dir) = self.cfg.manifests.clone() else {
            return;
        };
        let started = std::time::Instant::now();
        let next = match manifests::rescan(&dir, &self.scan) {
            Ok(s) => s,
            Err(e) => {
                log::error!("reading {}: {e}", dir.display());
                return;
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
        let count = statics.len();
        self.scan = merged;
        self.reconcile(Some(statics));
        log::debug!(
            "rescanned {}: {} pods in {} files, {} invalid, in {:?}",
            dir.display(),
            count,
            self.scan.files.len(),
            self.scan.errors.len(),
            started.elapsed()
        );
    }
}
