//! What `apply` and `delete pod` change in a desired document, before it is
//! published: the merge (or, with `--prune`, the replacement) of the pods,
//! and the diff printed for it. Pure.
//!
//! - `apply` (merge): each pod given replaces the pod of the same
//!   `namespace/name` in place, or is added at the end; the others stay.
//! - `apply --prune`: the pods given are the whole set; the others are
//!   removed.
//! - `delete pod`: that one pod goes, the others stay.
//!
//! The diff lists `+ pod/NS/NAME` (added), `~ pod/NS/NAME (what changed)`,
//! `- pod/NS/NAME` (removed) and the number of unchanged pods. Pods are
//! compared as the devices see them (their JSON form, as decoded).

use crate::spec::workload::Workload;
use crate::spec::{ConfigObject, Pod, PodSpec};
use crate::vecmap::VecSet;
use serde_json::Value;

/// How a pod changed, which says what the device does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Labels or annotations only: the pod keeps running as it is.
    Metadata,
    /// Only container images: the containers restart in place (same uid).
    Images,
    /// Anything else: the pod is replaced (a new uid).
    Replace,
}

/// A pod that changed: its key, a short summary, and the kind of change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub key: String,
    pub summary: String,
    pub kind: Kind,
}

/// The new set of pods and how it differs from the current one.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub pods: Vec<Pod>,
    pub added: Vec<String>,
    pub changed: Vec<Changed>,
    pub removed: Vec<String>,
    pub unchanged: usize,
    /// The document's ConfigMaps and Secrets when this plan sets them
    /// (`apply`); `None`: the current ones stay (`delete pod`).
    pub objects: Option<Vec<ConfigObject>>,
    /// Their diff lines (`+ configmap/NS/NAME`, `~ secret/NS/NAME (keys:
    /// a, b)`, `- …`): keys only, never a value.
    pub object_lines: Vec<String>,
    /// The document's workloads when this plan sets them (`apply`), each
    /// with its JSON text; `None`: the current ones stay.
    pub workloads: Option<Vec<(Workload, String)>>,
}

/// `namespace/name`.
pub fn key(p: &Pod) -> String {
    format!("{}/{}", p.metadata.namespace_or_default(), p.metadata.name)
}

fn to_value(p: &Pod) -> Value {
    serde_json::to_value(p).expect("a pod always serializes")
}

impl Plan {
    /// Whether publishing would change nothing.
    pub fn is_noop(&self) -> bool {
        self.added.is_empty()
            && self.changed.is_empty()
            && self.removed.is_empty()
            && self.object_lines.is_empty()
    }

    /// The diff, one line each (see the module doc).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for k in &self.added {
            out.push_str(&format!("+ pod/{k}\n"));
        }
        for c in &self.changed {
            out.push_str(&format!("~ pod/{} ({})\n", c.key, c.summary));
        }
        for k in &self.removed {
            out.push_str(&format!("- pod/{k}\n"));
        }
        for l in &self.object_lines {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str(&format!("  {} unchanged\n", self.unchanged));
        out
    }

    /// The pods whose state this publish changes (added or changed), with
    /// the kind of change (`None`: added).
    pub fn touched(&self) -> Vec<(String, Option<Kind>)> {
        let added = self.added.iter().map(|k| (k.clone(), None));
        let changed = self.changed.iter().map(|c| (c.key.clone(), Some(c.kind)));
        added.chain(changed).collect()
    }
}

/// Refuses two pods of the same `namespace/name` among those given.
fn no_duplicates(pods: &[Pod]) -> Result<(), String> {
    let mut seen = VecSet::new();
    for p in pods {
        if !seen.insert(key(p)) {
            return Err(format!(
                "pod {} is given twice; a desired document holds each pod once",
                key(p)
            ));
        }
    }
    Ok(())
}

