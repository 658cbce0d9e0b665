//! The Prometheus text format (version 0.0.4) of the metrics, with
//! cAdvisor's names and its `namespace`, `pod`, `container` labels (the
//! pod's own cgroup has `container=""`, as in cAdvisor), plus the agent's
//! own RSS and its fleet connection. A series whose file is missing is left
//! out, never written as 0. Pure.

use super::Sample;
use std::fmt::Write;

/// One cgroup's labels and sample: (namespace, pod, container, sample).
pub type Row<'a> = (&'a str, &'a str, &'a str, &'a Sample);

/// A family: name, type, help, the value (µs shown as seconds when the
/// flag is set).
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Sample) -> Option<u64>,
    bool,
);

const FAMILIES: &[Family] = &[
    (
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed in seconds.",
        |s| s.cpu_usec,
        true,
    ),
    (
        "container_cpu_cfs_throttled_periods_total",
        "counter",
        "Number of throttled period intervals.",
        |s| s.nr_throttled,
        false,
    ),
    (
        "container_cpu_cfs_throttled_seconds_total",
        "counter",
        "Total time duration the container has been throttled.",
        |s| s.throttled_usec,
        true,
    ),
    (
        "container_memory_usage_bytes",
        "gauge",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        |s| s.memory,
        false,
    ),
    (
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set in bytes.",
        Sample::working_set,
        false,
    ),
    (
        "container_memory_rss",
        "gauge",
        "Size of RSS in bytes.",
        |s| s.anon,
        false,
    ),
    (
        "container_memory_cache",
        "gauge",
        "Number of bytes of page cache memory.",
        |s| s.file,
        false,
    ),
    (
        "container_oom_events_total",
        "counter",
        "Count of out of memory events observed for the container",
        |s| s.oom_kills,
        false,
    ),
    (
        "container_processes",
        "gauge",
        "Number of processes running inside the container.",
        |s| s.pids,
        false,
    ),
];

/// Writes `rows`, then `process_resident_memory_bytes` (when known) and
/// `picolet_fleet_connected` (when a broker is configured).
pub fn write(out: &mut String, rows: &[Row<'_>], rss: Option<u64>, fleet: Option<bool>) {
    for (name, kind, help, value, seconds) in FAMILIES {
        let mut head = false;
        for (ns, pod, container, s) in rows {
            let Some(v) = value(s) else { continue };
            if !head {
                head = true;
                let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
            }
            let _ = write!(out, "{name}{{namespace=\"");
            escape(out, ns);
            out.push_str("\",pod=\"");
            escape(out, pod);
            out.push_str("\",container=\"");
            escape(out, container);
            let _ = if *seconds {
                writeln!(out, "\"}} {}.{:06}", v / 1_000_000, v % 1_000_000)
            } else {
                writeln!(out, "\"}} {v}")
            };
        }
    }
    let mut single = |name: &str, help: &str, v: u64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
        );
    };
    if let Some(rss) = rss {
        single(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            rss,
        );
    }
    if let Some(up) = fleet {
        single(
            "picolet_fleet_connected",
            "Whether the agent is connected to its fleet broker (1) or not (0).",
            up as u64,
        );
    }
}

/// A label value, escaped as the text format wants.
fn escape(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_grouped_with_help_and_type_and_missing_files_are_left_out() {
        let app = Sample {
            cpu_usec: Some(1_500_000),
            nr_throttled: Some(3),
            memory: Some(30 << 20),
            inactive_file: Some(10 << 20),
            oom_kills: Some(1),
            ..Sample::default()
        };
        let pod = Sample {
            cpu_usec: Some(2_000_001),
            ..Sample::default()
        };
        let rows = [
            ("default", "web", "", &pod),
            ("default", "web", "app\"x", &app),
        ];
        let mut out = String::new();
        write(&mut out, &rows, Some(4096), Some(true));
        let want = "\
# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{namespace=\"default\",pod=\"web\",container=\"\"} 2.000001
container_cpu_usage_seconds_total{namespace=\"default\",pod=\"web\",container=\"app\\\"x\"} 1.500000
# HELP container_cpu_cfs_throttled_periods_total Number of throttled period intervals.
# TYPE container_cpu_cfs_throttled_periods_total counter
container_cpu_cfs_throttled_periods_total{namespace=\"default\",pod=\"web\",container=\"app\\\"x\"} 3
# HELP container_memory_usage_bytes Current memory usage in bytes, including all memory regardless of when it was accessed
# TYPE container_memory_usage_bytes gauge
container_memory_usage_bytes{namespace=\"default\",pod=\"web\",container=\"app\\\"x\"} 31457280
# HELP container_memory_working_set_bytes Current working set in bytes.
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{namespace=\"default\",pod=\"web\",container=\"app\\\"x\"} 20971520
# HELP container_oom_events_total Count of out of memory events observed for the container
# TYPE container_oom_events_total counter
container_oom_events_total{namespace=\"default\",pod=\"web\",container=\"app\\\"x\"} 1
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 4096
# HELP picolet_fleet_connected Whether the agent is connected to its fleet broker (1) or not (0).
# TYPE picolet_fleet_connected gauge
picolet_fleet_connected 1
";
        assert_eq!(out, want);
        let mut out = String::new();
        write(&mut out, &[], None, None);
        assert_eq!(out, "");
    }
}
