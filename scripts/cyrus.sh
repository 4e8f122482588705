#!/usr/bin/env bash
# A throw-away Cyrus IMAP (IMAP + POP3, plain only) on loopback, for tests, beside Dovecot.
#
#   scripts/cyrus.sh start DIR        install what is missing, configure an instance under DIR, start it,
#                                     write DIR/env (source it before `cargo test`)
#   scripts/cyrus.sh stop DIR         stop that instance (and the rsyslogd it started)
#   scripts/cyrus.sh status DIR       exit 0 when the instance under DIR is running
#   scripts/cyrus.sh mkuser DIR NAME  create the INBOX of user NAME (as the admin, over IMAP)
#
# Debian's `cyrus-imapd`/`cyrus-pop3d` conflict with `dovecot-imapd` (FIELD-NOTES 30): only
# `cyrus-common` (master, tools, libraries) and `sasl2-bin` are installed with apt; the two server
# packages are fetched with `apt-get download` into /var/cache/mailmove-cyrus and unpacked there with
# `dpkg-deb -x` (never installed). The system Cyrus service is never started.
#
# The instance is ours alone: DIR/imapd.conf, DIR/cyrus.conf, DIR/config (configdirectory),
# DIR/spool (partition-default), DIR/master.pid, free ports chosen here. Passwords are not checked
# (`sasl_pwcheck_method: alwaystrue`): every user logs in with MAILMOVE_TEST_CYRUS_PASSWORD (any other
# password works too; never do this outside a test). `cyrus` is the admin (MAILMOVE_TEST_CYRUS_ADMIN).
# INBOXes are NOT created on login: the admin creates them with `CREATE user.NAME` (standard namespace,
# '.' separator, personal folders under `INBOX.`), which `mkuser` does and the Rust tests do themselves.
#
# Cyrus logs only to syslog (FIELD-NOTES 30). `rsyslog` is installed; when nothing listens on /dev/log,
# `start` runs a private rsyslogd (pid DIR/rsyslogd.pid, config DIR/rsyslog.conf) that writes
# DIR/syslog.log, and `stop` ends it. /dev/log is one socket per machine: a second instance started
# while the first runs logs into the first one's DIR/syslog.log (its lines carry the syslog prefix
# mailmove-cyrus-<cksum of DIR>); should a system syslog already listen, the lines go there.
#
# Runs as root on Debian 12 with only package-registry network. Idempotent: `start` on a running
# instance prints where it is; `stop` on a stopped one does nothing.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PASSWORD="mailmove-test"
ADMIN="cyrus"
CACHE=/var/cache/mailmove-cyrus
CYRUS_BIN=/usr/lib/cyrus/bin

die() {
    echo "cyrus.sh: error: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start|stop|status DIR | $0 mkuser DIR NAME" >&2
    exit 2
}