/// `apply`: `given` merged into `current` (or replacing it, `prune`).
pub fn apply(current: &[Pod], given: Vec<Pod>, prune: bool) -> Result<Plan, String> {
    no_duplicates(&given)?;
    let mut plan = Plan {
        pods: Vec::new(),
        added: Vec::new(),
        changed: Vec::new(),
        removed: Vec::new(),
        unchanged: 0,
        objects: None,
        object_lines: Vec::new(),
        workloads: None,
    };
    let mut given: Vec<Option<Pod>> = given.into_iter().map(Some).collect();
    for old in current {
        let k = key(old);
        let new = given
            .iter_mut()
            .find(|g| g.as_ref().is_some_and(|g| key(g) == k))
            .and_then(Option::take);
        match new {
            Some(new) => {
                compare(&mut plan, old, &new);
                plan.pods.push(new);
            }
            None if prune => plan.removed.push(k),
            None => {
                plan.unchanged += 1;
                plan.pods.push(old.clone());
            }
        }
    }
    for new in given.into_iter().flatten() {
        plan.added.push(key(&new));
        plan.pods.push(new);
    }
    Ok(plan)
}

/// `delete pod`: `current` without `namespace/name`; `None` when it is not
/// there.
pub fn remove(current: &[Pod], namespace: &str, name: &str) -> Option<Plan> {
    let k = format!("{namespace}/{name}");
    let pods: Vec<Pod> = current.iter().filter(|p| key(p) != k).cloned().collect();
    (pods.len() < current.len()).then(|| Plan {
        unchanged: pods.len(),
        pods,
        added: Vec::new(),
        changed: Vec::new(),
        removed: vec![k],
        objects: None,
        object_lines: Vec::new(),
        workloads: None,
    })
}

impl Plan {
    /// `apply` of ConfigMaps and Secrets: each given replaces the one of
    /// the same kind and `namespace/name`, or is added; with `prune` the
    /// given ones are the whole set. The diff names keys, never values.
    pub fn apply_objects(
        &mut self,
        current: &[ConfigObject],
        given: Vec<ConfigObject>,
        prune: bool,
    ) -> Result<(), String> {
        let id = |o: &ConfigObject| format!("{}/{}", o.kind.resource(), o.key());
        let mut seen = VecSet::new();
        for o in &given {
            if !seen.insert(id(o)) {
                return Err(format!("{} is given twice", id(o)));
            }
        }
        let mut out = Vec::new();
        let mut given: Vec<Option<ConfigObject>> = given.into_iter().map(Some).collect();
        for old in current {
            let new = given
                .iter_mut()
                .find(|g| g.as_ref().is_some_and(|g| id(g) == id(old)))
                .and_then(Option::take);
            match new {
                Some(new) => {
                    if new != *old {
                        let keys: VecSet<&String> = old
                            .data
                            .iter()
                            .chain(new.data.iter())
                            .filter(|(k, _)| old.data.get(*k) != new.data.get(*k))
                            .map(|(k, _)| k)
                            .collect();
                        let keys: Vec<&str> = keys.into_iter().map(String::as_str).collect();
                        self.object_lines.push(format!(
                            "~ {} (keys: {})",
                            id(&new),
                            keys.join(", ")
                        ));
                    }
                    out.push(new);
                }
                None if prune => self.object_lines.push(format!("- {}", id(old))),
                None => out.push(old.clone()),
            }
        }
        for new in given.into_iter().flatten() {
            self.object_lines.push(format!("+ {}", id(&new)));
            out.push(new);
        }
        self.objects = Some(out);
        Ok(())
    }

