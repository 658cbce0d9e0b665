//! `picolet apply` and `delete pod` as a kubectl user runs them: over the
//! fleet (merge, `--prune`, the diff, `--dry-run`, a failing pod, per-pod
//! `fleet status`, signed merges) and on the local manifests directory
//! (created/configured/unchanged, delete, a fleet pod refused), and a
//! manifest copied from another pod's output. As root, with a real
//! mosquitto shared by the tests that run at the same time.

mod support;
use std::sync::{Arc, Mutex, Weak};
use support::fleet::*;
use support::*;

/// One broker for the tests running at once: it stops when the last of
/// them drops it (a static would never be dropped, and mosquitto would
/// outlive the test binary).
fn broker() -> Option<Arc<Broker>> {
    static SHARED: Mutex<Weak<Broker>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = shared.upgrade() {
        return Some(b);
    }
    let b = Arc::new(plain_broker()?);
    *shared = Arc::downgrade(&b);
    Some(b)
}

/// The machine's free disk is not what these tests are about: no eviction
/// under disk pressure (the build machine's disk may be fuller than the
/// defaults allow).
const NO_EVICTION: [&str; 4] = [
    "--eviction-nodefs-available",
    "0",
    "--eviction-imagefs-available",
    "0",
];

fn lines_starting(out: &str, prefix: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn fleet_apply_merges_prunes_and_prints_the_diff_and_signed_merges_verify() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = broker() else {
        return;
    };
    let url = url(&broker, 0);
    let keys = tempfile::tempdir().unwrap();
    let prefix = keys.path().join("fleet");
    ok(ctl(&["keygen", prefix.to_str().unwrap()]));
    let (private, public) = (
        format!("{}.key", prefix.display()),
        format!("{}.pub", prefix.display()),
    );
    let sign = ["--sign-key", private.as_str()];
    let dev = ("--device", "dev-merge");
    let a = fleet_agent(
        &url,
        "dev-merge",
        &[&NO_EVICTION[..], &["--fleet-key", &public]].concat(),
    );
    let web = manifest(&a, "web.yaml", &sleeper("web"));
    let db = manifest(&a, "db.yaml", &sleeper("db"));

    let out = ok(apply(&url, dev, &[&web], &sign));
    assert!(
        out.contains("device dev-merge: changes to no document on picolet/devices/dev-merge/desired:\n+ pod/default/web\n  0 unchanged\n"),
        "{out}"
    );
    assert!(
        out.contains("published revision 1 (1 pods, signed with key"),
        "{out}"
    );
    assert!(
        out.contains("device dev-merge: pod/default/web Running 1/1"),
        "{out}"
    );
    let started = started_at(&a, "web");

    // A second file adds its pod and keeps the first (signed, merged).
    let out = ok(apply(&url, dev, &[&db], &sign));
    assert_eq!(lines_starting(&out, "+ "), ["+ pod/default/db"], "{out}");
    assert!(out.contains("  1 unchanged\n"), "{out}");
    assert!(out.contains("published revision 2 (2 pods"), "{out}");
    a.wait_running("db", "main", 30);
    assert_untouched(&a, "web", &started);

    // The same again: nothing to publish.
    let out = ok(apply(&url, dev, &[&db], &sign));
    assert!(
        out.contains("device dev-merge: no change (revision 2 on picolet/devices/dev-merge/desired has these pods already: 2 unchanged); nothing published"),
        "{out}"
    );
    assert!(!out.contains("published revision"), "{out}");

    // --dry-run: the diff only.
    let web2 = manifest(
        &a,
        "web2.yaml",
        &sleeper("web").replace("echo up;", "echo v2;"),
    );
    let out = ok(apply(&url, dev, &[&web2], &["--dry-run"]));
    assert_eq!(
        lines_starting(&out, "~ "),
        [
            "~ pod/default/web (spec.containers[0].command[2]: \"echo up; exec sleep 100000\" → \"echo v2; exec sleep 100000\")"
        ],
        "{out}"
    );
    assert!(out.contains("dry run: nothing published"), "{out}");
    assert!(!out.contains("published revision"), "{out}");
    let entry = device_entry(&url, "dev-merge").unwrap();
    assert_eq!(entry["status"]["observedRevision"]["device"], 2);
    assert_untouched(&a, "web", &started);

    // The change itself: apply waits for the new version of web.
    let out = ok(apply(&url, dev, &[&web2], &sign));
    assert!(out.contains("published revision 3 (2 pods"), "{out}");
    assert!(
        out.contains("device dev-merge: pod/default/web Running 1/1"),
        "{out}"
    );
    let s = a.container("web", "main").unwrap();
    assert_ne!(s["state"]["running"]["startedAt"].as_str(), Some(&*started));

    // Per-pod fleet status.
    let table = ok(ctl(&[
        "fleet",
        "status",
        "--device",
        "dev-merge",
        "--broker",
        &url,
    ]));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{table}"
    );
    let names: Vec<&str> = rows[1..].iter().map(|r| r[0]).collect();
    assert_eq!(names, ["db", "web"], "{table}");
    assert!(
        rows[1..].iter().all(|r| r[1..4] == ["1/1", "Running", "0"]),
        "{table}"
    );

    // --prune: the files given are the whole set.
    let out = ok(apply(
        &url,
        dev,
        &[&db],
        &[&sign[..], &["--prune"]].concat(),
    ));
    assert_eq!(lines_starting(&out, "- "), ["- pod/default/web"], "{out}");
    assert!(out.contains("  1 unchanged\n"), "{out}");
    wait_for(30, "web removed", || a.pod("web").is_none().then_some(()));
    assert!(a.pod("db").is_some());

    // delete: merge-removes one pod; a missing one is kubectl's NotFound.
    let out = ctl(&[
        "delete",
        "pod",
        "nope",
        "--device",
        "dev-merge",
        "--broker",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).starts_with("Error from server (NotFound): pods \"nope\" not found"),
        "{}",
        text(&out)
    );
    let out = ok(ctl(&[
        "delete",
        "pod",
        "db",
        "--device",
        "dev-merge",
        "--broker",
        &url,
        "--sign-key",
        &private,
    ]));
    assert_eq!(lines_starting(&out, "- "), ["- pod/default/db"], "{out}");
    assert!(out.contains("published revision 5 (0 pods"), "{out}");
    wait_for(30, "db removed", || a.pod("db").is_none().then_some(()));
    a.assert_one_thread();
}

