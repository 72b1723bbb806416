#!/usr/bin/env bash
# Throwaway PostgreSQL 15 cluster for tests (independent of any system cluster).
# Usage:
#   scripts/tools/postgres.sh start DIR [PORT]   prints DATABASE_URL=postgres://postgres@127.0.0.1:PORT/tacit
#                                                (and PG_CA_FILE, PG_PASSWORD_URL: below)
#   scripts/tools/postgres.sh stop DIR
# DIR holds the cluster (DIR/data), its log (DIR/log), its unix socket and DIR/port; it is
# created if missing and chowned to the `postgres` user when run as root. Trust auth,
# fsync=off, listens on 127.0.0.1 only. Default port 55432, or the next free one if busy;
# an explicit PORT that is busy is an error. `start` on a running cluster just prints its
# URL again; `stop` on a stopped one is a no-op. Installs postgresql-15 if missing (root).
# TLS is on (ssl=on; plain connections still work) with a throwaway CA made by openssl
# in DIR/tls: the server's certificate names localhost and 127.0.0.1, and PG_CA_FILE is
# the CA that verifies it. One role, tacit_password, logs in only with its password
# (scram-sha-256), for tests of a wrong password: PG_PASSWORD_URL has the right one.
set -euo pipefail

PG_MAJOR=15
DEFAULT_PORT=55432
DB=tacit

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
  sed -n '3,5p' "$0" >&2
  exit 2
}

PGBIN="/usr/lib/postgresql/$PG_MAJOR/bin"

# Run as the postgres user when root (initdb refuses root), else as ourselves.
as_pg() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