    /// `apply` of workloads, by the rules of [`Plan::apply_objects`]:
    /// each given one replaces the current one of its kind, namespace and
    /// name, or is added; with `prune` the others go. Lines
    /// `+ deployment.apps/NS/NAME`, `~ …`, `- …`.
    pub fn apply_workloads(
        &mut self,
        current: &[(Workload, String)],
        given: Vec<(Workload, String)>,
        prune: bool,
    ) -> Result<(), String> {
        let id = |w: &Workload| {
            let k = w.key();
            format!("{}/{}/{}", k.kind.resource(), k.namespace, k.name)
        };
        let mut seen = VecSet::new();
        for (w, _) in &given {
            if !seen.insert(id(w)) {
                return Err(format!("{} is given twice", id(w)));
            }
        }
        let mut out = Vec::new();
        let mut given: Vec<Option<(Workload, String)>> = given.into_iter().map(Some).collect();
        for old in current {
            let new = given
                .iter_mut()
                .find(|g| g.as_ref().is_some_and(|g| id(&g.0) == id(&old.0)))
                .and_then(Option::take);
            match new {
                Some(new) => {
                    if new.0 != old.0 {
                        self.object_lines.push(format!("~ {}", id(&new.0)));
                    }
                    out.push(new);
                }
                None if prune => self.object_lines.push(format!("- {}", id(&old.0))),
                None => out.push(old.clone()),
            }
        }
        for new in given.into_iter().flatten() {
            self.object_lines.push(format!("+ {}", id(&new.0)));
            out.push(new);
        }
        self.workloads = Some(out);
        Ok(())
    }
}

fn compare(plan: &mut Plan, old: &Pod, new: &Pod) {
    let (a, b) = (to_value(old), to_value(new));
    if a == b {
        plan.unchanged += 1;
        return;
    }
    let mut paths = Vec::new();
    diff_paths(&a, &b, String::new(), &mut paths);
    let shown = 3;
    let mut summary = paths
        .iter()
        .take(shown)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > shown {
        summary.push_str(&format!(", and {} more", paths.len() - shown));
    }
    plan.changed.push(Changed {
        key: key(new),
        summary,
        kind: kind(&old.spec, &new.spec),
    });
}

/// What the device does with the change (as `lifecycle::pod::classify`).
fn kind(old: &PodSpec, new: &PodSpec) -> Kind {
    if old == new {
        return Kind::Metadata;
    }
    let blank = |s: &PodSpec| {
        let mut s = s.clone();
        for c in s.containers.iter_mut().chain(s.init_containers.iter_mut()) {
            c.image.clear();
        }
        s
    };
    if blank(old) == blank(new) {
        Kind::Images
    } else {
        Kind::Replace
    }
}

