#!/usr/bin/env bash
# Build static (musl) release binaries of picolet for ARM and smoke-test them
# under qemu-user. Run scripts/setup-arm-toolchain.sh once first.
#
#   scripts/build-arm.sh [aarch64|armv7|all]     (default: all)
#   scripts/build-arm.sh raspberry-pi-4          (a board: boards/<name>.toml)
#
# Route: Debian's rustc/cargo 1.85 (= the project's rust-version, so this is
# also the MSRV check) with -Zbuild-std, because rustup has no std for
# armv7-unknown-linux-musleabihf here. Set PICOLET_ARM_ROUTE=rustup to build
# aarch64 with rustup's toolchain and its prebuilt std instead.
#
# Output: target/arm/<target>/release/picolet (a separate target dir, so the
# host build's cache is left alone). Prints `file`, the size, and runs
# `picolet --version` and `picolet help` under qemu-user.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUTE="${PICOLET_ARM_ROUTE:-debian}"
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/arm}"
what="${1:-all}"
# `scripts/build-arm.sh armv7 test [cargo test args…]`: run the tests for that
# target under qemu-user instead of building the release binary.
mode="${2:-build}"
test_args=("${@:3}")

log() { printf '[build-arm] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A board name (boards/<name>.toml) selects its rust_target.
if [ -f "boards/$what.toml" ]; then
    board_target="$(sed -n 's/^rust_target *= *"\(.*\)".*/\1/p' "boards/$what.toml")"
    board_status="$(sed -n 's/^status *= *"\(.*\)".*/\1/p' "boards/$what.toml")"
    [ "$board_status" = built ] || die "board $what: status is '$board_status' ($board_target is not built yet)"
    case "$board_target" in
        aarch64-unknown-linux-musl) what=aarch64 ;;
        armv7-unknown-linux-musleabihf) what=armv7 ;;
        *) die "board $what: unknown rust_target '$board_target'" ;;
    esac
fi
case "$what" in
    aarch64) targets=(aarch64) ;;
    armv7) targets=(armv7) ;;
    all) targets=(aarch64 armv7) ;;
    *) die "usage: $0 [aarch64|armv7|all|<board in boards/>]" ;;
esac

# short name -> rust target, gcc prefix, qemu-user binary
triple() {
    case "$1" in
        aarch64) echo "aarch64-unknown-linux-musl aarch64-linux-gnu qemu-aarch64-static" ;;
        armv7) echo "armv7-unknown-linux-musleabihf arm-linux-gnueabihf qemu-arm-static" ;;
    esac
}

