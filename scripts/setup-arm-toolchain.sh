#!/usr/bin/env bash
# Install everything needed to build static ARM (musl) picolet binaries on a
# Debian 12 (bookworm) amd64 machine, without cross-rs or Docker.
# See shared/ARM-TOOLCHAIN.md for why each piece is needed.
#
#   scripts/setup-arm-toolchain.sh            # everything (idempotent)
#   PICOLET_SKIP_RUSTUP=1 scripts/...         # skip the rustup attempt
#
# Two routes end up available:
#  - rustup (aarch64 only): `rustup target add aarch64-unknown-linux-musl`,
#    tried first with a generous timeout; a failure is reported, not fatal.
#  - Debian (aarch64 and armv7, and the one scripts/build-arm.sh uses):
#    Debian's rustc/cargo 1.85 (the project's MSRV, pinned) + rust-src for
#    -Zbuild-std, the GNU cross gcc as linker, musl's crt/libc.a and LLVM's
#    libunwind.a extracted from Debian's arm64/armhf packages into
#    /usr/lib/rustlib/<target>/lib/self-contained/.
#
# Re-running is cheap: installed packages and finished self-contained dirs are
# detected and left alone (a stamp file records what was put in each dir).
set -euo pipefail

RUST_DEB_VERSION="${RUST_DEB_VERSION:-1.85.0+dfsg3-1~deb12u3}"
RUST_SRC_DIR="/usr/src/rustc-${RUST_DEB_VERSION%%+*}"
CACHE="${PICOLET_ARM_CACHE:-/var/cache/picolet-arm}"
RUSTUP_TIMEOUT="${RUSTUP_TIMEOUT:-900}"
APT_LOCK_TIMEOUT=600

