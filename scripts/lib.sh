# Shared helpers for the scripts (POSIX sh).

# need_packages PKG...: apt-get install what is missing.
need_packages() {
    missing=""
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "installing:$missing"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
}

# need_cargo: a cargo that builds Rust 1.85 code. rustup's if present,
# otherwise Debian's cargo-web/rustc-web 1.85.
need_cargo() {
    [ -d "$HOME/.cargo/bin" ] && PATH=$HOME/.cargo/bin:$PATH && export PATH
    if ! command -v cargo >/dev/null 2>&1; then
        need_packages cargo-web rustc-web gcc libc6-dev
    fi
}
