#!/bin/sh
# The end-to-end test inside the QEMU guest (busybox sh, run by init.sh).
# Prints one machine-readable line per check and per measurement:
#   E2E <name> PASS|FAIL <detail>
#   E2E-MEASURE <name> <value> <unit>
# scripts/qemu-e2e.sh parses them. Exit status: the number of FAILs.
#
# The pods come from the host over MQTT: the agent connects with mutual TLS
# to the host's mosquitto (10.0.2.100:8883 is forwarded there by QEMU's
# guestfwd) and accepts only documents signed with the fleet key. The host
# (scripts/qemu-e2e.sh) runs `picolet apply` when this script prints
# `E2E-SYNC agent-up`, asserts pod states through the status topic, and
# deletes the pods when it reads `E2E-SYNC agent-restarted`.

P=/usr/local/bin/picolet
export PICOLET_STATE_DIR=/var/lib/picolet
MAN=/etc/picolet/manifests
# The two units of systemd/, emulated (the guest has no systemd): the pods'
# delegated cgroup, held by `picolet cgroup-holder`, and the agent's own.
CG=/sys/fs/cgroup/picolet-pods.service
AGENT_CG=/sys/fs/cgroup/picolet.service
S="[[:space:]]"
FAILS=0
AGENT=
E2E_PODS="two oom cpu forkbomb mem"
FLEET="--broker mqtts://10.0.2.100:8883 --device-id qemu-e2e --ca /e2e/tls/ca.crt \
    --cert /e2e/tls/device.crt --key /e2e/tls/device.key --fleet-key /e2e/fleet.pub"

result() {
    echo "E2E $1 $2 $3"
    [ "$2" = PASS ] || FAILS=$((FAILS + 1))
}
measure() { echo "E2E-MEASURE $1 $2 $3"; }

# wait_for SECONDS COMMAND...: true once COMMAND succeeds.
wait_for() {
    n=$1
    shift
    while [ "$n" -gt 0 ]; do
        "$@" && return 0
        sleep 1
        n=$((n - 1))
    done
    return 1
}

