use super::*;

const MI: u64 = 1024 * 1024;

fn c(req: Option<u64>, lim: Option<u64>, mem: Option<u64>) -> ContainerResources {
    ContainerResources {
        cpu_request_millis: req,
        cpu_limit_millis: lim,
        memory_limit_bytes: mem,
    }
}

/// The settings as `file=value` strings, in order.
fn kv(settings: &[Setting]) -> Vec<String> {
    settings
        .iter()
        .map(|s| format!("{}={}", s.file, s.value))
        .collect()
}

#[test]
fn container_without_resources_is_unlimited_with_minimum_weight_and_no_swap() {
    assert_eq!(
        kv(&c(None, None, None).settings()),
        [
            "cpu.max=max 100000",
            "cpu.weight=1",
            "memory.max=max",
            "memory.swap.max=0"
        ]
    );
}

#[test]
fn container_settings_name_their_controllers() {
    let s = c(None, None, None).settings();
    let ctl: Vec<_> = s.iter().map(|s| s.controller).collect();
    assert_eq!(
        ctl,
        [
            Controller::Cpu,
            Controller::Cpu,
            Controller::Memory,
            Controller::Memory
        ]
    );
}

#[test]
fn container_cpu_request_defaults_to_its_limit() {
    // limit 500m only: quota 50000, request := 500m → 512 shares → weight 20.
    assert_eq!(
        kv(&c(None, Some(500), None).settings())[..2],
        ["cpu.max=50000 100000", "cpu.weight=20"]
    );
    // An explicit request wins over the limit.
    assert_eq!(
        kv(&c(Some(250), Some(1000), None).settings())[..2],
        ["cpu.max=100000 100000", "cpu.weight=10"]
    );
    // A request alone: no quota.
    assert_eq!(
        kv(&c(Some(100), None, None).settings())[..2],
        ["cpu.max=max 100000", "cpu.weight=4"]
    );
}

#[test]
fn container_memory_limit_is_written_in_bytes_with_swap_off() {
    assert_eq!(
        kv(&c(None, None, Some(128 * MI)).settings())[2..],
        ["memory.max=134217728", "memory.swap.max=0"]
    );
}

#[test]
fn zero_quantities_count_as_not_declared() {
    assert_eq!(
        c(Some(0), Some(0), Some(0)).settings(),
        c(None, None, None).settings()
    );
    // A zero request with a limit still defaults to the limit, like IsZero().
    assert_eq!(c(Some(0), Some(1000), None).effective_cpu_request(), 1000);
}

#[test]
fn container_cpu_limit_below_ten_millicores_gets_the_one_millisecond_minimum() {
    assert_eq!(
        kv(&c(None, Some(1), None).settings())[0],
        "cpu.max=1000 100000"
    );
}

fn pod(containers: Vec<ContainerResources>, init: Vec<ContainerResources>) -> PodResources {
    PodResources {
        containers,
        init_containers: init,
        pids_max: PidsMax::Limit(1024),
    }
}

#[test]
fn best_effort_pod_is_unlimited_with_two_shares() {
    let p = pod(vec![c(None, None, None), c(None, None, None)], vec![]);
    assert_eq!(
        kv(&p.settings()),
        [
            "cpu.max=max 100000",
            "cpu.weight=1",
            "memory.max=max",
            "pids.max=1024"
        ]
    );
}

#[test]
fn guaranteed_pod_sums_its_container_limits() {
    let p = pod(
        vec![
            c(Some(500), Some(500), Some(64 * MI)),
            c(Some(250), Some(250), Some(32 * MI)),
        ],
        vec![],
    );
    assert_eq!(p.cpu_limit_millis(), Some(750));
    assert_eq!(p.memory_limit_bytes(), Some(96 * MI));
    assert_eq!(p.cpu_request_millis(), 750);
    // 750m → 768 shares → 1 + 766*9999/262142 = 30.
    assert_eq!(
        kv(&p.settings()),
        [
            "cpu.max=75000 100000",
            "cpu.weight=30",
            "memory.max=100663296",
            "pids.max=1024"
        ]
    );
}