running() { [ -f "$DATA/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

url() { printf 'postgres://postgres@127.0.0.1:%s/%s' "$1" "$DB"; }

PASSWORD_ROLE=tacit_password
PASSWORD=tacit-right-password

# A CA and a server certificate for localhost / 127.0.0.1, made once per DIR.
make_tls() {
  local tls="$DIR/tls"
  [ -f "$tls/server.key" ] && return 0
  command -v openssl >/dev/null || apt_install openssl
  mkdir -p "$tls"
  (
    cd "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=tacit test CA" \
      -keyout ca.key -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
      -extfile ext.cnf -out server.pem
  ) >"$DIR/tls.log" 2>&1 || {
    cat "$DIR/tls.log" >&2
    die "making the TLS certificates failed"
  }
  chmod 600 "$tls/server.key" "$tls/ca.key"
  chmod 644 "$tls/ca.pem" "$tls/server.pem"
  is_root && chown -R postgres: "$tls"
  return 0
}

start() {
  [ -x "$PGBIN/initdb" ] || apt_install "postgresql-$PG_MAJOR"
  [ -x "$PGBIN/initdb" ] || die "$PGBIN/initdb missing after installing postgresql-$PG_MAJOR"
  if is_root; then id postgres >/dev/null 2>&1 || die "no 'postgres' user (reinstall postgresql-$PG_MAJOR)"; fi
  mkdir -p "$DIR"
  is_root && chown postgres: "$DIR"
  if ! as_pg test -w "$DIR" -a -x "$DIR"; then
    local p="" part parts
    IFS=/ read -ra parts <<<"${DIR#/}"
    for part in "${parts[@]}"; do
      p="$p/$part"
      as_pg test -x "$p" || break
    done
    die "the postgres user cannot reach $DIR: $p is not searchable by it (mktemp -d makes 0700 dirs: chmod 755 it)"
  fi
  cd "$DIR" # initdb/psql as postgres must be able to stat their cwd

  local port
  if running; then
    port="$(cat "$DIR/port")"
    log "already running on port $port"
  else
    [ -z "$WANT_PORT" ] || ! port_busy "$WANT_PORT" || die "port $WANT_PORT is busy"
    if ! [ -f "$DATA/PG_VERSION" ]; then
      rm -rf "$DATA"
      log "initdb $DATA"
      as_pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 \
        >"$DIR/initdb.log" 2>&1 || {
        tail -n 20 "$DIR/initdb.log" >&2
        die "initdb failed (log: $DIR/initdb.log)"
      }
      # The password role first: pg_hba.conf is read top down, first match wins.
      local hba="$DATA/pg_hba.conf"
      as_pg sh -c "{ echo 'host all $PASSWORD_ROLE 127.0.0.1/32 scram-sha-256'; cat '$hba'; } >'$hba.new' && mv '$hba.new' '$hba'"
    fi
    make_tls
    local tries=0
    while :; do
      if [ -n "$WANT_PORT" ]; then
        port="$WANT_PORT"
        ! port_busy "$port" || die "port $port is busy"
      else
        port="$(free_port "${port:-$DEFAULT_PORT}")"
      fi
      local sock="$DIR/.s.PGSQL.$port"
      [ "${#sock}" -le 100 ] || die "socket path too long (${#sock} > 100 chars): $sock; use a shorter DIR"
      log "starting on 127.0.0.1:$port"
      if as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$DIR/log" -w -t 60 \
        -o "-p $port -k '$DIR' -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c ssl=on -c ssl_cert_file='$DIR/tls/server.pem' -c ssl_key_file='$DIR/tls/server.key'" \
        start >/dev/null 2>&1; then
        break
      fi
      tries=$((tries + 1))
      if [ -n "$WANT_PORT" ] || [ "$tries" -ge 5 ] || ! grep -q 'could not bind\|already in use' "$DIR/log"; then
        tail -n 20 "$DIR/log" >&2
        die "pg_ctl start failed (log: $DIR/log)"
      fi
      port=$((port + 1)) # lost a race for the port: try the next one
    done
    echo "$port" >"$DIR/port"
  fi
  local exists
  exists="$(as_pg "$PGBIN/psql" -h "$DIR" -p "$port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$DB'")" || die "psql failed (log: $DIR/log)"
  if [ "$exists" != 1 ]; then
    as_pg "$PGBIN/createdb" -h "$DIR" -p "$port" -U postgres "$DB" || die "createdb $DB failed"
  fi
  as_pg "$PGBIN/psql" -h "$DIR" -p "$port" -U postgres -d postgres -qtAc \
    "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PASSWORD_ROLE') THEN CREATE ROLE $PASSWORD_ROLE LOGIN PASSWORD '$PASSWORD'; END IF; END \$\$" \
    >/dev/null || die "creating the role $PASSWORD_ROLE failed"
  # Its own database (PostgreSQL 15 lets nobody but the owner create in `public`).
  exists="$(as_pg "$PGBIN/psql" -h "$DIR" -p "$port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$PASSWORD_ROLE'")" || die "psql failed (log: $DIR/log)"
  if [ "$exists" != 1 ]; then
    as_pg "$PGBIN/createdb" -h "$DIR" -p "$port" -U postgres -O "$PASSWORD_ROLE" "$PASSWORD_ROLE" ||
      die "createdb $PASSWORD_ROLE failed"
  fi
  log "ready"
  emit DATABASE_URL "$(url "$port")"
  emit PG_CA_FILE "$DIR/tls/ca.pem"
  emit PG_PASSWORD_URL "postgres://$PASSWORD_ROLE:$PASSWORD@127.0.0.1:$port/$PASSWORD_ROLE"
}

stop() {
  if [ -d "$DIR" ] && running; then
    cd "$DIR"
    as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null || die "pg_ctl stop failed (log: $DIR/log)"
    log "stopped"
  else
    log "not running"
  fi
}

[ "$#" -ge 2 ] || usage
cmd="$1"
DIR="$(mkdir -p "$2" && cd "$2" && pwd -P)" || die "cannot create $2"
DATA="$DIR/data"
WANT_PORT="${3:-}"
case "$WANT_PORT" in "" | [0-9]*) ;; *) die "PORT must be a number: $WANT_PORT" ;; esac
case "$cmd" in
  start) start ;;
  stop)
    [ "$#" -eq 2 ] || usage
    stop
    ;;
  *) usage ;;
esac