#[test]
fn fleet_apply_exits_1_when_a_published_pod_fails_on_the_device() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = broker() else {
        return;
    };
    let url = url(&broker, 0);
    let a = fleet_agent(&url, "dev-fail", &NO_EVICTION);
    let bad = manifest(
        &a,
        "bad.yaml",
        &sleeper("bad").replace(IMAGE, "picolet.test/does-not-exist:1"),
    );
    let out = apply(
        &url,
        ("--device", "dev-fail"),
        &[&bad],
        &["--timeout", "60"],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("revision 1 observed by dev-fail"), "{all}");
    assert!(
        all.contains("error: device dev-fail: pod/default/bad: ErrImagePull: container main: "),
        "{all}"
    );
    assert!(all.contains("picolet.test/does-not-exist:1"), "{all}");

    // fleet status shows the pod, its state and the error text.
    let table = ok(ctl(&[
        "fleet", "status", "--device", "dev-fail", "--broker", &url,
    ]));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "MESSAGE"],
        "{table}"
    );
    let row = table.lines().nth(1).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..2], ["bad", "0/1"], "{table}");
    assert!(
        ["ErrImagePull", "ImagePullBackOff"].contains(&cells[2]),
        "{table}"
    );
    assert!(row.contains("picolet.test/does-not-exist:1"), "{table}");
}

