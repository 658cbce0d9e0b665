#!/bin/sh
# A local MQTT broker for trying the fleet: mosquitto on loopback with a
# generated config, in the foreground (Ctrl-C stops it). Run as root on
# Debian / Ubuntu / Raspberry Pi OS (it installs mosquitto and openssl).
#
#   ./scripts/broker.sh             mqtt://127.0.0.1:1883, anonymous
#   ./scripts/broker.sh --tls       mqtts://localhost:8883 with a test CA and
#                                   a client certificate (mutual TLS)
#   --port N                        another port
#
# Files (config, log, and with --tls the test CA, server and client
# certificates) go to $PICOLET_BROKER_DIR (default /tmp/picolet-broker).
# The test CA's key stays there: it is for trying picolet, not for a fleet.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib.sh"

TLS=""
PORT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --tls) TLS=1 ;;
        --port) PORT=$2; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
DIR=${PICOLET_BROKER_DIR:-/tmp/picolet-broker}
mkdir -p "$DIR"
if [ "$(id -u)" = 0 ]; then
    need_packages mosquitto openssl
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

if [ -z "$TLS" ]; then
    PORT=${PORT:-1883}
    cat >"$DIR/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
log_dest file $DIR/mosquitto.log
CONF
    URL="mqtt://127.0.0.1:$PORT"
    FLAGS=""
else
    PORT=${PORT:-8883}
    if [ ! -f "$DIR/ca.pem" ]; then
        ossl() { openssl "$@" 2>/dev/null; }
        ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
            -subj "/CN=picolet test CA" -keyout "$DIR/ca.key" -out "$DIR/ca.pem"
        for who in server device; do
            ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                -subj "/CN=$who" -keyout "$DIR/$who.key" -out "$DIR/$who.csr"
            if [ "$who" = server ]; then
                printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$DIR/$who.ext"
            else
                printf 'extendedKeyUsage=clientAuth\n' >"$DIR/$who.ext"
            fi
            ossl x509 -req -in "$DIR/$who.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" \
                -CAcreateserial -days 365 -extfile "$DIR/$who.ext" -out "$DIR/$who.pem"
            rm -f "$DIR/$who.csr" "$DIR/$who.ext"
        done
        chmod 600 "$DIR"/*.key
        # mosquitto drops root and must read its own key.
        chown mosquitto "$DIR/server.key" 2>/dev/null || chmod 644 "$DIR/server.key"
    fi
    cat >"$DIR/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
log_dest file $DIR/mosquitto.log
cafile $DIR/ca.pem
certfile $DIR/server.pem
keyfile $DIR/server.key
require_certificate true
CONF
    URL="mqtts://localhost:$PORT"
    FLAGS=" --ca $DIR/ca.pem --cert $DIR/device.pem --key $DIR/device.key"
fi
# mosquitto, started as root, runs as its own user: it needs to reach its
# files and write its log.
chmod 755 "$DIR"
: >>"$DIR/mosquitto.log"
chown mosquitto "$DIR/mosquitto.log" 2>/dev/null || true
echo "broker: $URL   (log: $DIR/mosquitto.log)"
echo "agent:  picolet agent --broker $URL --device-id pi-1$FLAGS"
echo "apply:  picolet apply -f examples/hello.yaml --device pi-1 --broker $URL$FLAGS"
exec "$MOSQUITTO" -c "$DIR/mosquitto.conf"
