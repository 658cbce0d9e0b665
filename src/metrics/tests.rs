use super::*;

const MIB: u64 = 1 << 20;

fn cpu(usec: u64) -> Sample {
    Sample {
        cpu_usec: Some(usec),
        ..Sample::default()
    }
}

fn both(usec: u64, memory: u64, inactive_file: u64) -> Sample {
    Sample {
        cpu_usec: Some(usec),
        memory: Some(memory),
        inactive_file: Some(inactive_file),
        ..Sample::default()
    }
}

/// One round at `t` (ms) with pod "p"'s containers.
fn round(m: &mut Metrics, t: u64, containers: &[(&str, Sample)]) {
    m.begin(t);
    m.record("p", "", Sample::default());
    for (name, s) in containers {
        m.record("p", name, *s);
    }
    m.end();
}

#[test]
fn cpu_is_the_usage_delta_over_the_last_two_samples_in_millicores() {
    let mut m = Metrics::default();
    round(&mut m, 1_000, &[("app", cpu(5_000_000))]);
    let pod = m.pod("p").unwrap();
    // One sample: no rate yet.
    assert_eq!(pod.containers().next().unwrap().series.cpu_milli(), None);
    assert_eq!(pod.usage(), None);
    // 30 s later, 360 ms of CPU more: 12m.
    round(&mut m, 31_000, &[("app", cpu(5_360_000))]);
    assert_eq!(m.pod("p").unwrap().usage().unwrap().cpu_milli, Some(12));
    // Only the last two samples count: 1 s of CPU over 10 s is 100m.
    round(&mut m, 41_000, &[("app", cpu(6_360_000))]);
    assert_eq!(m.pod("p").unwrap().usage().unwrap().cpu_milli, Some(100));
    // Rounded up, as kubectl's MilliValue: 1 µs over 30 s is 1m.
    round(&mut m, 71_000, &[("app", cpu(6_360_001))]);
    assert_eq!(m.pod("p").unwrap().usage().unwrap().cpu_milli, Some(1));
    // A counter that went back (the cgroup was made again): unknown.
    round(&mut m, 101_000, &[("app", cpu(10))]);
    assert_eq!(m.pod("p").unwrap().usage(), None);
}

#[test]
fn the_working_set_is_memory_current_less_inactive_file_and_missing_files_are_unknown() {
    let s = both(0, 50 * MIB, 30 * MIB);
    assert_eq!(s.working_set(), Some(20 * MIB));
    assert_eq!(both(0, MIB, 2 * MIB).working_set(), Some(0));
    // No memory controller: unknown, never 0.
    assert_eq!(cpu(1).working_set(), None);
    let mut m = Metrics::default();
    round(
        &mut m,
        0,
        &[("a", cpu(0)), ("b", both(0, 30 * MIB, 10 * MIB))],
    );
    round(
        &mut m,
        1000,
        &[("a", cpu(0)), ("b", both(0, 30 * MIB, 10 * MIB))],
    );
    // The pod's memory needs every container's.
    assert_eq!(
        m.pod("p").unwrap().usage(),
        Some(Usage {
            cpu_milli: Some(0),
            mem_bytes: None
        })
    );
    round(
        &mut m,
        2000,
        &[("a", both(0, MIB, 0)), ("b", both(0, 30 * MIB, 10 * MIB))],
    );
    assert_eq!(
        m.pod("p").unwrap().usage().unwrap().mem_bytes,
        Some(21 * MIB)
    );
}

#[test]
fn pods_and_containers_not_sampled_in_a_round_are_forgotten() {
    let mut m = Metrics::default();
    round(&mut m, 0, &[("a", cpu(0)), ("b", cpu(0))]);
    round(&mut m, 1000, &[("a", cpu(0))]);
    let names: Vec<&str> = m
        .pod("p")
        .unwrap()
        .cgroups
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["", "a"]);
    m.begin(2000);
    m.end();
    assert!(m.pod("p").is_none());
    assert_eq!(m.pods().count(), 0);
}