#[test]
fn local_apply_and_delete_act_on_the_manifests_dir_and_refuse_a_fleet_pod() {
    if !root_or_skip() {
        return;
    }
    let Some(broker) = broker() else {
        return;
    };
    let url = url(&broker, 0);
    let a = fleet_agent(&url, "dev-local", &NO_EVICTION);
    let dir = a.manifests();
    let dir_s = dir.display().to_string();
    let local = |args: &[&str]| {
        let mut v = args.to_vec();
        v.extend(["--manifests", &dir_s]);
        a.cli(&v)
    };
    let web = manifest(&a, "web.yaml", &sleeper("web"));

    let out = ok(local(&["apply", "-f", &web]));
    assert_eq!(out, "pod/web created\n");
    let file = dir.join("default_web.yaml");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), sleeper("web"));
    let started = started_at(&a, "web");
    assert_eq!(ok(local(&["apply", "-f", &web])), "pod/web unchanged\n");

    // An invalid manifest: the field path, nothing written.
    let broken = manifest(
        &a,
        "broken.yaml",
        &sleeper("web").replace("name: main", "name: Main_"),
    );
    let out = local(&["apply", "-f", &broken]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("spec.containers[0].name"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("nothing was written"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), sleeper("web"));

    // A change goes to the file that defines the pod, whatever its name.
    std::fs::rename(&file, dir.join("mine.yml")).unwrap();
    let v2 = manifest(
        &a,
        "v2.yaml",
        &sleeper("web").replace("echo up;", "echo v2;"),
    );
    assert_eq!(ok(local(&["apply", "-f", &v2])), "pod/web configured\n");
    assert!(!file.exists());
    assert!(
        std::fs::read_to_string(dir.join("mine.yml"))
            .unwrap()
            .contains("echo v2;")
    );
    wait_for(30, "the new web", || {
        let s = a.container("web", "main")?;
        (s["state"]["running"]["startedAt"].as_str()? != started).then_some(())
    });
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert_eq!(leftovers, ["mine.yml"]);

    // A pod of the fleet is refused, naming its source.
    let fleet_pod = manifest(&a, "fl.yaml", &sleeper("fl"));
    ok(apply(&url, ("--device", "dev-local"), &[&fleet_pod], &[]));
    let out = local(&["delete", "pod", "fl"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("error: pod \"fl\" comes from the fleet (fleet:device/dev-local)"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("picolet delete pod fl --device dev-local --broker URL"));
    assert!(a.pod("fl").is_some());

    // Missing: kubectl's NotFound; the local pod goes.
    let out = local(&["delete", "pod", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    assert_eq!(
        ok(local(&["delete", "pod", "web", "--dry-run"])),
        "pod \"web\" deleted (dry run)\n"
    );
    assert!(dir.join("mine.yml").exists());
    let other = manifest(&a, "other.yaml", &sleeper("other"));
    assert_eq!(
        ok(local(&["apply", "-f", &other, "--dry-run"])),
        "pod/other created (dry run)\n"
    );
    assert!(!dir.join("default_other.yaml").exists());
    assert_eq!(
        ok(local(&["delete", "pod", "web"])),
        "pod \"web\" deleted\n"
    );
    assert!(!dir.join("mine.yml").exists());
    wait_for(30, "web removed", || a.pod("web").is_none().then_some(()));
    // Fleet options without --broker are refused.
    let out = local(&["apply", "-f", &web, "--device", "x"]);
    assert!(text(&out).contains("--device is an option of the fleet (give --broker URL)"));
}

/// A manifest copied from another pod's output (its uid included), renamed
/// and dropped into the manifests dir, runs.
#[test]
fn a_copied_pod_with_another_pods_uid_runs() {
    if !root_or_skip() {
        return;
    }
    let a = Agent::start_with(&NO_EVICTION);
    a.apply("web.yaml", &sleeper("web"));
    a.wait_running("web", "main", 30);
    let mut pod = a.pod("web").unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    assert!(!uid.is_empty());
    pod["metadata"]["name"] = "web-copy".into();
    a.apply("copy.json", &serde_json::to_string_pretty(&pod).unwrap());
    a.wait_running("web-copy", "main", 30);
    let copy = a.pod("web-copy").unwrap();
    assert_ne!(copy["metadata"]["uid"].as_str(), Some(&*uid));
    assert_eq!(
        a.pod("web").unwrap()["metadata"]["uid"].as_str(),
        Some(&*uid)
    );
}
