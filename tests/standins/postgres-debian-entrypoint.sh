#!/bin/sh
# Start PostgreSQL as the official image does for the team stack: on an empty data directory
# first initdb with POSTGRES_USER / POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (scram-sha-256
# over TCP) and create POSTGRES_DB. The password goes through a file in /dev/shm (a tmpfs),
# removed at once, never through a command line.
set -eu

# POSTGRES_PASSWORD_FILE (a compose secret) as the official image reads it.
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
  POSTGRES_PASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"
fi
: "${POSTGRES_PASSWORD:?postgres-entrypoint: POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) is not set}"
user="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$user}"
as_postgres="setpriv --reuid=postgres --regid=postgres --init-groups --"

mkdir -p "$PGDATA"
chown postgres:postgres "$PGDATA"
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  password_file="$(mktemp /dev/shm/pgpass.XXXXXX)"
  trap 'rm -f "$password_file"' EXIT
  printf '%s' "$POSTGRES_PASSWORD" >"$password_file"
  chown postgres "$password_file"
  $as_postgres initdb -D "$PGDATA" -U "$user" --pwfile="$password_file" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$password_file"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  # Local socket only while the database is created.
  $as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [ "$database" != postgres ]; then
    $as_postgres psql -v ON_ERROR_STOP=1 -U "$user" -d postgres -q \
      -c "CREATE DATABASE \"$database\""
  fi
  # The official image's init scripts, as it runs them: as postgres, on the local socket.
  export POSTGRES_USER="$user" POSTGRES_DB="$database"
  for script in /docker-entrypoint-initdb.d/*.sh; do
    [ -e "$script" ] || continue
    $as_postgres sh "$script"
  done
  $as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "postgres-entrypoint: initialised $PGDATA with user $user and database $database"
fi
exec $as_postgres postgres -D "$PGDATA" -c listen_addresses='*'
