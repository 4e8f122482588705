#!/usr/bin/env bash
# A throw-away Dovecot (IMAP + POP3, plain/STARTTLS and implicit TLS) on loopback, for tests.
#
#   scripts/dovecot.sh start DIR   install Dovecot if missing, configure an instance under DIR, start it,
#                                  write DIR/env (source it before `cargo test`)
#   scripts/dovecot.sh stop DIR    stop that instance
#   scripts/dovecot.sh status DIR  exit 0 when the instance under DIR is running
#
# The instance is ours alone: its own config, base_dir, state_dir, log file (DIR/dovecot.log), a
# throw-away CA (DIR/ca.pem) and a server certificate for localhost/127.0.0.1, free ports chosen here.
# The system Dovecot service is never started. Any user name logs in with the shared password
# written to DIR/env (MAILMOVE_TEST_PASSWORD); any other password is refused. Users are created on first
# login; their Maildir lives in DIR/home/<user>/Maildir, owned by the system user `mailmovetest`
# (Dovecot refuses uid 0 for mail): a test that seeds a Maildir directly must chown what it writes to
# MAILMOVE_TEST_MAIL_USER.
#
# MAILMOVE_DOVECOT_MAIL_LOCATION (default maildir:~/Maildir) sets the store, e.g. mdbox:~/mdbox for
# benchmarks at scale (Dovecot's Maildir appends slow to a crawl as a folder grows: each one syncs
# the folder's directory). MAILMOVE_DOVECOT_VSZ_LIMIT (default 256M, Dovecot's own) is an imap
# process's address-space limit: a folder of a million messages needs more (its index map grew past
# 256 MB at 924,000 messages and the process died with "Out of memory").
#
# Runs as root on Debian 12 with only package-registry network. Idempotent: `start` on a running
# instance only rewrites nothing and prints where it is; `stop` on a stopped one does nothing.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PASSWORD="mailmove-test"
MAIL_USER="mailmovetest"

die() {
    echo "dovecot.sh: error: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start|stop|status DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
ACTION=$1
DIR_ARG=$2

mkdir -p "$DIR_ARG"
DIR=$(cd "$DIR_ARG" && pwd -P)
CONF="$DIR/dovecot.conf"
RUN="$DIR/run"
LOG="$DIR/dovecot.log"

show_log() {
    if [ -f "$LOG" ]; then
        echo "---- last lines of $LOG ----" >&2
        tail -n 40 "$LOG" >&2 || true
        echo "----" >&2
    fi
}

find_dovecot() {
    local d
    for d in "$(command -v dovecot 2>/dev/null || true)" /usr/sbin/dovecot /usr/local/sbin/dovecot; do
        if [ -n "$d" ] && [ -x "$d" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

master_pid() {
    # Prints the pid of this instance's master process when it is alive.
    local pid
    [ -f "$RUN/master.pid" ] || return 1
    pid=$(tr -dc '0-9' <"$RUN/master.pid")
    [ -n "$pid" ] || return 1
    alive "$pid" || return 1
    # A recycled pid is not ours: the master's cmdline names our config.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CONF" || return 1
    echo "$pid"
}

install_packages() {
    apt_install_missing dovecot.sh dovecot-imapd dovecot-pop3d openssl
    # Should a service manager have started the system instance anyway, stop it: it would hold
    # nothing of ours but it listens on the standard ports.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet dovecot 2>/dev/null; then
        systemctl stop dovecot 2>/dev/null || true
    fi
}

ensure_mail_user() {
    if ! id -u "$MAIL_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$MAIL_USER" ||
            die "cannot create system user $MAIL_USER"
    fi
}

write_conf() {
    local imap=$1 imaps=$2 pop3=$3 pop3s=$4 dh=""
    if [ -s /usr/share/dovecot/dh.pem ]; then dh="ssl_dh = </usr/share/dovecot/dh.pem"; fi
    cat >"$CONF" <<EOF
# Throw-away test instance written by scripts/dovecot.sh; not for production.
base_dir = $RUN
state_dir = $DIR/state
instance_name = mailmove-test-$(echo "$DIR" | cksum | cut -d' ' -f1)
log_path = $LOG
info_log_path = $LOG
debug_log_path = $LOG
auth_verbose = yes
protocols = imap pop3
listen = 127.0.0.1
shutdown_clients = yes

ssl = yes
ssl_cert = <$DIR/server.pem
ssl_key = <$DIR/server.key
$dh

# Tests log in over plain TCP too (tls=none); never do this outside a test.
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_cache_size = 0

# One password for every user name; any other password is refused.
passdb {
  driver = static
  args = password=$PASSWORD
}
# A user with a quota or a size limit has a file of its own in quota-users/, written by a test
# (name::uid:gid::home::userdb_quota_rule=*:storage=20M userdb_quota_max_mail_size=1M; the
# userdb_ prefix is what makes a passwd-file userdb take them): one file a user, so that no
# test's line waits for Dovecot to notice that a shared file changed. Everyone else has none.
userdb {
  driver = passwd-file
  args = $DIR/quota-users/%u
}
userdb {
  driver = static
  args = uid=$MAIL_USER gid=$MAIL_USER home=$DIR/home/%u
}
first_valid_uid = 1
first_valid_gid = 1
mail_location = ${MAILMOVE_DOVECOT_MAIL_LOCATION:-maildir:~/Maildir}
# Quotas (RFC 9208 GETQUOTAROOT, OVERQUOTA) and a largest message, per user from quota-users.
mail_plugins = \$mail_plugins quota
plugin {
  quota = count:User quota
  quota_vsizes = yes
}
mail_max_userip_connections = 200

namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \\Sent
    auto = no
  }
  mailbox Drafts {
    special_use = \\Drafts
    auto = no
  }
  mailbox Trash {
    special_use = \\Trash
    auto = no
  }
  mailbox Junk {
    special_use = \\Junk
    auto = no
  }
  mailbox Archive {
    special_use = \\Archive
    auto = no
  }
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $imaps
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $pop3
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = $pop3s
    ssl = yes
  }
}
protocol imap {
  mail_max_userip_connections = 200
  mail_plugins = \$mail_plugins imap_quota
}
service imap {
  vsz_limit = ${MAILMOVE_DOVECOT_VSZ_LIMIT:-256M}
}
EOF
}

