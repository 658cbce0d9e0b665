#!/bin/sh
# Counts `unsafe` blocks in the crate's Rust sources and prints two lines:
#
#   unsafe blocks: production N (budget 30), tests M
#
# What counts: every `unsafe {` (an unsafe block, also an `unsafe {` that
# opens a `match` arm or an expression); `unsafe fn`, `unsafe impl` and
# `unsafe extern` are declarations, not blocks, and are not counted.
# What is a test: a file named tests.rs, *_tests.rs, test_*.rs or
# testutil.rs, any file under a `tests/` directory (src/**/tests/, tests/,
# benches) and, inside production files, the body of a `#[cfg(test)]` item
# (tracked by brace depth from the `#[cfg(test)]` line). fuzz/ is tests.
# Exits 1 when production is over the budget (30, issue 8).
set -eu
cd "$(dirname "$0")/.."
BUDGET=30

count() {
    # $1: file; prints "prod test"
    awk '
        BEGIN { prod = 0; test = 0; pending = 0; depth = 0; intest = 0 }
        {
            line = $0
            sub(/\/\/.*/, "", line)
            if (!intest && line ~ /^[ \t]*#\[cfg\(test\)\]/) { pending = 1 }
            n = gsub(/unsafe[ \t]*\{/, "&", line)
            if (intest || pending) test += n; else prod += n
            opens = gsub(/\{/, "{", line); closes = gsub(/\}/, "}", line)
            if (pending && opens > 0) { pending = 0; intest = 1; depth = 0 }
            else if (pending && line ~ /;[ \t]*$/) { pending = 0 }
            if (intest) {
                depth += opens - closes
                if (depth <= 0) intest = 0
            }
        }
        END { print prod, test }
    ' "$1"
}

prod=0
test=0
for f in $(find src tests bench fuzz -name '*.rs' 2>/dev/null | sort); do
    case "$f" in
        tests/* | bench/* | fuzz/* | */tests/* | */tests.rs | *_tests.rs | */test_*.rs | */testutil.rs)
            t=$(grep -c 'unsafe[[:space:]]*{' "$f" || true)
            test=$((test + t))
            ;;
        *)
            set -- $(count "$f")
            prod=$((prod + $1))
            test=$((test + $2))
            if [ "${VERBOSE:-}" = 1 ] && [ "$1" != 0 ]; then echo "$1 $f"; fi
            ;;
    esac
done
echo "unsafe blocks: production $prod (budget $BUDGET), tests $test"
[ "$prod" -le "$BUDGET" ]
