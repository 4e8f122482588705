#!/usr/bin/env bash
# A throw-away GNU Mailutils imap4d + pop3d on loopback, for tests: a third IMAP implementation
# (plain IMAP4rev1 of the old school: mbox folders, no UIDPLUS, no special-use, no keywords).
#
#   scripts/mailutils.sh start DIR        install mailutils-imap4d/-pop3d if missing, create the test
#                                         users, configure an instance under DIR, start it, write
#                                         DIR/env (source it before `cargo test`)
#   scripts/mailutils.sh stop DIR         stop that instance and delete the users it created
#   scripts/mailutils.sh status DIR       exit 0 when the instance under DIR is running
#   (environment: MAILMOVE_MAILUTILS_POOL=N users instead of 20; MAILMOVE_MAILUTILS_TRANSCRIPT=yes
#   logs every session to DIR/imap4d.log, for debugging)
#   scripts/mailutils.sh mkuser DIR NAME  create one more system user NAME (shared password, home
#                                         and spool under DIR); `stop` deletes it too
#
# The instance is ours alone: its own config files (DIR/imap4d.conf, DIR/pop3d.conf), logs
# (DIR/imap4d.log, DIR/pop3d.log), free ports chosen here, plaintext only (tests use tls=none).
# The system mailutils services are never started. imap4d and pop3d only know system users
# (`auth { authentication system; }`), so `start` creates a pool of POOL users (default 20)
# named mm<tag>u1 .. mm<tag>uN, where <tag> is derived from DIR so that two instances never share
# users; all have the password written to DIR/env. Their homes (where imap4d keeps every folder but
# INBOX, as mbox files) are DIR/home/<user>; their INBOX is the mbox file DIR/spool/<user> (nothing is
# written to /var/mail). Users are listed in DIR/users; `stop` deletes exactly those (with their
# homes and spool files).
#
# DIR/env exports:
#   MAILMOVE_TEST_MAILUTILS_IMAP_PORT  plain IMAP port on 127.0.0.1
#   MAILMOVE_TEST_MAILUTILS_POP3_PORT  plain POP3 port on 127.0.0.1
#   MAILMOVE_TEST_MAILUTILS_PASSWORD   the shared password
#   MAILMOVE_TEST_MAILUTILS_USERS      the users, space-separated
#   MAILMOVE_TEST_MAILUTILS_HOME       DIR/home (a user's folders are DIR/home/<user>/<folder>)
#   MAILMOVE_TEST_MAILUTILS_SPOOL      DIR/spool (a user's INBOX is DIR/spool/<user>)
# Tests run as root may empty a user's home and spool file before use (files are owned by the user).
#
# Runs as root on Debian 12 with only package-registry network. Idempotent: `start` on a running
# instance changes nothing and prints where it is; `stop` on a stopped one does nothing.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PASSWORD="mailmove-mu-test"
POOL=${MAILMOVE_MAILUTILS_POOL:-20}
# MAILMOVE_MAILUTILS_TRANSCRIPT=yes logs every session's commands and answers to the logs.
TRANSCRIPT=${MAILMOVE_MAILUTILS_TRANSCRIPT:-no}
case "$TRANSCRIPT" in yes | no) ;; *) TRANSCRIPT=no ;; esac

die() {
    echo "mailutils.sh: error: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start|stop|status DIR | $0 mkuser DIR NAME" >&2
    exit 2
}