#[test]
fn usage_is_published_when_it_moves_enough_and_at_most_once_per_interval() {
    let iv = 30_000;
    let mut m = Metrics::default();
    let mut t = 0;
    let mut step = |m: &mut Metrics, usec: u64, mem: u64| {
        round(m, t, &[("app", both(usec, mem, 0))]);
        let p = m.publish(t, iv);
        t += iv;
        p
    };
    // First sample: memory is known (published), CPU not yet.
    assert!(step(&mut m, 0, 20 * MIB));
    assert_eq!(
        m.published("p"),
        Some(Usage {
            cpu_milli: None,
            mem_bytes: Some(20 * MIB)
        })
    );
    // Second: the CPU rate appears (100m).
    assert!(step(&mut m, 3_000_000, 20 * MIB));
    assert_eq!(m.published("p").unwrap().cpu_milli, Some(100));
    // Steady (CPU ±5 %, memory +512 KiB): nothing to publish, ever.
    let mut usec = 3_000_000;
    for i in 0..100u64 {
        usec += if i % 2 == 0 { 3_150_000 } else { 2_850_000 };
        assert!(!step(&mut m, usec, 20 * MIB + 512 * 1024), "round {i}");
    }
    assert_eq!(m.published("p").unwrap().cpu_milli, Some(100));
    // Memory up by 3 MiB (15 %): published.
    usec += 3_000_000;
    assert!(step(&mut m, usec, 23 * MIB));
    assert_eq!(m.published("p").unwrap().mem_bytes, Some(23 * MIB));
    // Over 10 % but under the floor (a 5m pod going to 8m): not published.
    let mut m = Metrics::default();
    let mut t = 0;
    for usec in [0, 150_000, 300_000, 540_000] {
        round(&mut m, t, &[("app", both(usec, MIB, 0))]);
        m.publish(t, iv);
        t += iv;
    }
    assert_eq!(m.published("p").unwrap().cpu_milli, Some(5));
}

#[test]
fn a_big_change_waits_for_the_interval() {
    let iv = 30_000;
    let mut m = Metrics::default();
    round(&mut m, 0, &[("app", both(0, 10 * MIB, 0))]);
    assert!(m.publish(0, iv));
    round(&mut m, 1_000, &[("app", both(0, 40 * MIB, 0))]);
    assert!(!m.publish(1_000, iv), "1 s after the last publication");
    assert_eq!(m.published("p").unwrap().mem_bytes, Some(10 * MIB));
    // Timer jitter: 29 s after is due.
    round(&mut m, 29_000, &[("app", both(0, 40 * MIB, 0))]);
    assert!(m.publish(29_000, iv));
    assert_eq!(m.published("p").unwrap().mem_bytes, Some(40 * MIB));
}

#[test]
fn moved_needs_ten_percent_and_the_floor_or_a_figure_appearing() {
    let u = |c: Option<u64>, b: Option<u64>| Usage {
        cpu_milli: c,
        mem_bytes: b,
    };
    let base = u(Some(200), Some(100 * MIB));
    assert!(!base.moved(&u(Some(219), Some(109 * MIB))));
    assert!(base.moved(&u(Some(221), Some(100 * MIB))));
    assert!(base.moved(&u(Some(200), Some(111 * MIB))));
    assert!(base.moved(&u(None, Some(100 * MIB))));
    assert!(!u(Some(0), None).moved(&u(Some(9), None)));
    assert!(u(Some(0), None).moved(&u(Some(10), None)));
}

#[test]
fn top_prints_millicores_and_whole_mebibytes() {
    assert_eq!(cpu_text(Some(12)), "12m");
    assert_eq!(mem_text(Some(20 * MIB + MIB - 1)), "20Mi");
    assert_eq!(mem_text(None), "<unknown>");
}
