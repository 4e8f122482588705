#!/usr/bin/env bash
# What the throw-away test servers' scripts (dovecot.sh, cyrus.sh, mailutils.sh) share: sourced by
# each, after it has set DIR (its instance directory) and defined `die`.

# Whether process $1 runs (kill -0 also succeeds on a zombie, which an init that does not reap
# leaves behind: its state is checked too).
alive() {
    local pid=$1 state
    kill -0 "$pid" 2>/dev/null || return 1
    state=$(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' "/proc/$pid/stat" 2>/dev/null || true)
    [ "$state" != "Z" ]
}

# Waits up to 10 s for something to listen on 127.0.0.1:$1.
wait_port() {
    local port=$1 i
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# Prints $1 distinct free TCP ports on 127.0.0.1.
free_ports() {
    local count=$1
    if command -v python3 >/dev/null 2>&1 && python3 -c 'import socket' 2>/dev/null; then
        python3 - "$count" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
        return 0
    fi
    # Without python: random high ports that nothing answers on.
    local ports=() p
    while [ ${#ports[@]} -lt "$count" ]; do
        p=$((20000 + RANDOM % 40000))
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
        case " ${ports[*]} " in *" $p "*) continue ;; esac
        ports+=("$p")
    done
    echo "${ports[*]}"
}

# Installs the Debian packages $2... that are missing, without starting their services (our
# instances run with their own config); $1 names the calling script in messages. The log is
# DIR/apt.log.
apt_install_missing() {
    local who=$1 missing=() p
    shift
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "packages missing (${missing[*]}) and not root: install them first"
    echo "$who: installing ${missing[*]}" >&2
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    local rc=0
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$DIR/apt.log" 2>&1; then
        apt-get update -q >>"$DIR/apt.log" 2>&1 || true
        apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$DIR/apt.log" 2>&1 || rc=$?
    fi
    if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi
    if [ "$rc" -ne 0 ]; then
        tail -n 30 "$DIR/apt.log" >&2 || true
        die "apt-get install ${missing[*]} failed (log: $DIR/apt.log)"
    fi
}

# Makes a throw-away CA (DIR/ca.pem, DIR/ca.key) and a server certificate for localhost and
# 127.0.0.1 signed by it (DIR/server.pem, DIR/server.key); reused when present. Needs openssl.
make_certs() {
    # A throw-away CA and a server certificate for localhost / 127.0.0.1, reused when present.
    if [ -s "$DIR/ca.pem" ] && [ -s "$DIR/server.pem" ] && [ -s "$DIR/server.key" ]; then
        return 0
    fi
    local tmp
    tmp=$(mktemp -d "$DIR/certs.XXXXXX")
    (
        cd "$tmp"
        openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
            -keyout ca.key -out ca.pem -days 3650 -subj "/CN=mailmove throw-away test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
            -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
        cat >server.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
EOF
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.pem -days 825 -extfile server.ext 2>/dev/null
    ) || {
        rm -rf "$tmp"
        die "openssl failed to make the test certificates"
    }
    chmod 600 "$tmp/server.key" "$tmp/ca.key"
    mv "$tmp/ca.pem" "$tmp/ca.key" "$tmp/server.pem" "$tmp/server.key" "$DIR/"
    rm -rf "$tmp"
}
