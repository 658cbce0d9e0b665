//! `docs/pod-fields.md` is generated from the schema tables, so the list of
//! what picolet does with every Pod field cannot drift from the code.
//! Regenerate it with `PICOLET_WRITE_DOCS=1 cargo test --lib fields_doc`.

use crate::spec::schema::{CONFIG_MAP, Node, POD, Rule, SECRET};

fn walk(node: &Node, path: &str, out: &mut Vec<(String, String)>) {
    match node {
        Node::Object(fields) => {
            for (key, rule) in fields.iter() {
                let p = if path.is_empty() {
                    (*key).to_string()
                } else {
                    format!("{path}.{key}")
                };
                match rule {
                    Rule::Field(child) => {
                        let before = out.len();
                        walk(child, &p, out);
                        if out.len() == before {
                            out.push((p, "supported".into()));
                        }
                    }
                    Rule::Ignore => out.push((p, "ignored (informational)".into())),
                    Rule::IgnoreIfEmpty(why) => {
                        out.push((p, format!("refused unless empty: {why}")))
                    }
                    Rule::IgnoreIf(_, why) => {
                        out.push((p, format!("refused unless the no-op value: {why}")))
                    }
                    Rule::Unsupported(why) => out.push((p, format!("refused: {why}"))),
                }
            }
        }
        Node::List(item) => walk(item, &format!("{path}[*]"), out),
        Node::Scalar | Node::Quantity | Node::ResourceList | Node::Mode => {}
    }
}

fn render() -> String {
    let mut s = String::from(
        "# Pod fields: what picolet does with each\n\n\
         Generated from the schema tables in `src/spec/schema.rs` by the test\n\
         `spec::tests::fields_doc` (which fails when this file is stale; regenerate\n\
         with `PICOLET_WRITE_DOCS=1 cargo test --lib fields_doc`). Every field is:\n\n\
         - **supported**: honoured as Kubernetes does (details in the subsystem's\n  \
         page; differences in docs/design-deviations.md). Values are still\n  \
         validated: one that picolet cannot honour (`seccompProfile.type:\n  \
         Localhost`, an unsafe sysctl, a `Localhost` profile's path) is refused\n  \
         with its path;\n\
         - **ignored (informational)**: data about the cluster, scheduling or the\n  \
         API server that does not change what runs on this node; dropped so that\n  \
         `kubectl get pod -o yaml` exports load;\n\
         - **refused unless empty / unless the no-op value**: a field that would\n  \
         change what runs and that picolet does not implement; exports often carry\n  \
         it with a no-op value, which is accepted, and any other value is refused\n  \
         with its path and the reason;\n\
         - **refused**: any value is refused with its path and the reason.\n\n\
         A key that is not listed is refused as an unknown field. `null` is\n\
         treated as absent everywhere.\n",
    );
    for (title, node) in [
        ("Pod (`v1`)", &POD),
        ("ConfigMap (`v1`)", &CONFIG_MAP),
        ("Secret (`v1`)", &SECRET),
    ] {
        let mut rows = Vec::new();
        walk(node, "", &mut rows);
        s.push_str(&format!("\n## {title}\n\n| field | picolet |\n|---|---|\n"));
        for (path, what) in rows {
            s.push_str(&format!("| `{path}` | {} |\n", what.replace('|', "\\|")));
        }
    }
    s.push_str(AUDIT);
    s
}

/// What the audit of the "ignored" and "supported" rows found (issue 11
/// item 8): fields whose Kubernetes meaning picolet does not (yet) carry out.
const AUDIT: &str = "
## Audit: accepted fields that picolet does not carry out

Checked field by field against the kubelet (2026-12-06). Each is a known gap,
to be honoured or refused; until then it is listed here rather than hidden:

- `spec.affinity.podAffinity` / `podAntiAffinity` and
  `nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution`: the
  scheduler's placement between nodes; the kubelet does not check them at
  admission either. On one node they would only say whether two pods may
  share it; picolet runs both.

`terminationMessagePath` and `terminationMessagePolicy` are carried out
as the kubelet does (the file's last 4 KiB, or the log's tail with
`FallbackToLogsOnError`, into `state.terminated.message`;
docs/lifecycle.md, its Termination messages section).
`spec.priority` and `priorityClassName` (the built-in classes; another
name is refused) rank disk-pressure evictions after the request check, a
critical pod is never evicted and `system-node-critical` gets the
kubelet's `oom_score_adj` (docs/lifecycle.md, Eviction).
`spec.nodeSelector` and `nodeAffinity.requiredDuringScheduling…` are
checked at admission against the node's labels (docs/lifecycle.md): a pod
that does not match is rejected (`NodeAffinity`), as the kubelet does.
`spec.subdomain` (with `hostname`) names the pod
`<hostname>.<subdomain>.<namespace>.svc.cluster.local` in its `/etc/hosts`.

Fields that are informational here because there is no cluster:
`enableServiceLinks` (no Services),
`automountServiceAccountToken` and `serviceAccount` (no token),
`schedulerName`, `tolerations`, `topologySpreadConstraints`,
`schedulingGates`, `preemptionPolicy` (no scheduler).
";

#[test]
fn the_pod_fields_page_lists_every_schema_field() {
    let doc = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/pod-fields.md");
    let want = render();
    if std::env::var_os("PICOLET_WRITE_DOCS").is_some() {
        std::fs::write(doc, &want).unwrap();
    }
    let have = std::fs::read_to_string(doc).unwrap_or_default();
    assert!(
        have == want,
        "docs/pod-fields.md is stale: run PICOLET_WRITE_DOCS=1 cargo test --lib fields_doc"
    );
}
