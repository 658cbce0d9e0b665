#!/bin/sh
# Builds deterministic busybox test images for picolet from a static busybox.
#
# usage: tests/images/build-busybox.sh OUTDIR [ARCH]
#   ARCH     Debian or OCI architecture (default: dpkg --print-architecture,
#            else uname -m):
#            amd64, arm64, armhf (= arm/v7), armel (= arm/v6), i386, ...
#   BUSYBOX  env: the static busybox binary to put in the image
#            (default /bin/busybox, from Debian's busybox-static).
#
# Writes:
#   OUTDIR/busybox-oci/        OCI image layout, one image tagged with
#                              org.opencontainers.image.ref.name =
#                              picolet.test/busybox:1 (a full reference, which
#                              the picolet importer takes as the image name)
#   OUTDIR/busybox.oci.tar     the same layout tarred (an oci-archive)
#   OUTDIR/busybox.docker.tar  docker-archive, RepoTags picolet.test/busybox:2,
#                              two layers (1st plain tar, 2nd gzip)
#
# Layer 1 (both images): /bin/busybox plus one symlink per applet in /bin,
#   /etc/passwd (root 0, nobody 65534), /etc/group, /tmp (1777), /www,
#   /www/index.html, /etc/picolet-image-version = 1,
#   /etc/picolet-whiteout-me, /opt/picolet/layer1.
# Layer 2 (docker image only): /etc/picolet-image-version = 2, a whiteout
#   etc/.wh.picolet-whiteout-me, an opaque marker opt/picolet/.wh..wh..opq
#   and /opt/picolet/layer2 (so /opt/picolet/layer1 is hidden).
# Config: no Entrypoint, Cmd ["sh"], Env PATH=/usr/sbin:/usr/bin:/sbin:/bin,
#   WorkingDir /.
#
# Needs only a POSIX sh (dash; not busybox sh, whose applets shadow GNU tar),
# GNU tar, gzip, sha256sum and coreutils. The output is
# byte-for-byte reproducible for the same busybox, tar and gzip.
set -eu

usage() {
	echo "usage: $0 OUTDIR [ARCH]" >&2
	exit 2
}
[ $# -ge 1 ] && [ $# -le 2 ] || usage

mkdir -p "$1"
OUT=$(cd "$1" && pwd)
ARCH=${2:-$(dpkg --print-architecture 2>/dev/null || uname -m)}
BUSYBOX=${BUSYBOX:-/bin/busybox}
export LC_ALL=C TZ=UTC
umask 022

VARIANT=
case $ARCH in
amd64 | x86_64) OCI_ARCH=amd64 ;;
arm64 | aarch64) OCI_ARCH=arm64 ;;
armhf | arm | armv7 | armv7l) OCI_ARCH=arm VARIANT=v7 ;;
armel | armv6 | armv6l) OCI_ARCH=arm VARIANT=v6 ;;
i386 | 386 | i686) OCI_ARCH=386 ;;
*) OCI_ARCH=$ARCH ;;
esac

[ -f "$BUSYBOX" ] || {
	echo "$0: busybox binary $BUSYBOX not found (apt-get install busybox-static)" >&2
	exit 1
}

TAR="tar --format=gnu --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
trap 'exit 1' HUP INT TERM

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { wc -c <"$1" | tr -d ' '; }

# Applet names: from the image's busybox if it runs here, else the host's.
APPLETS=$("$BUSYBOX" --list 2>/dev/null) || APPLETS=$(busybox --list) || {
	echo "$0: cannot list busybox applets" >&2
	exit 1
}

# ---- layer 1: the busybox rootfs -------------------------------------------
R1=$WORK/rootfs1
mkdir -p "$R1/bin" "$R1/etc" "$R1/tmp" "$R1/www" "$R1/opt/picolet" "$R1/root"
cp "$BUSYBOX" "$R1/bin/busybox"
for a in $APPLETS; do
	[ "$a" = busybox ] || ln -s busybox "$R1/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$R1/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$R1/etc/group"
echo 1 >"$R1/etc/picolet-image-version"
echo 'deleted by layer 2 of picolet.test/busybox:2' >"$R1/etc/picolet-whiteout-me"
echo 'hidden in picolet.test/busybox:2 by an opaque directory' >"$R1/opt/picolet/layer1"
echo 'picolet busybox test image' >"$R1/www/index.html"
find "$R1" -type d -exec chmod 0755 {} +
find "$R1" -type f -exec chmod 0644 {} +
chmod 0755 "$R1/bin/busybox"
chmod 0700 "$R1/root"
chmod 1777 "$R1/tmp"
(cd "$R1" && $TAR -cf "$WORK/layer1.tar" .)

