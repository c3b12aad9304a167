#!/usr/bin/env bash
# A throwaway OpenSSH server on loopback for the ssh transport's tests and benchmark.
#
#   tests/cluster/sshd.sh up     install openssh-server if missing, start sshd (idempotent)
#   tests/cluster/sshd.sh down   stop it (by its recorded PID, never by name)
#   tests/cluster/sshd.sh env    print shell assignments: eval "$(tests/cluster/sshd.sh env)"
#
# Everything lives under one state dir (SMLPLAY_SSH_DIR, default /tmp/smlplay-ssh): the sshd
# config, its own host key, an ed25519 client key authorised for the current user, and a
# known_hosts file so clients can check the host key strictly. It listens on 127.0.0.1 only
# (port SMLPLAY_SSHD_PORT, default 2222); the system's sshd configuration is never touched.
set -euo pipefail

DIR="${SMLPLAY_SSH_DIR:-/tmp/smlplay-ssh}"
PORT="${SMLPLAY_SSHD_PORT:-2222}"
SSHD=/usr/sbin/sshd
CONFIG="$DIR/sshd_config"
PIDFILE="$DIR/sshd.pid"

log() { printf 'sshd.sh: %s\n' "$*" >&2; }

# Install openssh-server without letting its maintainer scripts start the system sshd on
# 0.0.0.0:22: a policy-rc.d that exits 101 forbids service starts (the image usually ships
# one; if not, ours is removed again afterwards).
install_sshd() {
    [[ -x "$SSHD" ]] && return 0
    if [[ $(id -u) -ne 0 ]]; then
        log "openssh-server is not installed and installing it needs root"
        return 1
    fi
    local policy=/usr/sbin/policy-rc.d ours=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        ours=1
    fi
    log "installing openssh-server"
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                openssh-server
    } >"$DIR/apt.log" 2>&1 || rc=$?
    [[ $ours -eq 1 ]] && rm -f "$policy"
    if [[ $rc -ne 0 ]]; then
        log "apt-get failed (rc=$rc); see $DIR/apt.log"
        return "$rc"
    fi
}

running() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid=$(<"$PIDFILE")
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

write_keys() {
    [[ -f "$DIR/ssh_host_ed25519_key" ]] ||
        ssh-keygen -q -t ed25519 -N '' -C smlplay-test-host -f "$DIR/ssh_host_ed25519_key"
    [[ -f "$DIR/id_ed25519" ]] ||
        ssh-keygen -q -t ed25519 -N '' -C smlplay-test-client -f "$DIR/id_ed25519"
    cp "$DIR/id_ed25519.pub" "$DIR/authorized_keys"
    # Readable by every user: sshd reads it after dropping to the user logging in (the
    # benchmark's --clean-home logs in as a second user with the same key).
    chmod 644 "$DIR/authorized_keys"
    local host="[127.0.0.1]:$PORT"
    [[ "$PORT" == 22 ]] && host=127.0.0.1
    local type key _comment
    read -r type key _comment <"$DIR/ssh_host_ed25519_key.pub"
    printf '%s %s %s\n' "$host" "$type" "$key" >"$DIR/known_hosts"
}

write_config() {
    # StrictModes no: the authorized_keys file sits in the state dir (under world-writable
    # /tmp), not in the user's home, which sshd would otherwise refuse.
    # PYENV_REHASH_TIMEOUT: where ~/.bashrc runs `pyenv init` (this project's machines), a
    # login shell killed during its `pyenv rehash` (the fault tests kill sessions) leaves the
    # rehash lock behind, and every later login would wait 60 s for it; give up after 1 s.
    cat >"$CONFIG" <<EOF
ListenAddress 127.0.0.1
Port $PORT
HostKey $DIR/ssh_host_ed25519_key
PidFile $PIDFILE
AuthorizedKeysFile $DIR/authorized_keys
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
AllowTcpForwarding yes
MaxSessions 32
MaxStartups 64:30:128
LogLevel ERROR
Subsystem sftp internal-sftp
SetEnv PYENV_REHASH_TIMEOUT=1
EOF
}

up() {
    mkdir -p "$DIR"
    chmod 711 "$DIR" # other users may open authorized_keys by name, not list the dir
    if running && listening; then
        return 0
    fi
    install_sshd
    mkdir -p /run/sshd
    chmod 755 /run/sshd
    write_keys
    write_config
    rm -f "$PIDFILE"
    "$SSHD" -f "$CONFIG" -E "$DIR/sshd.log"
    local i
    for ((i = 0; i < 100; i++)); do
        if running && listening; then
            return 0
        fi
        sleep 0.05
    done
    log "sshd did not come up on 127.0.0.1:$PORT; see $DIR/sshd.log"
    tail -n 20 "$DIR/sshd.log" >&2 || true
    return 1
}

down() {
    running || { rm -f "$PIDFILE"; return 0; }
    local pid i
    pid=$(<"$PIDFILE")
    kill "$pid"
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$PIDFILE"
}

print_env() {
    printf 'SMLPLAY_SSH_DIR=%q\n' "$DIR"
    printf 'SMLPLAY_SSH_HOST=127.0.0.1\n'
    printf 'SMLPLAY_SSH_PORT=%q\n' "$PORT"
    printf 'SMLPLAY_SSH_USER=%q\n' "$(id -un)"
    printf 'SMLPLAY_SSH_KEY=%q\n' "$DIR/id_ed25519"
    printf 'SMLPLAY_SSH_KNOWN_HOSTS=%q\n' "$DIR/known_hosts"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    env) print_env ;;
    *)
        echo "usage: $0 up|down|env" >&2
        exit 2
        ;;
esac