stop_instance() {
    local pid children="" i dovecot
    if ! pid=$(master_pid); then
        # Not running (or a stale pid file that Dovecot would take for a running instance).
        rm -f "$RUN/master.pid"
        return 0
    fi
    children=$(pgrep -P "$pid" 2>/dev/null || true)
    dovecot=$(find_dovecot) || true
    if [ -n "${dovecot:-}" ]; then
        "$dovecot" -c "$CONF" stop 2>/dev/null || kill "$pid" 2>/dev/null || true
    else
        kill "$pid" 2>/dev/null || true
    fi
    for i in $(seq 1 50); do
        alive "$pid" || break
        sleep 0.1
    done
    # Leftovers: the master if it hangs, and the children we saw before stopping it.
    kill -9 "$pid" 2>/dev/null || true
    for i in $children; do kill -9 "$i" 2>/dev/null || true; done
    rm -f "$RUN/master.pid"
}

print_where() {
    echo "dovecot.sh: test Dovecot running from $DIR (log: $LOG)"
    echo "dovecot.sh: use it with: source $DIR/env"
    cat "$DIR/env"
}

start() {
    if master_pid >/dev/null && [ -s "$DIR/env" ]; then
        print_where
        return 0
    fi
    stop_instance
    install_packages
    local dovecot
    dovecot=$(find_dovecot) || die "dovecot binary not found after installing dovecot-imapd"
    ensure_mail_user
    # Unix sockets live under base_dir; their path must stay under ~100 bytes.
    [ ${#RUN} -le 70 ] || die "DIR is too deep for Dovecot's unix sockets (use a short path such as /tmp/mm-dovecot)"
    mkdir -p "$RUN" "$DIR/state" "$DIR/home"
    chmod 755 "$DIR"
    chown "$MAIL_USER:$MAIL_USER" "$DIR/home"
    chmod 755 "$DIR/home"
    make_certs
    mkdir -p "$DIR/quota-users"
    chmod 755 "$DIR/quota-users"

    local attempt ports imap imaps pop3 pop3s ok
    for attempt in 1 2 3; do
        ports=$(free_ports 4)
        read -r imap imaps pop3 pop3s <<<"$ports"
        write_conf "$imap" "$imaps" "$pop3" "$pop3s"
        if ! "$dovecot" -c "$CONF" -n >/dev/null 2>"$DIR/config-check.log"; then
            cat "$DIR/config-check.log" >&2
            die "Dovecot rejected the generated config $CONF"
        fi
        : >>"$LOG"
        if ! "$dovecot" -c "$CONF" 2>>"$LOG"; then
            show_log
            die "dovecot -c $CONF failed to start"
        fi
        ok=1
        for p in $imap $imaps $pop3 $pop3s; do
            wait_port "$p" || ok=0
        done
        if [ "$ok" -eq 1 ]; then break; fi
        # A port taken between choosing and binding: try fresh ports.
        stop_instance
    done
    if [ "$ok" -ne 1 ]; then
        show_log
        die "Dovecot did not accept connections on its ports"
    fi

    cat >"$DIR/env.tmp" <<EOF
export MAILMOVE_TEST_IMAP_PORT=$imap
export MAILMOVE_TEST_IMAPS_PORT=$imaps
export MAILMOVE_TEST_POP3_PORT=$pop3
export MAILMOVE_TEST_POP3S_PORT=$pop3s
export MAILMOVE_TEST_CA=$DIR/ca.pem
export MAILMOVE_TEST_PASSWORD=$PASSWORD
export MAILMOVE_TEST_DOVECOT_QUOTA_USERS=$DIR/quota-users
export MAILMOVE_TEST_HOME=$DIR/home
export MAILMOVE_TEST_MAIL_USER=$MAIL_USER
EOF
    mv "$DIR/env.tmp" "$DIR/env"
    print_where
}

case "$ACTION" in
start) start ;;
stop)
    stop_instance
    echo "dovecot.sh: stopped the test Dovecot of $DIR"
    ;;
status)
    if master_pid >/dev/null; then
        echo "running"
    else
        echo "stopped"
        exit 1
    fi
    ;;
*) usage ;;
esac