log() { printf '[setup-arm] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "run as root or install sudo"
    SUDO="sudo"
fi
apt_get() { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=$APT_LOCK_TIMEOUT "$@"; }

# --- 1. packages --------------------------------------------------------------
# name=version pairs; a name without '=' accepts any version.
# libc6-dev-*-cross: the cross compilers' own C headers (stdint.h …), which
# ring's C and assembly (TLS, ed25519) include; the binary links musl.
PKGS=(
    gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf qemu-user-static qemu-system-arm file binutils
    libc6-dev-arm64-cross libc6-dev-armhf-cross
    "rustc-web=$RUST_DEB_VERSION" "cargo-web=$RUST_DEB_VERSION" "rust-web-src=$RUST_DEB_VERSION"
    "libstd-rust-web-dev=$RUST_DEB_VERSION" "libstd-rust-web-1.85=$RUST_DEB_VERSION"
)

installed_version() { dpkg-query -W -f='${db:Status-Abbrev}${Version}' "$1" 2>/dev/null | sed -n 's/^ii *//p'; }

missing=()
for spec in "${PKGS[@]}"; do
    name="${spec%%=*}"
    want=""
    [ "$name" != "$spec" ] && want="${spec#*=}"
    have="$(installed_version "$name" || true)"
    if [ -z "$have" ] || { [ -n "$want" ] && [ "$have" != "$want" ]; }; then
        missing+=("$spec")
    fi
done

# Foreign architectures are only needed so that `apt-get download pkg:arm64`
# finds the package; nothing foreign is installed.
need_update=0
for arch in arm64 armhf; do
    # (Here-strings, not pipes, into `grep -q`: under pipefail an early grep
    # exit kills the writer with SIGPIPE and the test reads as false.)
    if ! grep -qx "$arch" <<<"$(dpkg --print-foreign-architectures)"; then
        log "adding dpkg architecture $arch (for apt-get download only)"
        $SUDO dpkg --add-architecture "$arch"
        need_update=1
    fi
done
if [ ${#missing[@]} -gt 0 ] || [ "$need_update" = 1 ] \
    || ! apt-cache show musl-dev:arm64 >/dev/null 2>&1; then
    log "apt-get update"
    # A mirror caught mid-sync can fail one foreign index (seen here for
    # bookworm-security armhf); what matters is that our packages are found.
    if ! apt_get update -qq; then
        log "apt-get update reported errors; retrying once"
        sleep 5
        apt_get update -qq || log "apt-get update still reports errors; continuing"
    fi
    for p in musl-dev:arm64 musl-dev:armhf libunwind-14-dev:arm64 libunwind-14-dev:armhf; do
        apt-cache show "$p" >/dev/null 2>&1 || die "apt cannot find $p after apt-get update"
    done
fi
if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    # --allow-downgrades: the security suite carries a newer rustc-web; we want 1.85.
    apt_get install -y --no-install-recommends --allow-downgrades "${missing[@]}"
else
    log "packages already installed"
fi
[ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] || die "/usr/bin/rustc or /usr/bin/cargo missing after install"
grep -q ' 1\.85\.' <<<"$(/usr/bin/rustc --version)" || die "/usr/bin/rustc is not 1.85: $(/usr/bin/rustc --version)"

# -Zbuild-std looks for the std sources at <sysroot>/lib/rustlib/src/rust.
[ -d "$RUST_SRC_DIR/library" ] || die "$RUST_SRC_DIR/library missing (rust-web-src)"
if [ "$(readlink -f /usr/lib/rustlib/src/rust 2>/dev/null)" != "$RUST_SRC_DIR" ]; then
    log "linking /usr/lib/rustlib/src/rust -> $RUST_SRC_DIR"
    $SUDO mkdir -p /usr/lib/rustlib/src
    $SUDO rm -rf /usr/lib/rustlib/src/rust
    $SUDO ln -s "$RUST_SRC_DIR" /usr/lib/rustlib/src/rust
fi

# --- 2. rustup route (optional, aarch64 only) -----------------------------------
if [ -z "${PICOLET_SKIP_RUSTUP:-}" ] && command -v rustup >/dev/null; then
    if grep -qx aarch64-unknown-linux-musl <<<"$(rustup target list --installed 2>/dev/null)"; then
        log "rustup: aarch64-unknown-linux-musl already installed"
    else
        log "rustup: trying 'rustup target add aarch64-unknown-linux-musl' (timeout ${RUSTUP_TIMEOUT}s)"
        if timeout "$RUSTUP_TIMEOUT" rustup target add aarch64-unknown-linux-musl; then
            log "rustup: aarch64-unknown-linux-musl installed"
        else
            log "rustup: failed or timed out; the Debian route below still works"
        fi
    fi
fi
# armv7-unknown-linux-musleabihf is not downloadable through rustup here (404):
# the Debian route is the only one for it.

# --- 3. Debian route: self-contained dirs ------------------------------------------
# target  deb-arch  gcc-prefix  musl-multiarch-dir
TARGETS=(
    "aarch64-unknown-linux-musl arm64 aarch64-linux-gnu aarch64-linux-musl"
    "armv7-unknown-linux-musleabihf armhf arm-linux-gnueabihf arm-linux-musleabihf"
)

# Debian's LLVM libunwind.a is built with _FORTIFY_SOURCE and calls
# __fprintf_chk, which musl does not have. Forward it to vfprintf. No musl
# headers are installed for the cross gcc, so declare what we use ourselves.
SHIM_C='typedef struct _IO_FILE FILE;
typedef __builtin_va_list va_list;
int vfprintf(FILE *restrict f, const char *restrict fmt, va_list ap);
int __fprintf_chk(FILE *f, int flag, const char *fmt, ...) {
    (void)flag;
    va_list ap;
    __builtin_va_start(ap, fmt);
    int r = vfprintf(f, fmt, ap);
    __builtin_va_end(ap);
    return r;
}
'

$SUDO mkdir -p "$CACHE"
for row in "${TARGETS[@]}"; do
    read -r target arch gcc musl_dir <<<"$row"
    sc="/usr/lib/rustlib/$target/lib/self-contained"
    stamp="$sc/.picolet-setup"
    want_stamp="musl-dev:$arch libunwind-14-dev:$arch gcc=$($gcc-gcc -dumpfullversion) shim=v2"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ]; then
        log "$target: self-contained dir up to date"
        continue
    fi
    log "$target: building $sc"
    work="$CACHE/$arch"
    $SUDO rm -rf "$work"
    $SUDO mkdir -p "$work/root"
    # apt-get download writes into the current directory.
    (cd "$work" && apt_get download "musl-dev:$arch" "libunwind-14-dev:$arch")
    for deb in "$work"/*.deb; do $SUDO dpkg-deb -x "$deb" "$work/root"; done

    musl_lib="$work/root/usr/lib/$musl_dir"
    [ -f "$musl_lib/libc.a" ] || die "$target: libc.a not found in $musl_lib"
    unwind="$(find "$work/root" -name libunwind.a | head -n1)"
    [ -n "$unwind" ] || die "$target: libunwind.a not found in libunwind-14-dev:$arch"
    gcc_dir="$(dirname "$($gcc-gcc -print-libgcc-file-name)")"

    $SUDO mkdir -p "$sc"
    for f in crt1.o crti.o crtn.o Scrt1.o rcrt1.o libc.a; do
        $SUDO cp "$musl_lib/$f" "$sc/"
    done
    for f in crtbegin.o crtend.o crtbeginS.o crtendS.o crtbeginT.o; do
        $SUDO cp "$gcc_dir/$f" "$sc/"
    done
    $SUDO cp "$unwind" "$sc/libunwind.a"

    syms="$("$gcc-nm" "$sc/libunwind.a" 2>/dev/null)"
    if grep -q ' U __fprintf_chk$' <<<"$syms"; then
        log "$target: adding the __fprintf_chk shim to libunwind.a"
        printf '%s' "$SHIM_C" >"$work/fprintf_chk.c"
        "$gcc-gcc" -c -O2 -fno-stack-protector -ffreestanding -o "$work/fprintf_chk.o" "$work/fprintf_chk.c"
        $SUDO "$gcc-ar" r "$sc/libunwind.a" "$work/fprintf_chk.o"
        syms="$("$gcc-nm" "$sc/libunwind.a" 2>/dev/null)"
        grep -q ' T __fprintf_chk$' <<<"$syms" || die "$target: shim not in libunwind.a"
    fi
    printf '%s\n' "$want_stamp" | $SUDO tee "$stamp" >/dev/null
    log "$target: done"
done

log "ready. Build with: scripts/build-arm.sh all"
