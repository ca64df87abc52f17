#!/usr/bin/env bash
# make-certs.sh — a throw-away certificate authority and a server certificate for mosquitto's TLS
# listener (and, if asked, client certificates), for a first install of edge-emotion.
#
# Usage:
#   ./make-certs.sh [--out DIR] [--days N] [--client NAME]... [HOST_OR_IP]...
#
#   HOST_OR_IP  names and addresses the devices will use to reach the broker; they go in the server
#               certificate's subjectAltName (a client checks the name it dialled against that list).
#               Default: this machine's host name, <host name>.local, localhost and 127.0.0.1.
#               When none are given and DIR already holds server.crt, that certificate is kept.
#   --out DIR   where the files go (default ./certs). An existing ca.crt/ca.key there is reused, so
#               you can run the script again later to add client certificates or new host names.
#   --days N    validity of the server and client certificates (default 825; the CA gets 3650).
#   --client N  also make N.crt/N.key signed by the CA (mutual TLS; N is usually the device id).
#
# This is a private CA for your own network: keep ca.key off the devices (ideally off-line), and
# use a real CA (or your organisation's) when you have one. Needs bash and openssl (1.1.1 or later).
set -euo pipefail

out=./certs
days=825
ca_days=3650
clients=()
hosts=()

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        -o|--out) out=${2:?--out needs a directory}; shift 2 ;;
        -d|--days) days=${2:?--days needs a number}; shift 2 ;;
        -c|--client) clients+=("${2:?--client needs a name}"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; hosts+=("$@"); break ;;
        -*) echo "make-certs.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) hosts+=("$1"); shift ;;
    esac
done

if ! command -v openssl >/dev/null; then
    echo "make-certs.sh: openssl is not installed (apt install openssl)" >&2
    exit 1
fi
if ! [[ "$days" =~ ^[0-9]+$ ]] || (( days < 1 )); then
    echo "make-certs.sh: --days must be a positive number, got '$days'" >&2
    exit 2
fi
for name in "${clients[@]}"; do
    if ! [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]]; then
        echo "make-certs.sh: client name '$name' may only use letters, digits, '.', '_' and '-'" >&2
        exit 2
    fi
done

keep_server=false
if [[ ${#hosts[@]} -eq 0 && -f "$out/server.crt" && -f "$out/server.key" ]]; then
    keep_server=true
elif [[ ${#hosts[@]} -eq 0 ]]; then
    host=$(hostname 2>/dev/null || cat /etc/hostname 2>/dev/null || echo localhost)
    host=${host%%.*}
    hosts=("$host")
    [[ "$host" != localhost ]] && hosts+=("$host.local" localhost)
    hosts+=(127.0.0.1)
fi

# subjectAltName: IPv4 and IPv6 addresses as IP:, everything else as DNS:
san=""
for h in "${hosts[@]}"; do
    if [[ "$h" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || "$h" == *:* ]]; then
        san+="${san:+,}IP:$h"
    else
        san+="${san:+,}DNS:$h"
    fi
done

mkdir -p "$out"
cd "$out"
umask 077  # private keys readable by their owner only

# run openssl quietly; on failure show what it said and stop
ossl() {
    local said
    if ! said=$(openssl "$@" 2>&1); then
        echo "make-certs.sh: openssl $1 failed:" >&2
        echo "$said" >&2
        exit 1
    fi
}

new_key() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# sign NAME SUBJECT EXTENSIONS: NAME.key (new) and NAME.crt signed by the CA
sign() {
    local name=$1 subject=$2 extensions=$3
    new_key "$name.key"
    ossl req -new -key "$name.key" -subj "$subject" -out "$name.csr"
    printf '%s\n' "$extensions" > "$name.ext"
    ossl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" -sha256 \
        -extfile "$name.ext" -out "$name.crt"
    rm -f "$name.csr" "$name.ext"
    chmod 644 "$name.crt"
}

if [[ -f ca.crt && -f ca.key ]]; then
    echo "Reusing the CA in $PWD (ca.crt, ca.key)"
else
    new_key ca.key
    ossl req -x509 -new -key ca.key -sha256 -days "$ca_days" \
        -subj "/CN=edge-emotion throw-away CA ($(hostname 2>/dev/null || echo local))" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" -out ca.crt
    chmod 644 ca.crt
    echo "Made a new CA: $PWD/ca.crt (certificate) and ca.key (its private key)"
fi

common="authorityKeyIdentifier=keyid,issuer
subjectKeyIdentifier=hash"
if $keep_server; then
    echo "Keeping the server certificate $PWD/server.crt (give host names to make a new one)"
    hosts=()
    while IFS= read -r name; do hosts+=("$name"); done < <(
        openssl x509 -in server.crt -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr ',' '\n' |
        sed -E 's/^ *(DNS:|IP Address:)//' | grep -v '^$')
    [[ ${#hosts[@]} -gt 0 ]] || hosts=("<the broker's name>")
else
sign server "/CN=${hosts[0]}" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san
$common"
echo "Made the server certificate: $PWD/server.crt and server.key, valid for $days days for: ${hosts[*]}"
fi

for name in "${clients[@]}"; do
    sign "$name" "/CN=$name" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
$common"
    echo "Made a client certificate for '$name': $PWD/$name.crt and $name.key"
done

cat <<INSTRUCTIONS

Next steps
  On the broker (the Pi or home server running mosquitto), as root:
    install -m 644 -o root -g root     $PWD/ca.crt     /etc/mosquitto/ca_certificates/edge-emotion-ca.crt
    install -m 644 -o root -g root     $PWD/server.crt /etc/mosquitto/certs/edge-emotion-server.crt
    install -m 640 -o root -g mosquitto $PWD/server.key /etc/mosquitto/certs/edge-emotion-server.key
    systemctl restart mosquitto
  On every device running edge-emotion:
    copy ca.crt to /etc/edge-emotion/ca.crt and set  mqtt.tls_ca = "/etc/edge-emotion/ca.crt"
    the broker URL must use one of the names above:  mqtt.url = "mqtts://${hosts[0]}:8883"
INSTRUCTIONS
for name in "${clients[@]}"; do
    echo "  On device '$name' (mutual TLS): copy $name.crt and $name.key (mode 0600, readable by the daemon's"
    echo "    user) and set mqtt.tls_cert / mqtt.tls_key to their paths"
done
cat <<INSTRUCTIONS
  Keep $PWD/ca.key private and off the devices: whoever has it can make certificates your broker
  and devices trust. A device only ever needs ca.crt (plus its own client pair, if any).
INSTRUCTIONS
