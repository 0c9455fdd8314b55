#!/bin/sh
# First start on an empty PGDATA: create the cluster and run the init scripts with the server
# listening on its socket only (so a TCP health check turns healthy only afterwards); then run
# the server in the foreground on every address.
set -eu
# POSTGRES_PASSWORD_FILE (e.g. a Docker secret under /run/secrets) as in the official image. Its
# trailing line breaks (LF or CRLF) are dropped, as the services do with DATABASE_PASSWORD_FILE.
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    echo "POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are exclusive; set only one" >&2
    exit 1
  fi
  POSTGRES_PASSWORD=$(cat -- "$POSTGRES_PASSWORD_FILE") || {
    echo "POSTGRES_PASSWORD_FILE: cannot read $POSTGRES_PASSWORD_FILE" >&2
    exit 1
  }
  cr=$(printf '\r')
  newline='
'
  while :; do
    case $POSTGRES_PASSWORD in
      *"$cr" | *"$newline") POSTGRES_PASSWORD=${POSTGRES_PASSWORD%?} ;;
      *) break ;;
    esac
  done
  if [ -z "$POSTGRES_PASSWORD" ]; then
    echo "POSTGRES_PASSWORD_FILE: $POSTGRES_PASSWORD_FILE holds no password" >&2
    exit 1
  fi
fi
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  password_file=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" > "$password_file"
  initdb --pgdata="$PGDATA" --username="$user" --pwfile="$password_file" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8
  rm -f "$password_file"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses=''" --wait start
  if [ "$database" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres -c "CREATE DATABASE \"$database\""
  fi
  for script in /docker-entrypoint-initdb.d/*.sql; do
    [ -e "$script" ] || continue
    echo "running $script"
    psql -v ON_ERROR_STOP=1 --username="$user" --dbname="$database" -f "$script"
  done
  pg_ctl --pgdata="$PGDATA" --mode=fast --wait stop
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