#[test]
fn one_container_without_a_limit_leaves_that_pod_resource_unlimited() {
    let p = pod(
        vec![
            c(None, Some(500), Some(64 * MI)),
            c(Some(200), None, Some(32 * MI)),
        ],
        vec![],
    );
    assert_eq!(p.cpu_limit_millis(), None);
    assert_eq!(p.memory_limit_bytes(), Some(96 * MI));
    // Requests: 500 (defaulted from the limit) + 200 = 700m → 716 shares → 28.
    assert_eq!(p.cpu_request_millis(), 700);
    assert_eq!(
        kv(&p.settings())[..3],
        [
            "cpu.max=max 100000",
            "cpu.weight=28",
            "memory.max=100663296"
        ]
    );
}

#[test]
fn a_larger_init_container_sets_the_pod_totals() {
    let p = pod(
        vec![
            c(None, Some(500), Some(64 * MI)),
            c(None, Some(500), Some(64 * MI)),
        ],
        vec![
            c(None, Some(2000), Some(256 * MI)),
            c(None, Some(100), Some(MI)),
        ],
    );
    assert_eq!(p.cpu_limit_millis(), Some(2000));
    assert_eq!(p.memory_limit_bytes(), Some(256 * MI));
    assert_eq!(p.cpu_request_millis(), 2000);
}

#[test]
fn an_init_container_without_limits_does_not_unlimit_the_pod() {
    let p = pod(
        vec![c(None, Some(300), Some(10 * MI))],
        vec![c(None, None, None)],
    );
    assert_eq!(p.cpu_limit_millis(), Some(300));
    assert_eq!(p.memory_limit_bytes(), Some(10 * MI));
}

#[test]
fn a_pod_without_containers_is_unlimited() {
    let p = pod(vec![], vec![]);
    assert_eq!(p.cpu_limit_millis(), None);
    assert_eq!(p.memory_limit_bytes(), None);
    assert_eq!(p.cpu_request_millis(), 0);
}

#[test]
fn pids_max_comes_from_the_node_default() {
    let mut p = pod(vec![c(None, None, None)], vec![]);
    p.pids_max = PidsMax::Max;
    assert_eq!(kv(&p.settings())[3], "pids.max=max");
    p.pids_max = PidsMax::Limit(64);
    assert_eq!(kv(&p.settings())[3], "pids.max=64");
}

/// Every combination of three containers over a small value grid: the pod's
/// limit is set iff every container declares one, and is then their sum.
#[test]
fn pod_limits_follow_the_all_declared_rule_for_every_combination() {
    let vals = [None, Some(0), Some(1), Some(250), Some(1000)];
    for a in vals {
        for b in vals {
            for d in vals {
                let cs = vec![c(a, a, a), c(b, b, b), c(d, d, d)];
                let p = pod(cs.clone(), vec![]);
                let declared: Vec<u64> = [a, b, d]
                    .iter()
                    .filter_map(|v| v.filter(|n| *n > 0))
                    .collect();
                let expected = (declared.len() == 3).then(|| declared.iter().sum::<u64>());
                assert_eq!(p.cpu_limit_millis(), expected, "{a:?} {b:?} {d:?}");
                assert_eq!(p.memory_limit_bytes(), expected, "{a:?} {b:?} {d:?}");
                assert_eq!(p.cpu_request_millis(), declared.iter().sum::<u64>());
                let cpu_max = &p.settings()[0].value;
                match expected {
                    Some(m) => assert_eq!(*cpu_max, format!("{} 100000", (m * 100).max(1000))),
                    None => assert_eq!(cpu_max, "max 100000"),
                }
            }
        }
    }
}

#[test]
fn huge_values_saturate_instead_of_overflowing() {
    let p = pod(
        vec![
            c(None, Some(u64::MAX), Some(u64::MAX)),
            c(None, Some(u64::MAX), Some(u64::MAX)),
        ],
        vec![],
    );
    assert_eq!(p.memory_limit_bytes(), Some(u64::MAX));
    assert_eq!(p.cpu_limit_millis(), Some(u64::MAX));
    let s = p.settings();
    assert_eq!(s[1].value, "10000");
    assert_eq!(s[2].value, u64::MAX.to_string());
}