[ $# -ge 2 ] || usage
ACTION=$1
DIR_ARG=$2

mkdir -p "$DIR_ARG"
DIR=$(cd "$DIR_ARG" && pwd -P)
IMAP_CONF="$DIR/imap4d.conf"
POP_CONF="$DIR/pop3d.conf"
IMAP_LOG="$DIR/imap4d.log"
POP_LOG="$DIR/pop3d.log"
IMAP_PID="$DIR/imap4d.pid"
POP_PID="$DIR/pop3d.pid"
USERS_FILE="$DIR/users"
HOME_DIR="$DIR/home"
SPOOL_DIR="$DIR/spool"
# Short and stable per DIR: user names stay well below the 32 characters useradd allows.
TAG=$(printf '%s' "$DIR" | cksum | cut -d' ' -f1 | awk '{ printf "%06x", $1 % 16777216 }')
# Only members of this instance's group may log in.
GROUP="mm${TAG}g"

show_log() {
    local log
    for log in "$@"; do
        if [ -f "$log" ]; then
            echo "---- last lines of $log ----" >&2
            tail -n 40 "$log" >&2 || true
            echo "----" >&2
        fi
    done
}

daemon_pid() {
    # daemon_pid PIDFILE CONF: prints the pid of our daemon when it is alive.
    local pidfile=$1 conf=$2 pid
    [ -f "$pidfile" ] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [ -n "$pid" ] || return 1
    alive "$pid" || return 1
    # A recycled pid is not ours: the daemon's cmdline names our config.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$conf" || return 1
    echo "$pid"
}

running() {
    daemon_pid "$IMAP_PID" "$IMAP_CONF" >/dev/null && daemon_pid "$POP_PID" "$POP_CONF" >/dev/null
}

install_packages() {
    apt_install_missing mailutils.sh mailutils-imap4d mailutils-pop3d passwd
    # Should a service manager have started the system services anyway, stop them.
    if command -v systemctl >/dev/null 2>&1; then
        for p in mailutils-imap4d mailutils-pop3d; do
            if systemctl is-active --quiet "$p" 2>/dev/null; then systemctl stop "$p" 2>/dev/null || true; fi
        done
    fi
}

valid_name() {
    [[ "$1" =~ ^[a-z_][a-z0-9_-]{0,30}$ ]]
}

make_user() {
    # make_user NAME: a system user with the shared password, home DIR/home/NAME, INBOX DIR/spool/NAME.
    local name=$1
    valid_name "$name" || die "invalid user name '$name' (lower-case letters, digits, - and _, at most 31)"
    [ "$(id -u)" -eq 0 ] || die "creating system users needs root"
    if id -u "$name" >/dev/null 2>&1; then
        # Ours only if we created it (listed) or its home is ours; never touch someone else's user.
        if ! grep -qxF "$name" "$USERS_FILE" 2>/dev/null &&
            [ "$(getent passwd "$name" | cut -d: -f6)" != "$HOME_DIR/$name" ]; then
            die "user $name exists and is not one of this instance's users"
        fi
    else
        getent group "$GROUP" >/dev/null || groupadd "$GROUP" || die "groupadd $GROUP failed"
        useradd --no-create-home --gid "$GROUP" --home-dir "$HOME_DIR/$name" --shell /usr/sbin/nologin \
            --comment "mailmove throw-away test user ($DIR)" "$name" >/dev/null ||
            die "useradd $name failed"
    fi
    grep -qxF "$name" "$USERS_FILE" 2>/dev/null || echo "$name" >>"$USERS_FILE"
    echo "$name:$PASSWORD" | chpasswd || die "chpasswd $name failed"
    mkdir -p "$HOME_DIR/$name"
    chown "$name:" "$HOME_DIR/$name"
    chmod 700 "$HOME_DIR/$name"
}

delete_users() {
    local name
    [ -f "$USERS_FILE" ] || return 0
    while read -r name; do
        [ -n "$name" ] || continue
        valid_name "$name" || continue
        if id -u "$name" >/dev/null 2>&1 &&
            [ "$(getent passwd "$name" | cut -d: -f6)" = "$HOME_DIR/$name" ]; then
            userdel "$name" >/dev/null 2>&1 || echo "mailutils.sh: warning: userdel $name failed" >&2
        fi
        rm -rf "${HOME_DIR:?}/$name" "${SPOOL_DIR:?}/$name" "${SPOOL_DIR:?}/$name.lock"
    done <"$USERS_FILE"
    rm -f "$USERS_FILE"
    if getent group "$GROUP" >/dev/null && [ -z "$(getent passwd | awk -F: -v g="$(getent group "$GROUP" | cut -d: -f3)" '$4 == g')" ]; then
        groupdel "$GROUP" >/dev/null 2>&1 || true
    fi
}

write_conf() {
    # write_conf FILE PORT PIDFILE EXTRA
    local file=$1 port=$2 pidfile=$3 extra=$4
    cat >"$file" <<EOF
# Throw-away test instance written by scripts/mailutils.sh; not for production.
logging { syslog no; };
pidfile "$pidfile.daemon";
max-children 200;
timeout 600;
tls-mode false;
mailbox { mailbox-pattern "$SPOOL_DIR/\${user}"; };
locking { type dotlock; retry-count 30; retry-sleep 1; };
auth { authorization system; authentication system; };
$extra
server 127.0.0.1:$port { tls-mode false; transcript $TRANSCRIPT; };
EOF
}

stop_one() {
    # stop_one PIDFILE CONF
    local pidfile=$1 conf=$2 pid children i
    if pid=$(daemon_pid "$pidfile" "$conf"); then
        children=$(pgrep -P "$pid" 2>/dev/null || true)
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do
            alive "$pid" || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        for i in $children; do kill -9 "$i" 2>/dev/null || true; done
    fi
    rm -f "$pidfile" "$pidfile.daemon"
}

stop_instance() {
    stop_one "$IMAP_PID" "$IMAP_CONF"
    stop_one "$POP_PID" "$POP_CONF"
}

launch() {
    # launch BINARY CONF PIDFILE LOG
    local binary=$1 conf=$2 pidfile=$3 log=$4
    : >>"$log"
    setsid "$binary" --config-file="$conf" --daemon --foreground </dev/null >>"$log" 2>&1 &
    echo $! >"$pidfile"
}

print_where() {
    echo "mailutils.sh: test imap4d/pop3d running from $DIR (logs: $IMAP_LOG, $POP_LOG)"
    echo "mailutils.sh: use it with: source $DIR/env"
    cat "$DIR/env"
}

write_env() {
    local imap=$1 pop3=$2 users
    users=$(tr '\n' ' ' <"$USERS_FILE" | sed 's/ $//')
    cat >"$DIR/env.tmp" <<EOF
export MAILMOVE_TEST_MAILUTILS_IMAP_PORT=$imap
export MAILMOVE_TEST_MAILUTILS_POP3_PORT=$pop3
export MAILMOVE_TEST_MAILUTILS_PASSWORD=$PASSWORD
export MAILMOVE_TEST_MAILUTILS_USERS="$users"
export MAILMOVE_TEST_MAILUTILS_HOME=$HOME_DIR
export MAILMOVE_TEST_MAILUTILS_SPOOL=$SPOOL_DIR
EOF
    mv "$DIR/env.tmp" "$DIR/env"
}

start() {
    if running && [ -s "$DIR/env" ]; then
        print_where
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "start needs root (system users are created)"
    stop_instance
    install_packages
    local imap4d pop3d
    imap4d=$(command -v imap4d || echo /usr/sbin/imap4d)
    pop3d=$(command -v pop3d || echo /usr/sbin/pop3d)
    [ -x "$imap4d" ] || die "imap4d not found after installing mailutils-imap4d"
    [ -x "$pop3d" ] || die "pop3d not found after installing mailutils-pop3d"

    # Fresh users, homes and spool each start: tests find empty mailboxes.
    delete_users
    mkdir -p "$HOME_DIR" "$SPOOL_DIR"
    chmod 755 "$DIR" "$HOME_DIR"
    # Like /var/mail: the users' processes create their INBOX and its dot-lock here.
    chmod 1777 "$SPOOL_DIR"
    : >"$USERS_FILE"
    local i
    for i in $(seq 1 "$POOL"); do
        make_user "mm${TAG}u$i"
    done

    local attempt ports imap pop3 ok=0
    for attempt in 1 2 3; do
        ports=$(free_ports 2)
        read -r imap pop3 <<<"$ports"
        # imap4d lets only this instance's users in; pop3d has no such statement (loopback only).
        write_conf "$IMAP_CONF" "$imap" "$IMAP_PID" "allow-groups ($GROUP);"
        write_conf "$POP_CONF" "$pop3" "$POP_PID" ""
        if ! "$imap4d" --config-file="$IMAP_CONF" --config-lint >"$DIR/config-check.log" 2>&1; then
            cat "$DIR/config-check.log" >&2
            die "imap4d rejected the generated config $IMAP_CONF"
        fi
        if ! "$pop3d" --config-file="$POP_CONF" --config-lint >"$DIR/config-check.log" 2>&1; then
            cat "$DIR/config-check.log" >&2
            die "pop3d rejected the generated config $POP_CONF"
        fi
        launch "$imap4d" "$IMAP_CONF" "$IMAP_PID" "$IMAP_LOG"
        launch "$pop3d" "$POP_CONF" "$POP_PID" "$POP_LOG"
        ok=1
        wait_port "$imap" || ok=0
        wait_port "$pop3" || ok=0
        running || ok=0
        if [ "$ok" -eq 1 ]; then break; fi
        # A port taken between choosing and binding: try fresh ports.
        stop_instance
    done
    if [ "$ok" -ne 1 ]; then
        show_log "$IMAP_LOG" "$POP_LOG"
        die "imap4d/pop3d did not accept connections on their ports"
    fi
    write_env "$imap" "$pop3"
    print_where
}

case "$ACTION" in
start)
    [ $# -eq 2 ] || usage
    start
    ;;
stop)
    [ $# -eq 2 ] || usage
    stop_instance
    delete_users
    rm -f "$DIR/env"
    echo "mailutils.sh: stopped the test imap4d/pop3d of $DIR and deleted its users"
    ;;
status)
    [ $# -eq 2 ] || usage
    if running; then
        echo "running"
    else
        echo "stopped"
        exit 1
    fi
    ;;
mkuser)
    [ $# -eq 3 ] || usage
    touch "$USERS_FILE"
    make_user "$3"
    # Keep DIR/env in step (a running instance lets the new user in at once: allow-groups).
    if [ -s "$DIR/env" ]; then
        sed -i "s|^export MAILMOVE_TEST_MAILUTILS_USERS=.*|export MAILMOVE_TEST_MAILUTILS_USERS=\"$(tr '\n' ' ' <"$USERS_FILE" | sed 's/ $//')\"|" "$DIR/env"
    fi
    echo "mailutils.sh: user $3 (password in $DIR/env)"
    ;;
*) usage ;;
esac