status=0
summary=()
for short in "${targets[@]}"; do
    read -r target gcc qemu <<<"$(triple "$short")"
    command -v "$gcc-gcc" >/dev/null || die "$gcc-gcc missing: run scripts/setup-arm-toolchain.sh"
    env_target="$(tr 'a-z-' 'A-Z_' <<<"$target")"
    export "CARGO_TARGET_${env_target}_LINKER=$gcc-gcc"
    export "CC_${target//-/_}=$gcc-gcc"
    export "AR_${target//-/_}=$gcc-ar"

    if [ "$mode" = test ]; then
        # Tests that need root or cgroups run against the host's kernel:
        # qemu-user passes the syscalls through.
        export "CARGO_TARGET_${env_target}_RUNNER=$qemu"
        log "$target: cargo test ${test_args[*]} under $qemu"
        # Optimised (opt-level 1, debug assertions and overflow checks
        # kept): unoptimised code under qemu-user ran the unit tests ~10x
        # slower and past CI's 20-minute bound.
        CARGO_PROFILE_DEV_OPT_LEVEL=1 \
        RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTUP_TOOLCHAIN= \
            /usr/bin/cargo test --locked -Zbuild-std=std,panic_abort \
            --target "$target" --target-dir "$TARGET_DIR" "${test_args[@]}" || status=1
        continue
    fi
    [ "$mode" = build ] || die "unknown mode '$mode' (build or test)"

    start=$(date +%s)
    if [ "$ROUTE" = rustup ] && [ "$short" = aarch64 ]; then
        log "$target: building with rustup's $(rustc --version)"
        cargo build --release --locked --target "$target" --target-dir "$TARGET_DIR"
    else
        [ -d "/usr/lib/rustlib/$target/lib/self-contained" ] \
            || die "/usr/lib/rustlib/$target/lib/self-contained missing: run scripts/setup-arm-toolchain.sh"
        log "$target: building with Debian's $(/usr/bin/rustc --version) and -Zbuild-std"
        # RUSTC_BOOTSTRAP lets the stable 1.85 cargo use -Zbuild-std.
        # panic_immediate_abort drops std's panic formatting and backtrace
        # symbolizer (~200 KB): a panic aborts without a message, systemd
        # restarts the agent, and the pods keep running under their shims.
        # optimize_for_size makes core/alloc pick their small variants:
        # one small stable merge sort instead of driftsort per element type
        # (32 instantiations here, ~80 KB), heapsort for the unstable sort,
        # the short integer formatting; results are the same (a stable sort
        # is stable either way; our unstable sorts sort whole values).
        # max-page-size=16384: ELF segments aligned for 4 KiB and 16 KiB page
        # kernels (Raspberry Pi 5 uses 16 KiB pages) instead of the 64 KiB
        # default, which otherwise pads the file by up to 60 KiB. A kernel
        # with 64 KiB pages (some aarch64 servers) would need the default.
        # norelro: GNU ld ends the RELRO part of the data segment on a page
        # boundary, which pads the file by up to 16 KiB (a few hundred bytes
        # of new vtables once cost exactly that). RELRO protects nothing in
        # a static musl binary: only musl's dynamic linker mprotects it.
        # crt-static is the musl default; spelled out so a stray RUSTFLAGS
        # from the environment cannot turn the binary dynamic.
        RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTUP_TOOLCHAIN= \
            RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C link-arg=-Wl,-z,max-page-size=16384 -C link-arg=-Wl,-z,norelro" \
            /usr/bin/cargo build --release --locked -Zbuild-std=std,panic_abort \
            -Zbuild-std-features=panic_immediate_abort,optimize_for_size \
            --target "$target" --target-dir "$TARGET_DIR"
    fi
    secs=$(( $(date +%s) - start ))
    bin="$TARGET_DIR/$target/release/picolet"
    [ -x "$bin" ] || die "$target: $bin not built"

    desc="$(file -b "$bin")"
    log "$target: file: $desc"
    if ! grep -q 'statically linked' <<<"$desc" && ! grep -q 'static-pie linked' <<<"$desc"; then
        log "$target: NOT statically linked"
        status=1
    fi
    # The release profile already strips; strip again in case a profile
    # override turned it off, and report the size that would ship.
    "$gcc-strip" -o "$bin.stripped" "$bin"
    size=$(stat -c %s "$bin.stripped")
    log "$target: stripped size: $size bytes ($(( (size + 1023) / 1024 )) KiB), built in ${secs}s"

    smoke="skipped ($qemu missing)"
    if command -v "$qemu" >/dev/null; then
        # The binary is still a skeleton that exits 2 with "in progress";
        # --version/help become real once main.rs parses arguments. What is
        # checked here is that it loads and runs: qemu exits 127/126 or dies
        # with a signal otherwise.
        smoke=""
        for args in --version help; do
            set +e
            out="$("$qemu" "$bin" $args 2>&1)"
            rc=$?
            set -e
            log "$target: $qemu picolet $args -> exit $rc: $(head -n1 <<<"$out")"
            if [ $rc -ge 126 ]; then status=1; smoke+="$args:FAILED($rc) "; else smoke+="$args:ran($rc) "; fi
        done
    fi
    summary+=("$target: $size bytes stripped, ${secs}s, smoke: $smoke")
done

for line in "${summary[@]+"${summary[@]}"}"; do log "$line"; done
exit $status
