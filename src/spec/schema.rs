//! The one list of Pod fields picolet accepts, ignores or refuses.
//!
//! Every object of a manifest is checked against a table below. A key is:
//! - **allowed** (`Rule::Field`): picolet implements it; the value is walked further;
//! - **ignored** (`Rule::Ignore`): informational or scheduling data that does
//!   not change what runs on this node (`status`, `managedFields`,
//!   `tolerations`, …); it is dropped so that `kubectl get pod -o yaml`
//!   exports load;
//! - **ignored when empty or default** (`Rule::IgnoreIfEmpty`, `Rule::IgnoreIf`):
//!   a field that would change what runs, which picolet does not implement,
//!   but which exports often carry with a no-op value (`securityContext: {}`,
//!   `stdin: false`, `procMount: Default`); any other value is refused;
//! - **unsupported** (`Rule::Unsupported`): a Kubernetes field picolet does
//!   not implement (`tcpSocket` hooks, `nfs` volumes, …);
//!   the loader refuses it with its path and the reason given here.
//!
//! A key not in its table is an *unknown* field (a typo or a newer API).
//! `null` values are treated as absent everywhere, as Kubernetes does.
//! One more normalisation lives in `normalize`: the service-account token
//! volume that Kubernetes injects (`kube-api-access-*`) and its mounts are
//! dropped, because picolet has no API server to give a token for.

use serde_json::{Map, Value};

/// The expected shape of a value.
#[derive(Debug)]
pub(crate) enum Node {
    /// An object with exactly these keys.
    Object(&'static [(&'static str, Rule)]),
    /// An array whose items are all of this shape.
    List(&'static Node),
    /// Any value; its type is checked when it is deserialized.
    Scalar,
    /// A resource quantity: a string, or a number that becomes a string.
    Quantity,
    /// `requests`/`limits`: keys in [`RESOURCE_NAMES`], values quantities.
    ResourceList,
    /// A file mode: a number, or YAML 1.1 octal (`0440`, which YAML 1.2
    /// parsers read as text; Kubernetes' YAML reader takes it as octal)
    /// or `0o440`, which becomes its number.
    Mode,
}

