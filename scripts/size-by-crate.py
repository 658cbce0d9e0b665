#!/usr/bin/env python3
"""Where the bytes of a release binary go: per crate and per function.

    CARGO_PROFILE_RELEASE_STRIP=false scripts/build-arm.sh aarch64
    scripts/size-by-crate.py target/arm/aarch64-unknown-linux-musl/release/picolet [CRATES] [FUNCTIONS]

Reads the symbol table of the *unstripped* binary with `nm --size-sort -C`
(as cargo-bloat does, which cannot drive the -Zbuild-std route) and sums the
sizes of code and read-only data symbols by crate:

- a path `krate::…` counts for `krate`;
- `<X as Trait>::f` counts for X's crate, or the trait's when X is from
  std/core/alloc or a primitive: a generic instantiated for our types in
  std (`BTreeMap<K,V>::insert`, sorts, `Vec::push`) counts for `std`;
- symbols without a Rust path are musl's when libc.a defines them, the
  machine outliner's (`OUTLINED_FUNCTION_*`: code shared across crates),
  or else ring's C and assembly (counted with ring).

Symbols without a size (alignment padding, some assembly labels), section
headers and the ELF overhead are not counted: the total is about 90 % of
the stripped file.
"""
import collections
import os
import re
import subprocess
import sys

NM = os.environ.get("NM", "aarch64-linux-gnu-nm")
LIBC = os.environ.get(
    "MUSL_LIBC", "/usr/lib/rustlib/aarch64-unknown-linux-musl/lib/self-contained/libc.a"
)
STD = {"std", "core", "alloc", "compiler_builtins", "panic_abort", "std_detect", "hashbrown"}


def crate_of_path(p):
    p = p.lstrip("&*").strip()
    for prefix in ("mut ", "dyn ", "const "):
        if p.startswith(prefix):
            p = p[len(prefix):]
    if p.startswith("<"):
        return crate_of(p)
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", p)
    return m.group(1) if m else None


def split_impl(s):
    """`<X as Y>::rest` -> (X, Y); `<X>::rest` -> (X, None)."""
    depth = 0
    for i, c in enumerate(s):
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
            if depth == 0:
                inner, d = s[1:i], 0
                for j, ch in enumerate(inner):
                    if ch in "<([":
                        d += 1
                    elif ch in ">)]":
                        d -= 1
                    elif d == 0 and inner.startswith(" as ", j):
                        return inner[:j], inner[j + 4:]
                return inner, None
    return s, None


def crate_of(name):
    if name.startswith("<"):
        x, y = split_impl(name)
        cx = crate_of_path(x)
        cy = crate_of_path(y) if y else None
        for c in (cx, cy):
            if c and c not in STD:
                return c
        return cx or cy or "std"
    return crate_of_path(name)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    n_crates = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    n_funcs = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    musl = set()
    if os.path.exists(LIBC):
        out = subprocess.run([NM, "--defined-only", LIBC], capture_output=True, text=True).stdout
        musl = {p[2] for p in (l.split() for l in out.splitlines()) if len(p) == 3}
    out = subprocess.run(
        [NM, "--size-sort", "-C", "--print-size", binary], capture_output=True, text=True, check=True
    ).stdout
    totals, funcs, total = collections.Counter(), [], 0
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4 or parts[2] not in "tTWwrRdD":
            continue
        size, name = int(parts[1], 16), parts[3]
        crate = crate_of(name)
        if crate is None:
            if name.startswith("OUTLINED_FUNCTION"):
                crate = "[outlined, shared]"
            elif name in musl:
                crate = "musl libc"
            else:
                crate = "ring"  # its C and assembly
        if crate in STD:
            crate = "std"
        total += size
        totals[crate] += size
        funcs.append((size, crate, name))
    print(f"code and read-only data symbols: {total} bytes")
    for crate, size in totals.most_common(n_crates):
        print(f"{size:>9}  {100 * size / total:5.1f} %  {crate}")
    print()
    for size, crate, name in sorted(funcs, reverse=True)[:n_funcs]:
        print(f"{size:>8}  {crate:<20} {name[:160]}")


if __name__ == "__main__":
    main()
