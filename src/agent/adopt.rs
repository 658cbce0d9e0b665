//! Re-adoption of running shims after an agent restart (DESIGN §1).

use super::*;

impl Agent {
    /// Reconnects to every shim in the state file (DESIGN §1: the agent can
    /// die without one pod restarting) and finds orphan shims under `pods/`.
    pub(super) async fn adopt(&mut self) -> Vec<String> {
        let mut adopted = Vec::new();
        let known: Vec<String> = self.node.pods().map(|p| p.uid.clone()).collect();
        let pods_dir = self.cfg.state_dir.join("pods");
        let mut on_disk: Vec<String> = std::fs::read_dir(&pods_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        on_disk.sort();
        for uid in &known {
            let sock = pods_dir.join(uid).join("shim.sock");
            let generation = self.next_generation;
            self.next_generation += 1;
            match sandbox::connect(uid, &sock, generation, self.tx.clone()).await {
                Ok(conn) => {
                    log::info!("pod {uid}: re-adopted its shim");
                    adopted.push(uid.clone());
                    self.pods.entry(uid.clone()).or_default().conn = Some(conn);
                }
                Err(e) => {
                    if self.pods.get(uid).is_some_and(|p| p.record.is_some()) {
                        log::warn!("pod {uid}: shim gone ({e}); its containers are lost");
                    }
                    self.pods.entry(uid.clone()).or_default().record = None;
                    self.pending
                        .push_back(Input::SandboxGone { uid: uid.clone() });
                }
            }
        }
        // Shims the state file does not know (it was lost): stop them. Their
        // pods are recreated from the manifests.
        for uid in on_disk.iter().filter(|u| !known.contains(u)) {
            let dir = pods_dir.join(uid);
            let sock = dir.join("shim.sock");
            if let Ok(conn) = sandbox::connect(uid, &sock, 0, self.tx.clone()).await {
                log::warn!("pod {uid}: shim not in the state file; stopping it");
                conn.send(proto::Request::Shutdown);
                reactor::sleep(Duration::from_millis(200)).await;
            }
            if let Err(e) = sandbox::remove_pod_dir(&dir) {
                log::warn!("removing {}: {e}", dir.display());
            }
        }
        adopted
    }
}