# Monotonic microseconds (from /proc/uptime).
now_us() { awk '{ printf "%d\n", $1 * 1000000 }' /proc/uptime; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
# measure_mem NAME PID: VmRSS (all resident pages, the binary's shared text
# included), RssAnon (private heap and stacks), Pss (shared pages divided
# among the processes that map them) and USS (private pages), in KiB.
measure_mem() {
    measure "$1-rss" "$(rss_kib "$2")" KiB
    measure "$1-anon" "$(awk '/^RssAnon:/ { print $2 }' "/proc/$2/status")" KiB
    measure "$1-pss" "$(awk '/^Pss:/ { print $2 }' "/proc/$2/smaps_rollup")" KiB
    # USS: the pages only this process maps, what another shim really costs.
    measure "$1-uss" "$(awk '/^Private_(Clean|Dirty):/ { n += $2 } END { print n }' "/proc/$2/smaps_rollup")" KiB
}
describe() { $P describe pod "$1" 2>/dev/null; }
pod_uid() { $P get pods "$1" -o 'jsonpath={.metadata.uid}' 2>/dev/null; }
# The startedAt of every running container of a pod, one per line.
started_at() {
    describe "$1" | awk '/State:[[:space:]]+Running/ { getline; sub(/^[[:space:]]*Started:[[:space:]]*/, ""); print }'
}
# The lines of `describe` that say how a pod is doing, on one line.
brief() { describe "$1" | grep -E 'State|Reason|Exit|Restart|Ready' | tr -s ' \t\n' ' '; }
# PIDs of the shims (started as "/proc/self/exe shim --config …"), without
# the short-lived children a shim forks for exec probes, which have the
# same command line until they exec.
is_shim() {
    case "$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" in
    # `picolet shim <namespace>/<pod>` (the config path is in its environment).
    picolet\ shim\ */*) return 0 ;;
    esac
    return 1
}
shims() {
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        is_shim "$pid" || continue
        is_shim "$(awk '/^PPid:/ { print $2 }' "$d/status" 2>/dev/null)" || echo "$pid"
    done
}
agent_log_tail() { tail -n 40 /tmp/agent.log | sed 's/^/  agent| /'; }

# Starts picolet-pods.service's process as systemd would: in the unit's
# cgroup, from where it moves itself into <unit>/holder.
start_holder() {
    mkdir -p $CG
    sh -c "echo \$\$ >$CG/cgroup.procs && exec $P cgroup-holder" >>/tmp/holder.log 2>&1 &
    HOLDER=$!
    wait_for 10 sh -c "grep -qx $HOLDER $CG/holder/cgroup.procs"
}

# Starts the agent as systemd 252 starts picolet.service, the first time and
# after every restart: in the unit's own cgroup (which must therefore never
# get controllers enabled for children).
start_agent() {
    mkdir -p $AGENT_CG
    # The default pod network: the bridge picolet0, 10.87.0.0/24.
    RUST_LOG=info sh -c "echo \$\$ >$AGENT_CG/cgroup.procs && exec $P agent --manifests $MAN \
        --run-dir /run/picolet --pids-max 64 --node-name qemu-e2e --cgroup-root $CG \
        --metrics-interval 5 --metrics-addr 127.0.0.1:9100 $FLEET" \
        >>/tmp/agent.log 2>&1 &
    AGENT=$!
    wait_for 60 sh -c "$P get pods >/dev/null 2>&1"
}

# How many times the agent log says the fleet connection came up.
connections() { grep -c "fleet: connected to mqtts://10.0.2.100:8883 (TLS)" /tmp/agent.log; }
connected() { [ "$(connections)" -ge 1 ]; }
# Every pod of the test is known to the agent.
all_pods_listed() {
    l=$($P get pods 2>/dev/null)
    for p in $E2E_PODS; do echo "$l" | grep -q "^$p " || return 1; done
}
no_pods_listed() { [ "$($P get pods 2>/dev/null | grep -cE '^(two|oom|cpu|forkbomb|mem) ')" = 0 ]; }

echo "== picolet end-to-end in $(uname -r) on $(uname -m)"

# --- the binary, the install, the preflight ------------------------------------
size=$(wc -c </picolet)
measure binary-size "$size" bytes
v=$(/picolet --version)
case "$v" in
*"aarch64-unknown-linux-musl, release"*) result version PASS "$v" ;;
*) result version FAIL "$v" ;;
esac
/picolet install --board qemu-virt >/tmp/install.out 2>&1
sed 's/^/  install| /' /tmp/install.out
if [ -x $P ] &&
    [ -x $P ] && [ -f /etc/systemd/system/picolet.service ] &&
    [ -f /etc/systemd/system/picolet-pods.service ] &&
    [ -f /etc/picolet/config.yaml ] && [ -d $MAN ] &&
    grep -q "systemd is not running here" /tmp/install.out; then
    result install PASS "$(grep -c . /tmp/install.out) lines; systemctl left to do (no systemd in the guest)"
else
    result install FAIL "$(tr '\n' ' ' </tmp/install.out)"
fi
$P check | sed 's/^/  check| /'
if $P check -o json >/tmp/check.json; then
    if grep -q '"id": "qemu-virt"' /tmp/check.json && grep -q '"hierarchy": "unified"' /tmp/check.json; then
        result check PASS "every required item present; board qemu-virt; unified cgroup2"
    else
        result check FAIL "passed, but not board qemu-virt with a unified hierarchy"
    fi
else
    result check FAIL "$(grep -B3 '"state": "missing"' /tmp/check.json | grep '"name"' | tr -d ' \n')"
fi
# The optional items pod networking needs, all present with the modules
# init.sh loaded.
missing=""
for item in veth bridge nf_tables nft.nat nft.masq nft.fib; do
    grep -A3 "\"name\": \"$item\"" /tmp/check.json | grep -q '"state": "missing"' && missing="$missing $item"
    grep -q "\"name\": \"$item\"" /tmp/check.json || missing="$missing $item(not listed)"
done
if [ -z "$missing" ]; then
    result check-network PASS "veth bridge nf_tables nft.nat nft.masq nft.fib present"
else
    result check-network FAIL "missing:$missing"
fi

# --- image, agent idle ----------------------------------------------------------
if ! start_holder; then
    result agent-start FAIL "picolet cgroup-holder did not move into $CG/holder: $(cat /tmp/holder.log)"
    exit $FAILS
fi
if start_agent; then
    result agent-start PASS "pid $AGENT"
else
    result agent-start FAIL "API did not answer in 60 s"
    agent_log_tail
    exit $FAILS
fi
# The cgroup the agent manages pods in must offer every controller (as a
# delegated systemd service's cgroup does).
if $P check --cgroup-root $CG >/tmp/check-cg.out 2>&1; then
    result check-delegated PASS "$(grep -o "$CG offers: .*" /tmp/check-cg.out)"
else
    result check-delegated FAIL "$(grep -E 'MISSING|missing' /tmp/check-cg.out | tr -s ' ' | tr '\n' ';')"
fi
if wait_for 60 connected; then
    result fleet-connect PASS "$(grep -m1 'fleet: connected' /tmp/agent.log | sed 's/.*fleet: //')"
else
    result fleet-connect FAIL "no TLS connection to the host's broker in 60 s"
    agent_log_tail
fi
sleep 3
# Idle with the mutual-TLS connection to the broker up.
measure_mem agent-idle $AGENT
measure agent-threads "$(awk '/^Threads:/ { print $2 }' /proc/$AGENT/status)" threads

# --- the pods, published by the host ------------------------------------------------
t0=$(now_us)
echo "E2E-SYNC agent-up"
if wait_for 120 all_pods_listed; then
    result fleet-delivery PASS "$E2E_PODS arrived over MQTT $((($(now_us) - t0) / 1000)) ms after agent-up: $(grep -m1 'fleet: accepted' /tmp/agent.log | sed 's/.*fleet: //')"
else
    result fleet-delivery FAIL "the host's pods did not arrive in 120 s"
    agent_log_tail
fi

two_ready() {
    d=$(describe two)
    [ "$(echo "$d" | grep -cE "Ready:$S+True")" = 2 ] && echo "$d" | grep -qE "^  Ready$S+True"
}
if wait_for 60 two_ready; then
    result two-containers PASS "both containers Ready (httpGet and exec probes) after $((($(now_us) - t0) / 1000)) ms"
else
    result two-containers FAIL "$(brief two)"
fi
# The image came from the host's registry, pulled by the agent (no archive
# in this initramfs): the kubelet's Pulled event and the store say so.
pulled=$(describe two | grep -m1 'Successfully pulled image' | tr -s ' ')
if [ -n "$pulled" ] && $P image ls 2>/dev/null | grep -q '10.0.2.100:5000/e2e/busybox'; then
    result image-pull PASS "$pulled"
else
    result image-pull FAIL "no Pulled event or no image in the store: $(describe two | grep -iE 'pull|image' | tr -s ' \n' ' ')"
    agent_log_tail
fi

oom_seen() {
    d=$(describe oom)
    echo "$d" | grep -qE "Reason:$S+OOMKilled" && echo "$d" | grep -qE "Exit Code:$S+137" &&
        [ "$(echo "$d" | sed -n "s/.*Restart Count:$S*//p")" -ge 1 ]
}
if wait_for 120 oom_seen; then
    uid=$(pod_uid oom)
    kills=$(awk '$1 == "oom_kill" { print $2 }' "$CG/pod$uid/hog/memory.events")
    restarts=$(describe oom | sed -n "s/.*Restart Count:$S*//p")
    result oom-killed PASS "reason OOMKilled, exit 137, restarts $restarts (OnFailure), memory.max $(cat "$CG/pod$uid/hog/memory.max"), memory.events oom_kill $kills"