fn short(v: &Value) -> Option<String> {
    let s = match v {
        Value::Null => "<none>".to_string(),
        Value::Object(_) | Value::Array(_) => return None,
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    (s.chars().count() <= 40).then_some(s)
}

/// The paths where `a` and `b` differ (`spec.containers[0].image: "a" → "b"`
/// for short scalars, the bare path otherwise).
fn diff_paths(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: VecSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if va != vb {
                    diff_paths(va, vb, join(k), out);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                if va != vb {
                    diff_paths(va, vb, format!("{path}[{i}]"), out);
                }
            }
        }
        _ => match (short(a), short(b)) {
            (Some(sa), Some(sb)) => out.push(format!("{path}: {sa} → {sb}")),
            _ => out.push(path),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str, name: &str, value: &str) -> ConfigObject {
        let field = if kind == "Secret" {
            "stringData"
        } else {
            "data"
        };
        let text = format!(
            "apiVersion: v1\nkind: {kind}\nmetadata: {{name: {name}}}\n{field}: {{k: '{value}'}}\n"
        );
        match crate::spec::load_manifests_str(&text, "t")
            .remove(0)
            .unwrap()
        {
            crate::spec::Manifest::Object(o) => o,
            _ => unreachable!(),
        }
    }

    #[test]
    fn apply_merges_config_maps_and_secrets_and_its_diff_shows_keys_only() {
        let current = [
            object("ConfigMap", "a", "1"),
            object("Secret", "s", "hunter2"),
        ];
        let mut plan = apply(&[], vec![], false).unwrap();
        plan.apply_objects(
            &current,
            vec![
                object("Secret", "s", "hunter3"),
                object("ConfigMap", "b", "2"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(
            plan.object_lines,
            ["~ secret/default/s (keys: k)", "+ configmap/default/b"]
        );
        assert!(!plan.render().contains("hunter"), "{}", plan.render());
        assert_eq!(plan.objects.as_ref().unwrap().len(), 3);
        assert!(!plan.is_noop());
        let mut pruned = apply(&[], vec![], true).unwrap();
        pruned
            .apply_objects(&current, vec![object("ConfigMap", "a", "1")], true)
            .unwrap();
        assert_eq!(pruned.object_lines, ["- secret/default/s"]);
        let mut same = apply(&[], vec![], false).unwrap();
        same.apply_objects(&current, vec![object("ConfigMap", "a", "1")], false)
            .unwrap();
        assert!(same.is_noop());
    }

    fn pod(ns: &str, name: &str, image: &str, cmd: &str) -> Pod {
        let ns = if ns.is_empty() {
            String::new()
        } else {
            format!("\n  namespace: {ns}")
        };
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}{ns}\nspec:\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sh\", \"-c\", \"{cmd}\"]\n"
        );
        crate::spec::load_str(&text, "test").remove(0).unwrap()
    }

    #[test]
    fn apply_merges_by_namespace_and_name_and_keeps_the_others() {
        let current = vec![
            pod("", "web", "busybox:1", "a"),
            pod("", "db", "busybox:1", "a"),
        ];
        let given = vec![
            pod("default", "web", "busybox:2", "a"),
            pod("", "cache", "busybox:1", "a"),
            pod("other", "db", "busybox:1", "a"),
        ];
        let plan = apply(&current, given.clone(), false).unwrap();
        let keys: Vec<String> = plan.pods.iter().map(key).collect();
        assert_eq!(
            keys,
            ["default/web", "default/db", "default/cache", "other/db"]
        );
        assert_eq!(plan.added, ["default/cache", "other/db"]);
        assert_eq!(plan.removed, Vec::<String>::new());
        assert_eq!(plan.unchanged, 1);
        assert_eq!(plan.changed.len(), 1);
        assert_eq!(plan.changed[0].key, "default/web");
        assert_eq!(plan.changed[0].kind, Kind::Images);
        assert_eq!(
            plan.changed[0].summary,
            "spec.containers[0].image: \"busybox:1\" → \"busybox:2\""
        );
        assert_eq!(
            plan.render(),
            "+ pod/default/cache\n+ pod/other/db\n~ pod/default/web (spec.containers[0].image: \"busybox:1\" → \"busybox:2\")\n  1 unchanged\n"
        );

        // --prune: the given pods are the whole set.
        let plan = apply(&current, given, true).unwrap();
        assert_eq!(plan.removed, ["default/db"]);
        assert_eq!(plan.unchanged, 0);
        assert_eq!(plan.pods.len(), 3);
        assert!(plan.render().contains("- pod/default/db\n"));
    }

    #[test]
    fn the_same_pods_again_change_nothing() {
        let current = vec![pod("", "web", "busybox:1", "a")];
        let plan = apply(&current, current.clone(), false).unwrap();
        assert!(plan.is_noop());
        assert_eq!(plan.unchanged, 1);
        assert!(apply(&current, current.clone(), true).unwrap().is_noop());
        let changed = apply(&current, vec![pod("", "web", "busybox:1", "b")], false).unwrap();
        assert_eq!(changed.changed[0].kind, Kind::Replace);
        assert_eq!(
            changed.changed[0].summary,
            "spec.containers[0].command[2]: \"a\" → \"b\""
        );
    }

    #[test]
    fn a_pod_given_twice_is_refused_and_delete_removes_one() {
        let p = pod("", "web", "busybox:1", "a");
        let e = apply(&[], vec![p.clone(), p.clone()], false).unwrap_err();
        assert!(e.contains("pod default/web is given twice"), "{e}");
        let current = vec![p, pod("", "db", "busybox:1", "a")];
        let plan = remove(&current, "default", "web").unwrap();
        assert_eq!(plan.removed, ["default/web"]);
        assert_eq!(plan.unchanged, 1);
        assert_eq!(plan.pods.len(), 1);
        assert!(remove(&current, "default", "nope").is_none());
        assert!(remove(&current, "other", "web").is_none());
    }
}
