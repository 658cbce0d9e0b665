//! `nodeSelector`, node affinity and `subdomain`: typed, checked, matched.

use super::{MINIMAL, load_err, load_one};
use crate::spec::ErrorKind;
use crate::spec::affinity::{matches, node_labels};
use crate::vecmap::VecMap;

fn with_spec(extra: &str) -> String {
    MINIMAL.replace("  containers:", &format!("{extra}  containers:"))
}

fn labels(kv: &[(&str, &str)]) -> VecMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const AFFINITY: &str = "  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: picolet.io/board, operator: In, values: [raspberry-pi-5, raspberry-pi-4]}
          - {key: gpu, operator: DoesNotExist}
        - matchFields:
          - {key: metadata.name, operator: In, values: [edge-7]}
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 1
        preference: {matchExpressions: [{key: zone, operator: In, values: [a]}]}
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector: {matchLabels: {app: web}}
        topologyKey: kubernetes.io/hostname
";

#[test]
fn node_affinity_terms_are_ored_and_their_requirements_anded() {
    let pod = load_one(&with_spec(AFFINITY)).unwrap_or_else(|e| panic!("{e}"));
    let a = pod.spec.affinity.as_ref();
    let none = VecMap::new();
    let pi5 = labels(&[("picolet.io/board", "raspberry-pi-5")]);
    let pi5_gpu = labels(&[("picolet.io/board", "raspberry-pi-5"), ("gpu", "1")]);
    assert!(matches(&none, a, "n", &pi5));
    assert!(!matches(&none, a, "n", &pi5_gpu));
    assert!(!matches(&none, a, "n", &none));
    // The second term: by node name.
    assert!(matches(&none, a, "edge-7", &none));
    // nodeSelector is ANDed with the affinity.
    let sel = labels(&[("disk", "ssd")]);
    assert!(!matches(&sel, a, "n", &pi5));
    let mut both = pi5.clone();
    both.insert("disk".into(), "ssd".into());
    assert!(matches(&sel, a, "n", &both));
    // No affinity, no selector: anywhere.
    assert!(matches(&none, None, "n", &none));
}

#[test]
fn gt_and_lt_compare_integers_and_an_empty_term_matches_nothing() {
    let pod = load_one(&with_spec(
        "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions:\n          - {key: cores, operator: Gt, values: ['2']}\n          - {key: cores, operator: Lt, values: ['8']}\n",
    ))
    .unwrap();
    let a = pod.spec.affinity.as_ref();
    let none = VecMap::new();
    assert!(matches(&none, a, "n", &labels(&[("cores", "4")])));
    assert!(!matches(&none, a, "n", &labels(&[("cores", "2")])));
    assert!(!matches(&none, a, "n", &labels(&[("cores", "8")])));
    assert!(!matches(&none, a, "n", &labels(&[("cores", "four")])));
    let mut empty = pod.spec.affinity.clone().unwrap();
    let terms = &mut empty
        .node_affinity
        .as_mut()
        .unwrap()
        .required
        .as_mut()
        .unwrap()
        .node_selector_terms;
    terms[0].match_expressions.clear();
    assert!(!matches(&none, Some(&empty), "n", &none));
}

#[test]
fn bad_node_selectors_and_affinities_are_refused_with_their_path() {
    let base = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution";
    let term = |req: &str| {
        with_spec(&format!(
            "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - {req}\n"
        ))
    };
    for (text, path, msg) in [
        (
            with_spec("  nodeSelector: {'bad key!': x}\n"),
            "spec.nodeSelector".to_string(),
            "",
        ),
        (
            term("matchExpressions: [{key: a, operator: In}]"),
            format!("{base}.nodeSelectorTerms[0].matchExpressions[0].values"),
            "must be specified when `operator` is 'In' or 'NotIn'",
        ),
        (
            term("matchExpressions: [{key: a, operator: Gt, values: [x]}]"),
            format!("{base}.nodeSelectorTerms[0].matchExpressions[0].values"),
            "must be specified single value when `operator` is 'Lt' or 'Gt'",
        ),
        (
            term("matchExpressions: [{key: a, operator: Exists, values: [x]}]"),
            format!("{base}.nodeSelectorTerms[0].matchExpressions[0].values"),
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        ),
        (
            term("matchExpressions: [{key: a, operator: Near}]"),
            format!("{base}.nodeSelectorTerms[0].matchExpressions[0].operator"),
            "Unsupported value: \"Near\"",
        ),
        (
            term("matchFields: [{key: metadata.uid, operator: In, values: [x]}]"),
            format!("{base}.nodeSelectorTerms[0].matchFields[0].key"),
            "Unsupported value",
        ),
        (
            term("matchFields: [{key: metadata.name, operator: In, values: [x, y]}]"),
            format!("{base}.nodeSelectorTerms[0].matchFields[0].values"),
            "must be only one value",
        ),
        (
            with_spec(
                "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: []}\n",
            ),
            format!("{base}.nodeSelectorTerms"),
            "must have at least one node selector term",
        ),
        (
            with_spec("  hostname: web-0\n  subdomain: Not_A_Label\n"),
            "spec.subdomain".to_string(),
            "",
        ),
    ] {
        let e = load_err(&text);
        assert_eq!(e.kind, ErrorKind::Invalid, "{e}");
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains(msg), "{e}");
    }
    // An unknown key inside an affinity is an unknown field, not ignored.
    let e = load_err(&term("matchExpresions: []"));
    assert_eq!(e.kind, ErrorKind::UnknownField, "{e}");
}

#[test]
fn a_manifest_cannot_write_a_claim_volume() {
    let e = load_err(&format!(
        "{MINIMAL}  volumes:\n  - name: v\n    persistentVolumeClaim: {{claimName: data-db-0}}\n"
    ));
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.message.contains("volumeClaimTemplates"), "{e}");
}

#[test]
fn node_labels_are_the_kubelets_then_the_board_then_the_configured_ones() {
    let l = node_labels(
        "pi-1",
        "aarch64",
        Some("raspberry-pi-5"),
        &labels(&[("zone", "barn"), ("kubernetes.io/os", "linux")]),
    );
    assert_eq!(
        l,
        labels(&[
            ("kubernetes.io/hostname", "pi-1"),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "arm64"),
            ("picolet.io/board", "raspberry-pi-5"),
            ("zone", "barn"),
        ])
    );
    assert_eq!(
        node_labels("n", "x86_64", None, &VecMap::new())["kubernetes.io/arch"],
        "amd64"
    );
    assert_eq!(
        node_labels("n", "arm", None, &VecMap::new())["kubernetes.io/arch"],
        "arm"
    );
}