else
    result oom-killed FAIL "$(brief oom)"
    agent_log_tail
fi

cpu_running() { describe cpu | grep -qE "State:$S+Running"; }
if wait_for 60 cpu_running; then
    f="$CG/pod$(pod_uid cpu)/spin/cpu.stat"
    sleep 2
    u0=$(awk '$1 == "usage_usec" { print $2 }' "$f")
    n0=$(awk '$1 == "nr_throttled" { print $2 }' "$f")
    w0=$(now_us)
    sleep 6
    u1=$(awk '$1 == "usage_usec" { print $2 }' "$f")
    n1=$(awk '$1 == "nr_throttled" { print $2 }' "$f")
    w1=$(now_us)
    pct=$(awk -v u=$((u1 - u0)) -v w=$((w1 - w0)) 'BEGIN { printf "%.1f", 100 * u / w }')
    thr=$((n1 - n0))
    measure cpu-usage-percent "$pct" "%"
    measure cpu-nr-throttled "$thr" periods
    detail="cpu.max '$(cat "${f%/cpu.stat}/cpu.max")', usage ${pct}% of one CPU over $(((w1 - w0) / 1000)) ms, nr_throttled +$thr"
    if [ "$thr" -gt 0 ] && awk -v p="$pct" 'BEGIN { exit !(p >= 10 && p <= 30) }'; then
        result cpu-throttled PASS "$detail"
    else
        result cpu-throttled FAIL "$detail (want nr_throttled > 0 and 25 +- 5 % at most)"
    fi
else
    result cpu-throttled FAIL "the busy loop never ran: $(brief cpu)"
fi