# ---- layer 2: version bump, a whiteout and an opaque directory ------------
R2=$WORK/rootfs2
mkdir -p "$R2/etc" "$R2/opt/picolet"
echo 2 >"$R2/etc/picolet-image-version"
: >"$R2/etc/.wh.picolet-whiteout-me"
: >"$R2/opt/picolet/.wh..wh..opq"
echo 'from layer 2' >"$R2/opt/picolet/layer2"
find "$R2" -type d -exec chmod 0755 {} +
find "$R2" -type f -exec chmod 0644 {} +
(cd "$R2" && $TAR -cf "$WORK/layer2.tar" .)

gzip -n -9 -c "$WORK/layer1.tar" >"$WORK/layer1.tar.gz"
gzip -n -9 -c "$WORK/layer2.tar" >"$WORK/layer2.tar.gz"
DIFF1=$(sha "$WORK/layer1.tar")
DIFF2=$(sha "$WORK/layer2.tar")

# config JSON: $1 = diff_ids JSON list, $2 = history JSON list
config() {
	platform="\"architecture\":\"$OCI_ARCH\",\"os\":\"linux\""
	[ -z "$VARIANT" ] || platform="$platform,\"variant\":\"$VARIANT\""
	printf '{"created":"1970-01-01T00:00:00Z",%s,"config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":%s},"history":%s}' \
		"$platform" "$1" "$2"
}
H1='{"created":"1970-01-01T00:00:00Z","created_by":"build-busybox.sh: busybox rootfs"}'
H2='{"created":"1970-01-01T00:00:00Z","created_by":"build-busybox.sh: version 2, whiteout, opaque dir"}'

# ---- OCI layout: picolet.test/busybox:1 ------------------------------------
OCI=$OUT/busybox-oci
mkdir -p "$OUT"
rm -rf "$OCI" "$OUT/busybox.oci.tar" "$OUT/busybox.docker.tar"
mkdir -p "$OCI/blobs/sha256"

config "[\"sha256:$DIFF1\"]" "[$H1]" >"$WORK/config1.json"
L1=$(sha "$WORK/layer1.tar.gz")
C1=$(sha "$WORK/config1.json")
cp "$WORK/layer1.tar.gz" "$OCI/blobs/sha256/$L1"
cp "$WORK/config1.json" "$OCI/blobs/sha256/$C1"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
	"$C1" "$(size "$WORK/config1.json")" "$L1" "$(size "$WORK/layer1.tar.gz")" >"$WORK/manifest1.json"
M1=$(sha "$WORK/manifest1.json")
cp "$WORK/manifest1.json" "$OCI/blobs/sha256/$M1"
PLATFORM="\"architecture\":\"$OCI_ARCH\",\"os\":\"linux\""
[ -z "$VARIANT" ] || PLATFORM="$PLATFORM,\"variant\":\"$VARIANT\""
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"picolet.test/busybox:1"},"platform":{%s}}]}' \
	"$M1" "$(size "$WORK/manifest1.json")" "$PLATFORM" >"$OCI/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$OCI/oci-layout"
find "$OCI" -type d -exec chmod 0755 {} +
find "$OCI" -type f -exec chmod 0644 {} +
(cd "$OCI" && $TAR -cf "$OUT/busybox.oci.tar" .)

# ---- docker-archive: picolet.test/busybox:2 --------------------------------
D=$WORK/docker
mkdir -p "$D/$DIFF1" "$D/$DIFF2"
config "[\"sha256:$DIFF1\",\"sha256:$DIFF2\"]" "[$H1,$H2]" >"$WORK/config2.json"
C2=$(sha "$WORK/config2.json")
cp "$WORK/config2.json" "$D/$C2.json"
cp "$WORK/layer1.tar" "$D/$DIFF1/layer.tar"
cp "$WORK/layer2.tar.gz" "$D/$DIFF2/layer.tar.gz"
printf '[{"Config":"%s.json","RepoTags":["picolet.test/busybox:2"],"Layers":["%s/layer.tar","%s/layer.tar.gz"]}]' \
	"$C2" "$DIFF1" "$DIFF2" >"$D/manifest.json"
printf '{"picolet.test/busybox":{"2":"%s"}}' "$DIFF2" >"$D/repositories"
find "$D" -type d -exec chmod 0755 {} +
find "$D" -type f -exec chmod 0644 {} +
(cd "$D" && $TAR -cf "$OUT/busybox.docker.tar" -- *)

echo "picolet.test/busybox:1  image id sha256:$C1  manifest sha256:$M1  ($OUT/busybox-oci, $OUT/busybox.oci.tar)"
echo "picolet.test/busybox:2  image id sha256:$C2  ($OUT/busybox.docker.tar)"