[ $# -ge 2 ] || usage
ACTION=$1
DIR_ARG=$2
if [ "$ACTION" = mkuser ]; then [ $# -eq 3 ] || usage; else [ $# -eq 2 ] || usage; fi

mkdir -p "$DIR_ARG"
DIR=$(cd "$DIR_ARG" && pwd -P)
CONF="$DIR/imapd.conf"
MCONF="$DIR/cyrus.conf"
PIDFILE="$DIR/master.pid"
LOG="$DIR/syslog.log"
SERVERS="$CACHE/root/usr/lib/cyrus/bin"

pid_of() {
    # Prints the pid in file $1 when alive and its cmdline contains $2 (a recycled pid is not ours).
    local file=$1 mark=$2 pid
    [ -f "$file" ] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [ -n "$pid" ] || return 1
    alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$mark" || return 1
    echo "$pid"
}

master_pid() { pid_of "$PIDFILE" "$CONF"; }
syslog_pid() { pid_of "$DIR/rsyslogd.pid" "$DIR/rsyslog.conf"; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

APT_UPDATED=0
apt_run() {
    # apt-get "$@", with one `apt-get update` when the first try fails; waits for another apt to finish.
    export DEBIAN_FRONTEND=noninteractive
    if apt-get -o DPkg::Lock::Timeout=300 "$@" >>"$DIR/apt.log" 2>&1; then return 0; fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        APT_UPDATED=1
        apt-get -o DPkg::Lock::Timeout=300 update -q >>"$DIR/apt.log" 2>&1 || true
        apt-get -o DPkg::Lock::Timeout=300 "$@" >>"$DIR/apt.log" 2>&1 && return 0
    fi
    tail -n 30 "$DIR/apt.log" >&2 || true
    return 1
}

install_packages() {
    local missing=() p
    for p in cyrus-common sasl2-bin rsyslog; do
        installed "$p" || missing+=("$p")
    done
    installed dovecot-imapd || echo "cyrus.sh: note: dovecot-imapd is not installed (nothing of ours needs it)" >&2
    if [ ${#missing[@]} -gt 0 ]; then
        [ "$(id -u)" -eq 0 ] || die "packages missing (${missing[*]}) and not root: install them first"
        echo "cyrus.sh: installing ${missing[*]}" >&2
        # Keep the packages' services from starting: our instance runs with its own config.
        local policy=/usr/sbin/policy-rc.d created_policy=0 rc=0
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy"
            chmod 755 "$policy"
            created_policy=1
        fi
        apt_run install -y -q --no-install-recommends "${missing[@]}" || rc=$?
        if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi
        [ "$rc" -eq 0 ] || die "apt-get install ${missing[*]} failed (log: $DIR/apt.log)"
        # Should a service manager have started the system instances anyway, stop them.
        if command -v systemctl >/dev/null 2>&1; then
            systemctl stop cyrus-imapd 2>/dev/null || true
        fi
        # The package may also have started an exim4 (its default-mta dependency): leave it alone.
    fi

    # The server binaries, unpacked (not installed: they conflict with dovecot-imapd).
    if [ ! -x "$SERVERS/imapd" ] || [ ! -x "$SERVERS/pop3d" ] ||
        [ "$(cat "$CACHE/version" 2>/dev/null)" != "$(dpkg-query -W -f='${Version}' cyrus-common)" ]; then
        local version tmp
        version=$(dpkg-query -W -f='${Version}' cyrus-common)
        mkdir -p "$CACHE"
        tmp=$(mktemp -d "$CACHE/dl.XXXXXX")
        chmod 755 "$tmp"
        # The server packages must match cyrus-common exactly (same private libraries).
        (cd "$tmp" && apt_run download "cyrus-imapd=$version" "cyrus-pop3d=$version") ||
            { rm -rf "$tmp"; die "apt-get download cyrus-imapd=$version cyrus-pop3d=$version failed"; }
        mkdir -p "$tmp/root"
        for p in "$tmp"/*.deb; do dpkg-deb -x "$p" "$tmp/root" || { rm -rf "$tmp"; die "dpkg-deb -x $p failed"; }; done
        rm -rf "$CACHE/root"
        mv "$tmp/root" "$CACHE/root"
        rm -f "$CACHE"/*.deb
        mv "$tmp"/*.deb "$CACHE/" 2>/dev/null || true
        rm -rf "$tmp"
        echo "$version" >"$CACHE/version"
    fi
    [ -x "$SERVERS/imapd" ] || die "no imapd in $SERVERS"
    [ -x "$CYRUS_BIN/master" ] || die "no $CYRUS_BIN/master after installing cyrus-common"
    id -u cyrus >/dev/null 2>&1 || die "cyrus-common did not create the system user cyrus"
}

make_dirs() {
    local d j
    mkdir -p "$DIR/config" "$DIR/spool" "$DIR/sieve"
    chmod 755 "$DIR"
    for d in db proc socket log msg user quota lock ptclient; do mkdir -p "$DIR/config/$d"; done
    for d in user quota lock; do
        for j in a b c d e f g h i j k l m n o p q r s t u v w x y z; do mkdir -p "$DIR/config/$d/$j"; done
    done
    mkdir -p "$DIR/spool/stage."
    chown -R cyrus:mail "$DIR/config" "$DIR/spool" "$DIR/sieve"
    chmod 750 "$DIR/config" "$DIR/spool"
}

write_conf() {
    local imap=$1 pop3=$2
    cat >"$CONF" <<EOF
# Throw-away test instance written by scripts/cyrus.sh; not for production.
configdirectory: $DIR/config
proc_path: $DIR/config/proc
mboxname_lockpath: $DIR/config/lock
defaultpartition: default
partition-default: $DIR/spool
sievedir: $DIR/sieve
lmtpsocket: $DIR/config/socket/lmtp
idlesocket: $DIR/config/socket/idle
notifysocket: $DIR/config/socket/notify
syslog_prefix: mailmove-cyrus-$(echo "$DIR" | cksum | cut -d' ' -f1)
# The standard namespace as shipped by Debian: '.' separator, personal folders under INBOX.
altnamespace: no
unixhierarchysep: no
virtdomains: off
admins: $ADMIN
# Tests log in over plain TCP (tls=none) and any password is accepted: never do this outside a test.
allowplaintext: yes
sasl_pwcheck_method: alwaystrue
sasl_mech_list: PLAIN LOGIN
sasl_auto_transition: no
allowanonymouslogin: no
hashimapspool: false
umask: 077
popminpoll: 0
# Expunged and deleted things go at once (no cyr_expire runs here).
expunge_mode: immediate
delete_mode: immediate
EOF
    # The servers come from the unpacked packages; master passes no config path on: name it.
    cat >"$MCONF" <<EOF
# Throw-away test instance written by scripts/cyrus.sh; not for production.
START {
    recover  cmd="$CYRUS_BIN/ctl_cyrusdb -C $CONF -r"
}
SERVICES {
    imap     cmd="$SERVERS/imapd -C $CONF" listen="127.0.0.1:$imap" prefork=0 maxchild=200
    pop3     cmd="$SERVERS/pop3d -C $CONF" listen="127.0.0.1:$pop3" prefork=0 maxchild=50
}
EVENTS {
    checkpoint cmd="$CYRUS_BIN/ctl_cyrusdb -C $CONF -c" period=30
}
EOF
    chmod 644 "$CONF" "$MCONF"
}

start_syslog() {
    # A private rsyslogd writing DIR/syslog.log, unless something already listens on /dev/log.
    syslog_pid >/dev/null && return 0
    [ -S /dev/log ] && return 0
    command -v rsyslogd >/dev/null 2>&1 || return 0
    cat >"$DIR/rsyslog.conf" <<EOF
module(load="imuxsock" SysSock.Name="/dev/log")
\$WorkDirectory $DIR
*.* $LOG
EOF
    : >>"$LOG"
    rsyslogd -f "$DIR/rsyslog.conf" -i "$DIR/rsyslogd.pid" >/dev/null 2>&1 || true
    local i
    for i in $(seq 1 30); do
        [ -S /dev/log ] && return 0
        sleep 0.1
    done
}

show_log() {
    if [ -s "$LOG" ]; then
        echo "---- last lines of $LOG ----" >&2
        tail -n 40 "$LOG" >&2 || true
        echo "----" >&2
    fi
    if [ -s "$DIR/master.out" ]; then
        echo "---- $DIR/master.out ----" >&2
        tail -n 20 "$DIR/master.out" >&2 || true
        echo "----" >&2
    fi
}

stop_master() {
    local pid children="" i
    if ! pid=$(master_pid); then
        rm -f "$PIDFILE"
        return 0
    fi
    children=$(pgrep -P "$pid" 2>/dev/null || true)
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        alive "$pid" || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    for i in $children; do kill -9 "$i" 2>/dev/null || true; done
    rm -f "$PIDFILE"
}

stop_syslog() {
    local pid
    if pid=$(syslog_pid); then
        kill "$pid" 2>/dev/null || true
        # rsyslogd leaves its socket behind: remove /dev/log only when ours was the one listening.
        sleep 0.2
        [ -S /dev/log ] && rm -f /dev/log
    fi
    rm -f "$DIR/rsyslogd.pid"
}

stop_instance() {
    stop_master
    stop_syslog
}

# One IMAP exchange as the admin: LOGIN, the given command, LOGOUT. Prints the server's lines.
imap_admin() {
    local port=$1 command=$2
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'a LOGIN %s %s\r\nb %s\r\nc LOGOUT\r\n' "$ADMIN" "$PASSWORD" "$command" >&3
    timeout 10 cat <&3 || true
    exec 3<&-
}

mkuser() {
    local name=$1 port out
    master_pid >/dev/null || die "the Cyrus of $DIR is not running (scripts/cyrus.sh start $DIR)"
    port=$(sed -n 's/^export MAILMOVE_TEST_CYRUS_IMAP_PORT=//p' "$DIR/env")
    out=$(imap_admin "$port" "CREATE user.$name")
    if printf '%s\n' "$out" | grep -qE '^b OK|^b NO .*(already exists|Mailbox already)'; then
        echo "cyrus.sh: user.$name exists"
    else
        printf '%s\n' "$out" >&2
        die "CREATE user.$name failed"
    fi
}

print_where() {
    echo "cyrus.sh: test Cyrus running from $DIR (log: $LOG, when a syslog runs)"
    echo "cyrus.sh: use it with: source $DIR/env"
    cat "$DIR/env"
}

start() {
    if master_pid >/dev/null && [ -s "$DIR/env" ]; then
        print_where
        return 0
    fi
    stop_master
    install_packages
    # Unix sockets live under DIR/config/socket; their path must stay under ~100 bytes.
    [ ${#DIR} -le 60 ] || die "DIR is too deep for Cyrus's unix sockets (use a short path such as /tmp/mm-cyrus)"
    make_dirs
    start_syslog

    local attempt ports imap pop3 ok=0 pid
    for attempt in 1 2 3; do
        ports=$(free_ports 2)
        read -r imap pop3 <<<"$ports"
        write_conf "$imap" "$pop3"
        rm -f "$PIDFILE"
        "$CYRUS_BIN/master" -C "$CONF" -M "$MCONF" -p "$PIDFILE" -d >"$DIR/master.out" 2>&1 ||
            { show_log; die "$CYRUS_BIN/master failed to start"; }
        ok=1
        for p in $imap $pop3; do
            wait_port "$p" || ok=0
        done
        if [ "$ok" -eq 1 ]; then break; fi
        stop_master
    done
    if [ "$ok" -ne 1 ]; then
        show_log
        die "Cyrus did not accept connections on its ports"
    fi
    for pid in $(seq 1 30); do
        master_pid >/dev/null && break
        sleep 0.1
    done
    master_pid >/dev/null || { show_log; die "no master pid in $PIDFILE"; }

    # The server must greet and let the admin in.
    local out
    out=$(imap_admin "$imap" "NOOP")
    printf '%s\n' "$out" | grep -q '^a OK' || {
        printf '%s\n' "$out" >&2
        show_log
        die "the admin cannot log in"
    }

    cat >"$DIR/env.tmp" <<EOF
export MAILMOVE_TEST_CYRUS_IMAP_PORT=$imap
export MAILMOVE_TEST_CYRUS_POP3_PORT=$pop3
export MAILMOVE_TEST_CYRUS_PASSWORD=$PASSWORD
export MAILMOVE_TEST_CYRUS_ADMIN=$ADMIN
export MAILMOVE_TEST_CYRUS_SPOOL=$DIR/spool
EOF
    mv "$DIR/env.tmp" "$DIR/env"
    print_where
}

case "$ACTION" in
start) start ;;
stop)
    stop_instance
    echo "cyrus.sh: stopped the test Cyrus of $DIR"
    ;;
status)
    if master_pid >/dev/null; then
        echo "running"
    else
        echo "stopped"
        exit 1
    fi
    ;;
mkuser) mkuser "$3" ;;
*) usage ;;
esac