bomb_running() { describe forkbomb | grep -qE "State:$S+Running"; }
if wait_for 60 bomb_running; then
    pod="$CG/pod$(pod_uid forkbomb)"
    sleep 4
    max=$(cat "$pod/pids.max")
    cur=$(cat "$pod/pids.current")
    # A refused fork is counted in the forking task's own cgroup (the
    # container's), while the limit that refused it is the pod's.
    hits=$(awk '$1 == "max" { print $2 }' "$pod/bomb/pids.events")
    measure forkbomb-pids-current "$cur" pids
    detail="pod pids.max $max, pids.current $cur, container pids.events max $hits"
    if [ "$max" = 64 ] && [ "$cur" -le 64 ] && [ "$hits" -gt 0 ] && bomb_running; then
        result pids-max PASS "$detail; the guest stays responsive"
    else
        result pids-max FAIL "$detail"
    fi
else
    result pids-max FAIL "the fork bomb never ran: $(brief forkbomb)"
fi

# --- metrics: 20 MiB in pod mem's tmpfs, as `top` and the endpoint see it --------
# Its working set from the cgroup files (memory.current - inactive_file), in
# whole MiB as kubectl prints it.
ws_mib() {
    d="$CG/pod$(pod_uid mem)/hold"
    cur=$(cat "$d/memory.current") && inact=$(awk '$1 == "inactive_file" { print $2 }' "$d/memory.stat") &&
        echo $(((cur - inact) / 1048576))
}
# `top pod mem --containers`'s MEMORY(bytes) once the 20 MiB are written.
top_mib() {
    v=$($P top pod mem --containers --no-headers 2>/dev/null | awk '$2 == "hold" { print $4 }')
    case "$v" in *Mi) v=${v%Mi}; [ "$v" -ge 19 ] && echo "$v" ;; *) return 1 ;; esac
}
if wait_for 60 top_mib >/dev/null; then
    sleep 6 # one more sample: the figure and the files at rest
    top=$($P top pod mem --containers 2>&1)
    got=$(top_mib)
    ws=$(ws_mib)
    measure top-memory-mib "$got" MiB
    scraped=$(timeout 20 wget -q -O- http://127.0.0.1:9100/metrics 2>&1 |
        awk '/^container_memory_working_set_bytes\{namespace="default",pod="mem",container="hold"\}/ { printf "%d", $2 / 1048576 }')
    detail="top: $(echo "$top" | tail -n1 | tr -s ' '); cgroup files: $ws Mi; endpoint: ${scraped}Mi"
    if [ "$got" -ge 18 ] && [ "$got" -le 22 ] && [ "$((got - ws))" -le 1 ] && [ "$((ws - got))" -le 1 ] &&
        [ "$scraped" = "$got" ]; then
        result top-memory PASS "$detail"
    else
        result top-memory FAIL "$detail (want 20 MiB +- 10 %, equal to the files and the endpoint)"
    fi
else
    result top-memory FAIL "no memory figure for pod mem: $($P top pod mem --containers 2>&1 | tr '\n' ' ')"
    agent_log_tail
fi

# The kubelet's oom_score_adj for a Guaranteed pod (cpu: limits only, so
# requests default to them): -997, lower than the agent's, which needs the
# CAP_SYS_RESOURCE the host's test sandbox lacks.
adj=$($P exec cpu -c spin -- cat /proc/1/oom_score_adj 2>&1)
if [ "$adj" = -997 ]; then
    result oom-score-adj PASS "Guaranteed container cpu/spin: $adj (agent: $(cat /proc/$AGENT/oom_score_adj))"
else
    result oom-score-adj FAIL "cpu/spin: $adj, want -997"
fi

# --- pod networking ----------------------------------------------------------------------
# Pod two has its own address on picolet0; its client reaches the host's
# HTTP server (10.0.2.100:8080, QEMU's guestfwd) through picolet's
# masquerade; its web container's hostPort 18080 answers on the guest's own
# address.
ip2=$($P get pods two -o 'jsonpath={.status.podIP}' 2>/dev/null)
host_ip=$($P get pods two -o 'jsonpath={.status.hostIP}' 2>/dev/null)
inside=$($P exec two -c client -- ip -o -4 addr show eth0 2>&1 | tr -s ' ')
case "$ip2" in
10.87.0.*)
    if echo "$inside" | grep -q "inet $ip2/24" && [ "$host_ip" = 10.0.2.15 ] &&
        [ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] && [ -n "$(ls /sys/class/net/picolet0/brif)" ]; then
        result pod-network PASS "pod two: podIP $ip2 (eth0 inside: $(echo "$inside" | cut -d' ' -f4)), hostIP $host_ip, ip_forward on, bridge picolet0 with port(s) $(ls /sys/class/net/picolet0/brif | tr '\n' ' ')"
    else
        result pod-network FAIL "podIP $ip2, hostIP $host_ip, inside: $inside; ip_forward $(cat /proc/sys/net/ipv4/ip_forward); bridge ports: $(ls /sys/class/net/picolet0/brif 2>&1 | tr '\n' ' ')"
    fi
    ;;
