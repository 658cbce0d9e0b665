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
        let mut desired = manifests::desired(&mut merged);
        // Pods are applied in file order, then in document order: admission
        // (`maxPods`) takes them first come, first served, so which ones run
        // is deterministic. A name defined twice belongs to the first file.
        let mut file_of = BTreeMap::new();
        let mut order = Vec::new();
        for (path, pods) in &merged.files {
            for p in pods {
                let key = format!("{}/{}", p.metadata.namespace, p.metadata.name);
                if let std::collections::btree_map::Entry::Vacant(e) = file_of.entry(key.clone()) {
                    e.insert(path.display().to_string());
                    order.push(key);
                }
            }
        }
        self.scan = merged;
        // Deletions: static pods no longer in any file (fleet pods are
        // the fleet channel's business).
        let gone: Vec<String> = self
            .sources
            .iter()
            .filter(|(k, v)| !fleet::is_fleet_source(v) && !desired.contains_key(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.sources.remove(&key);
            if let Some((ns, name)) = key.split_once('/') {
                self.pending.push_back(Input::DeletePod {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                });
            }
        }
        for key in order {
            let Some(pod) = desired.remove(&key) else {
                continue;
            };
            if let Some(src) = file_of.get(&key) {
                self.sources.insert(key.clone(), src.clone());
            }
            self.pending.push_back(Input::ApplyPod {
                pod,
                fresh_uid: new_uid(),
            });
        }
        log::debug!(
            "rescanned {}: {} pods in {} files, {} invalid, in {:?}",
            dir.display(),
            self.sources.len(),
            self.scan.files.len(),
            self.scan.errors.len(),
            started.elapsed()
        );
        self.dirty = true;
        // A static pod appeared or went: fleet pods of the same name are
        // refused or come back.
        self.fleet_reconcile();
    }
}