/// What to do with one key.
#[derive(Debug)]
pub(crate) enum Rule {
    Field(&'static Node),
    Ignore,
    IgnoreIfEmpty(&'static str),
    /// Ignored when the predicate holds for (value, parent object); otherwise
    /// unsupported with the reason.
    IgnoreIf(fn(&Value, &Map<String, Value>) -> bool, &'static str),
    Unsupported(&'static str),
}

/// The resource names picolet enforces (`ephemeral-storage` by eviction,
/// docs/lifecycle.md).
pub(crate) const RESOURCE_NAMES: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// `null`, `false`, `""`, `{}` and `[]`.
pub(crate) fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) => false,
    }
}

fn is_true(v: &Value, _: &Map<String, Value>) -> bool {
    v == &Value::Bool(true)
}

fn name_is_set(_: &Value, parent: &Map<String, Value>) -> bool {
    parent.get("name").is_some_and(|n| !is_empty(n))
}

fn type_unconfined(v: &Value, _: &Map<String, Value>) -> bool {
    v.get("type").and_then(Value::as_str) == Some("Unconfined")
}

fn os_linux(v: &Value, _: &Map<String, Value>) -> bool {
    v.get("name").and_then(Value::as_str) == Some("linux")
}

fn is_default(v: &Value, _: &Map<String, Value>) -> bool {
    v.as_str() == Some("Default")
}

fn is_none_str(v: &Value, _: &Map<String, Value>) -> bool {
    v.as_str() == Some("None")
}

fn is_disabled(v: &Value, _: &Map<String, Value>) -> bool {
    v.as_str() == Some("Disabled")
}

use Node::{List, Mode, Object, Quantity, ResourceList, Scalar};
use Rule::{Field, Ignore, IgnoreIf, IgnoreIfEmpty, Unsupported};

const HOST_NAMESPACES: &str = "sharing the host's PID or IPC namespace is not supported";

/// A whole document.
pub(crate) static POD: Node = Object(&[
    ("apiVersion", Field(&Scalar)),
    ("kind", Field(&Scalar)),
    ("metadata", Field(&METADATA)),
    ("spec", Field(&POD_SPEC)),
    ("status", Ignore),
]);

pub(crate) static METADATA: Node = Object(&[
    ("name", Field(&Scalar)),
    ("namespace", Field(&Scalar)),
    ("labels", Field(&Scalar)),
    ("annotations", Field(&Scalar)),
    ("uid", Field(&Scalar)),
    ("creationTimestamp", Ignore),
    ("managedFields", Ignore),
    ("resourceVersion", Ignore),
    ("generation", Ignore),
    ("selfLink", Ignore),
    ("ownerReferences", Ignore),
    ("finalizers", Ignore),
    ("deletionTimestamp", Ignore),
    ("deletionGracePeriodSeconds", Ignore),
    ("clusterName", Ignore),
    (
        "generateName",
        IgnoreIf(
            name_is_set,
            "generated names are not supported: set metadata.name",
        ),
    ),
]);

pub(crate) static POD_SPEC: Node = Object(&[
    ("containers", Field(&List(&CONTAINER))),
    ("initContainers", Field(&List(&CONTAINER))),
    ("volumes", Field(&List(&VOLUME))),
    ("restartPolicy", Field(&Scalar)),
    ("terminationGracePeriodSeconds", Field(&Scalar)),
    ("hostname", Field(&Scalar)),
    ("hostNetwork", Field(&Scalar)),
    ("shareProcessNamespace", Field(&Scalar)),
    ("nodeName", Field(&Scalar)),
    ("dnsPolicy", Field(&Scalar)),
    ("dnsConfig", Field(&DNS_CONFIG)),
    // Cluster scheduling and API-server data: nothing to do on the node.
    ("schedulerName", Ignore),
    ("serviceAccountName", Field(&Scalar)),
    ("serviceAccount", Field(&Scalar)),
    ("automountServiceAccountToken", Ignore),
    ("priority", Field(&Scalar)),
    ("priorityClassName", Field(&Scalar)),
    // The scheduler's preemption: nothing to do on the node.
    ("preemptionPolicy", Ignore),
    ("enableServiceLinks", Ignore),
    ("tolerations", Ignore),
    ("nodeSelector", Field(&Scalar)),
    ("affinity", Field(&AFFINITY)),
    ("topologySpreadConstraints", Ignore),
    ("schedulingGates", Ignore),
    (
        "overhead",
        IgnoreIfEmpty("pod overhead (from a RuntimeClass) is not supported"),
    ),
    ("subdomain", Field(&Scalar)),
    ("imagePullSecrets", Field(&List(&NAME_REF))),
    // Would change what runs: only a no-op value is accepted.
    ("securityContext", Field(&POD_SECURITY_CONTEXT)),
    ("hostPID", IgnoreIfEmpty(HOST_NAMESPACES)),
    ("hostIPC", IgnoreIfEmpty(HOST_NAMESPACES)),
    (
        "hostUsers",
        IgnoreIf(
            is_true,
            "user namespaces (hostUsers: false) are not supported",
        ),
    ),
    ("os", IgnoreIf(os_linux, "picolet runs Linux pods only")),
    (
        "ephemeralContainers",
        IgnoreIfEmpty("ephemeral containers are not supported"),
    ),
    ("hostAliases", Field(&List(&HOST_ALIAS))),
    (
        "readinessGates",
        IgnoreIfEmpty("readiness gates are not supported"),
    ),
    (
        "resourceClaims",
        IgnoreIfEmpty("dynamic resource claims are not supported"),
    ),
    (
        "resources",
        IgnoreIfEmpty("pod-level resources are not supported: set them on each container"),
    ),
    (
        "setHostnameAsFQDN",
        IgnoreIfEmpty("setHostnameAsFQDN is not supported"),
    ),
    (
        "runtimeClassName",
        IgnoreIfEmpty("runtime classes are not supported"),
    ),
    ("activeDeadlineSeconds", Field(&Scalar)),
]);

// Only node affinity decides where a pod runs on one node; the others
// rank or spread pods between nodes.
static AFFINITY: Node = Object(&[
    ("nodeAffinity", Field(&NODE_AFFINITY)),
    ("podAffinity", Ignore),
    ("podAntiAffinity", Ignore),
]);

static NODE_AFFINITY: Node = Object(&[
    (
        "requiredDuringSchedulingIgnoredDuringExecution",
        Field(&NODE_SELECTOR),
    ),
    ("preferredDuringSchedulingIgnoredDuringExecution", Ignore),
]);

static NODE_SELECTOR: Node = Object(&[("nodeSelectorTerms", Field(&List(&NODE_SELECTOR_TERM)))]);

static NODE_SELECTOR_TERM: Node = Object(&[
    ("matchExpressions", Field(&List(&NODE_REQUIREMENT))),
    ("matchFields", Field(&List(&NODE_REQUIREMENT))),
]);

static NODE_REQUIREMENT: Node = Object(&[
    ("key", Field(&Scalar)),
    ("operator", Field(&Scalar)),
    ("values", Field(&Scalar)),
]);

static CONTAINER: Node = Object(&[
    ("name", Field(&Scalar)),
    ("image", Field(&Scalar)),
    ("imagePullPolicy", Field(&Scalar)),
    ("command", Field(&Scalar)),
    ("args", Field(&Scalar)),
    ("workingDir", Field(&Scalar)),
    ("env", Field(&List(&ENV_VAR))),
    ("ports", Field(&List(&CONTAINER_PORT))),
    ("resources", Field(&RESOURCES)),
    ("livenessProbe", Field(&PROBE)),
    ("readinessProbe", Field(&PROBE)),
    ("startupProbe", Field(&PROBE)),
    ("securityContext", Field(&SECURITY_CONTEXT)),
    ("volumeMounts", Field(&List(&VOLUME_MOUNT))),
    ("lifecycle", Field(&LIFECYCLE)),
    ("terminationMessagePath", Field(&Scalar)),
    ("terminationMessagePolicy", Field(&Scalar)),
    ("stdin", IgnoreIfEmpty("attaching stdin is not supported")),
    (
        "stdinOnce",
        IgnoreIfEmpty("attaching stdin is not supported"),
    ),
    ("tty", IgnoreIfEmpty("a TTY is not supported")),
    ("envFrom", Field(&List(&ENV_FROM))),
    (
        "volumeDevices",
        IgnoreIfEmpty("block volume devices are not supported"),
    ),
    (
        "resizePolicy",
        IgnoreIfEmpty("in-place resize policies are not supported"),
    ),
    ("restartPolicy", Field(&Scalar)),
    (
        "restartPolicyRules",
        IgnoreIfEmpty("container restart rules are not supported"),
    ),
]);

static LIFECYCLE: Node = Object(&[
    ("postStart", Field(&HANDLER)),
    ("preStop", Field(&HANDLER)),
    ("stopSignal", Field(&Scalar)),
]);

static HANDLER: Node = Object(&[
    ("exec", Field(&EXEC)),
    ("httpGet", Field(&HTTP_GET)),
    ("sleep", Field(&SLEEP)),
    (
        "tcpSocket",
        Unsupported("a tcpSocket lifecycle hook is deprecated and not supported"),
    ),
]);

static SLEEP: Node = Object(&[("seconds", Field(&Scalar))]);

static ENV_VAR: Node = Object(&[
    ("name", Field(&Scalar)),
    ("value", Field(&Scalar)),
    ("valueFrom", Field(&ENV_VAR_SOURCE)),
]);

static ENV_VAR_SOURCE: Node = Object(&[
    ("fieldRef", Field(&FIELD_REF)),
    ("configMapKeyRef", Field(&KEY_SELECTOR)),
    ("secretKeyRef", Field(&KEY_SELECTOR)),
    ("resourceFieldRef", Field(&RESOURCE_FIELD_REF)),
    (
        "fileKeyRef",
        Unsupported("fileKeyRef (env from a file of a volume) is not supported"),
    ),
]);

static DNS_CONFIG: Node = Object(&[
    ("nameservers", Field(&Scalar)),
    ("searches", Field(&Scalar)),
    ("options", Field(&List(&DNS_OPTION))),
]);

static DNS_OPTION: Node = Object(&[("name", Field(&Scalar)), ("value", Field(&Scalar))]);

static HOST_ALIAS: Node = Object(&[("ip", Field(&Scalar)), ("hostnames", Field(&Scalar))]);

static KEY_SELECTOR: Node = Object(&[
    ("name", Field(&Scalar)),
    ("key", Field(&Scalar)),
    ("optional", Field(&Scalar)),
]);

static RESOURCE_FIELD_REF: Node = Object(&[
    ("containerName", Field(&Scalar)),
    ("resource", Field(&Scalar)),
    ("divisor", Field(&Quantity)),
]);

static ENV_FROM: Node = Object(&[
    ("prefix", Field(&Scalar)),
    ("configMapRef", Field(&OBJECT_REF)),
    ("secretRef", Field(&OBJECT_REF)),
]);

static OBJECT_REF: Node = Object(&[("name", Field(&Scalar)), ("optional", Field(&Scalar))]);

/// `imagePullSecrets[]`: a `LocalObjectReference`.
static NAME_REF: Node = Object(&[("name", Field(&Scalar))]);

static FIELD_REF: Node = Object(&[
    ("fieldPath", Field(&Scalar)),
    ("apiVersion", Field(&Scalar)),
]);

static CONTAINER_PORT: Node = Object(&[
    ("containerPort", Field(&Scalar)),
    ("hostPort", Field(&Scalar)),
    ("protocol", Field(&Scalar)),
    ("name", Field(&Scalar)),
    ("hostIP", Field(&Scalar)),
]);

static RESOURCES: Node = Object(&[
    ("requests", Field(&ResourceList)),
    ("limits", Field(&ResourceList)),
    (
        "claims",
        IgnoreIfEmpty("dynamic resource claims are not supported"),
    ),
]);

static PROBE: Node = Object(&[
    ("exec", Field(&EXEC)),
    ("tcpSocket", Field(&TCP_SOCKET)),
    ("httpGet", Field(&HTTP_GET)),
    ("initialDelaySeconds", Field(&Scalar)),
    ("periodSeconds", Field(&Scalar)),
    ("timeoutSeconds", Field(&Scalar)),
    ("successThreshold", Field(&Scalar)),
    ("failureThreshold", Field(&Scalar)),
    ("grpc", Field(&GRPC)),
    (
        "terminationGracePeriodSeconds",
        Unsupported("a probe-level terminationGracePeriodSeconds is not supported"),
    ),
]);

static EXEC: Node = Object(&[("command", Field(&Scalar))]);

static GRPC: Node = Object(&[("port", Field(&Scalar)), ("service", Field(&Scalar))]);

static TCP_SOCKET: Node = Object(&[("port", Field(&Scalar)), ("host", Field(&Scalar))]);

static HTTP_GET: Node = Object(&[
    ("path", Field(&Scalar)),
    ("port", Field(&Scalar)),
    ("host", Field(&Scalar)),
    ("scheme", Field(&Scalar)),
    ("httpHeaders", Field(&List(&HTTP_HEADER))),
]);

static HTTP_HEADER: Node = Object(&[("name", Field(&Scalar)), ("value", Field(&Scalar))]);

static SECURITY_CONTEXT: Node = Object(&[
    ("runAsUser", Field(&Scalar)),
    ("runAsGroup", Field(&Scalar)),
    ("runAsNonRoot", Field(&Scalar)),
    ("readOnlyRootFilesystem", Field(&Scalar)),
    ("privileged", Field(&Scalar)),
    ("allowPrivilegeEscalation", Field(&Scalar)),
    ("capabilities", Field(&CAPABILITIES)),
    ("windowsOptions", Ignore),
    (
        "procMount",
        IgnoreIf(is_default, "only procMount: Default is supported"),
    ),
    (
        "seLinuxOptions",
        IgnoreIfEmpty("SELinux options are not supported"),
    ),
    ("seccompProfile", Field(&SECCOMP_PROFILE)),
    ("appArmorProfile", APPARMOR),
]);

const APPARMOR: Rule = IgnoreIf(
    type_unconfined,
    "AppArmor profiles are not supported (only Unconfined)",
);

static POD_SECURITY_CONTEXT: Node = Object(&[
    ("runAsUser", Field(&Scalar)),
    ("runAsGroup", Field(&Scalar)),
    ("runAsNonRoot", Field(&Scalar)),
    ("supplementalGroups", Field(&Scalar)),
    ("supplementalGroupsPolicy", Field(&Scalar)),
    ("fsGroup", Field(&Scalar)),
    ("fsGroupChangePolicy", Field(&Scalar)),
    ("sysctls", Field(&List(&HTTP_HEADER))),
    ("seccompProfile", Field(&SECCOMP_PROFILE)),
    ("appArmorProfile", APPARMOR),
    (
        "seLinuxOptions",
        IgnoreIfEmpty("SELinux options are not supported"),
    ),
    // Only matters to an SELinux host: informational here.
    ("seLinuxChangePolicy", Ignore),
    ("windowsOptions", Ignore),
]);

static SECCOMP_PROFILE: Node = Object(&[
    ("type", Field(&Scalar)),
    ("localhostProfile", Field(&Scalar)),
]);

static CAPABILITIES: Node = Object(&[("add", Field(&Scalar)), ("drop", Field(&Scalar))]);

static VOLUME_MOUNT: Node = Object(&[
    ("name", Field(&Scalar)),
    ("mountPath", Field(&Scalar)),
    ("readOnly", Field(&Scalar)),
    ("subPath", Field(&Scalar)),
    ("subPathExpr", Field(&Scalar)),
    (
        "mountPropagation",
        IgnoreIf(is_none_str, "mount propagation is not supported"),
    ),
    (
        "recursiveReadOnly",
        IgnoreIf(is_disabled, "recursive read-only mounts are not supported"),
    ),
]);

const VOLUME_KINDS: &str = "picolet supports emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes only";

static VOLUME: Node = Object(&[
    ("name", Field(&Scalar)),
    ("emptyDir", Field(&EMPTY_DIR)),
    ("hostPath", Field(&HOST_PATH)),
    ("configMap", Field(&CONFIG_MAP_VOLUME)),
    ("secret", Field(&SECRET_VOLUME)),
    (
        "persistentVolumeClaim",
        Unsupported(
            "persistentVolumeClaim volumes are made only from a StatefulSet's volumeClaimTemplates",
        ),
    ),
    ("projected", Field(&PROJECTED)),
    ("downwardAPI", Field(&DOWNWARD_API_VOLUME)),
    ("ephemeral", Unsupported(VOLUME_KINDS)),
    ("image", Unsupported(VOLUME_KINDS)),
    ("csi", Unsupported(VOLUME_KINDS)),
    ("nfs", Unsupported(VOLUME_KINDS)),
    ("iscsi", Unsupported(VOLUME_KINDS)),
    ("fc", Unsupported(VOLUME_KINDS)),
    ("rbd", Unsupported(VOLUME_KINDS)),
    ("cephfs", Unsupported(VOLUME_KINDS)),
    ("glusterfs", Unsupported(VOLUME_KINDS)),
    ("gitRepo", Unsupported(VOLUME_KINDS)),
    ("flexVolume", Unsupported(VOLUME_KINDS)),
    ("awsElasticBlockStore", Unsupported(VOLUME_KINDS)),
    ("gcePersistentDisk", Unsupported(VOLUME_KINDS)),
    ("azureDisk", Unsupported(VOLUME_KINDS)),
    ("azureFile", Unsupported(VOLUME_KINDS)),
    ("cinder", Unsupported(VOLUME_KINDS)),
    ("vsphereVolume", Unsupported(VOLUME_KINDS)),
    ("portworxVolume", Unsupported(VOLUME_KINDS)),
]);

static EMPTY_DIR: Node = Object(&[("medium", Field(&Scalar)), ("sizeLimit", Field(&Quantity))]);

static HOST_PATH: Node = Object(&[("path", Field(&Scalar)), ("type", Field(&Scalar))]);

static KEY_TO_PATH: Node = Object(&[
    ("key", Field(&Scalar)),
    ("path", Field(&Scalar)),
    ("mode", Field(&Mode)),
]);

static CONFIG_MAP_VOLUME: Node = Object(&[
    ("name", Field(&Scalar)),
    ("items", Field(&List(&KEY_TO_PATH))),
    ("defaultMode", Field(&Mode)),
    ("optional", Field(&Scalar)),
]);

static SECRET_VOLUME: Node = Object(&[
    ("secretName", Field(&Scalar)),
    ("items", Field(&List(&KEY_TO_PATH))),
    ("defaultMode", Field(&Mode)),
    ("optional", Field(&Scalar)),
]);

static DOWNWARD_API_FILE: Node = Object(&[
    ("path", Field(&Scalar)),
    ("fieldRef", Field(&FIELD_REF)),
    ("resourceFieldRef", Field(&RESOURCE_FIELD_REF)),
    ("mode", Field(&Mode)),
]);

static DOWNWARD_API_VOLUME: Node = Object(&[
    ("items", Field(&List(&DOWNWARD_API_FILE))),
    ("defaultMode", Field(&Mode)),
]);

static PROJECTED: Node = Object(&[
    ("sources", Field(&List(&PROJECTION))),
    ("defaultMode", Field(&Mode)),
]);

const NO_TOKEN: &str =
    "picolet has no API server: no service account token or cluster data to project";

static PROJECTION: Node = Object(&[
    ("configMap", Field(&PROJECTION_OBJECT)),
    ("secret", Field(&PROJECTION_OBJECT)),
    ("downwardAPI", Field(&DOWNWARD_API_PROJECTION)),
    ("serviceAccountToken", Unsupported(NO_TOKEN)),
    ("clusterTrustBundle", Unsupported(NO_TOKEN)),
    ("podCertificate", Unsupported(NO_TOKEN)),
]);

static PROJECTION_OBJECT: Node = Object(&[
    ("name", Field(&Scalar)),
    ("items", Field(&List(&KEY_TO_PATH))),
    ("optional", Field(&Scalar)),
]);

static DOWNWARD_API_PROJECTION: Node = Object(&[("items", Field(&List(&DOWNWARD_API_FILE)))]);

/// A `ConfigMap` document.
pub(crate) static CONFIG_MAP: Node = Object(&[
    ("apiVersion", Field(&Scalar)),
    ("kind", Field(&Scalar)),
    ("metadata", Field(&METADATA)),
    ("data", Field(&Scalar)),
    ("binaryData", Field(&Scalar)),
    ("immutable", Field(&Scalar)),
]);

/// A `Secret` document.
pub(crate) static SECRET: Node = Object(&[
    ("apiVersion", Field(&Scalar)),
    ("kind", Field(&Scalar)),
    ("metadata", Field(&METADATA)),
    ("data", Field(&Scalar)),
    ("stringData", Field(&Scalar)),
    ("type", Field(&Scalar)),
    ("immutable", Field(&Scalar)),
]);