*) result pod-network FAIL "podIP '$ip2' (want 10.87.0.x); $(grep -i 'network' /tmp/agent.log | tail -n 3 | tr '\n' ' ')" ;;
esac
# (busybox 1.35's wget -T crashes on arm64: timeout(1) bounds it instead.)
out=$($P exec two -c client -- timeout 20 wget -q -O- http://10.0.2.100:8080/from-pod 2>&1)
if [ "$out" = host-ok ]; then
    result pod-egress PASS "pod two -> 10.0.2.100:8080 (the host's server through guestfwd, masqueraded to 10.0.2.15): $out"
else
    result pod-egress FAIL "wget from pod two: $out"
fi
want=$($P exec two -c web -- cat /www/index.html 2>&1)
got=$(timeout 20 wget -q -O- http://10.0.2.15:18080/index.html 2>&1)
if [ -n "$want" ] && [ "$got" = "$want" ]; then
    result host-port PASS "the guest's own address 10.0.2.15:18080 -> pod two's web:8080 ($(printf '%s' "$got" | wc -c) bytes, as inside the pod)"
else
    result host-port FAIL "wget 10.0.2.15:18080: '$got'; in the pod: '$want'"
fi

# --- memory with the pods ------------------------------------------------------------
measure_mem agent-pods $AGENT
for pod in two oom cpu forkbomb mem; do
    uid=$(pod_uid $pod)
    for s in $(shims); do
        grep -q "$uid" "/proc/$s/cmdline" && measure_mem "shim-$pod" "$s"
    done
done
$P get pods -o wide | sed 's/^/  pods| /'

# Why the pods have a unit of their own: once the agent has enabled
# controllers for the pods in a cgroup, that cgroup takes no process any more
# (cgroup v2's no-internal-process rule), and systemd 252 starts a restarted
# unit's main process in the unit's cgroup. The agent's cgroup never gets
# controllers, so the restart below goes where systemd would put it.
if (echo $$ >$CG/cgroup.procs) 2>/dev/null; then
    echo "E2E-NOTE $CG accepted a process although its subtree_control is '$(cat $CG/cgroup.subtree_control)'"
    echo $$ >/sys/fs/cgroup/cgroup.procs
else
    echo "E2E-NOTE the pods' cgroup refuses processes (EBUSY) with subtree_control '$(cat $CG/cgroup.subtree_control)'; the agent's ($AGENT_CG) has '$(cat $AGENT_CG/cgroup.subtree_control)' and takes the restarted agent"
fi

# --- the agent dies and comes back; the pods do not notice ------------------------
before=$( (started_at two; started_at cpu) | tr '\n' ' ')
shims_before=$(shims | sort | tr '\n' ' ')
kill -9 "$AGENT"
sleep 1
if kill -0 "$AGENT" 2>/dev/null; then
    result agent-restart FAIL "kill -9 did not end the agent"
elif start_agent; then
    sleep 3
    after=$( (started_at two; started_at cpu) | tr '\n' ' ')
    shims_after=$(shims | sort | tr '\n' ' ')
    if [ -n "$before" ] && [ -n "$shims_before" ] && [ "$before" = "$after" ] && [ "$shims_before" = "$shims_after" ] && two_ready; then
        result agent-restart PASS "same startedAt ($(echo "$before" | wc -w) containers) and shims ($shims_before) after kill -9"
    else
        result agent-restart FAIL "startedAt before [$before] after [$after]; shims before [$shims_before] after [$shims_after]"
        agent_log_tail
    fi
    measure_mem agent-restarted $AGENT
    # The host compares the containers' startedAt in the new agent's status,
    # then deletes the pods from the desired state.
    echo "E2E-SYNC agent-restarted"
    if wait_for 150 no_pods_listed; then
        result fleet-delete PASS "every pod removed after the host deleted them from the desired state"
        # The status saying so goes out within its 1 s coalescing interval:
        # give the host the time to read it before the guest powers off.
        sleep 4
    else
        result fleet-delete FAIL "pods still listed: $($P get pods | tr -s ' \n' ' ')"
        agent_log_tail
    fi
else
    result agent-restart FAIL "the restarted agent's API did not answer"
    agent_log_tail
fi

echo "== $FAILS failure(s)"
exit $FAILS
