#!/bin/sh
# Creates the secrets Docker Compose needs, once:
#   .env                          random POSTGRES_PASSWORD and GRAFANA_ADMIN_PASSWORD (from .env.example)
#   deploy/secrets/jwt-ed25519.pem  the Ed25519 key users_service signs access tokens with
# Existing files are kept, so running it again never rotates a secret by accident.
#
# Usage: deploy/gen-secrets.sh [PROJECT_DIR]   (default: the repository this script belongs to)
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
project=${1:-$repo}
command -v openssl >/dev/null || { echo "gen-secrets: openssl is needed (apt-get install openssl)" >&2; exit 1; }

umask 077
random_password() { openssl rand -hex 24; }

if [ -e "$project/.env" ]; then
  echo "gen-secrets: $project/.env exists, kept"
else
  sed -e "s/^POSTGRES_PASSWORD=.*/POSTGRES_PASSWORD=$(random_password)/" \
      -e "s/^GRAFANA_ADMIN_PASSWORD=.*/GRAFANA_ADMIN_PASSWORD=$(random_password)/" \
      "$repo/.env.example" > "$project/.env.tmp"
  mv "$project/.env.tmp" "$project/.env"
  echo "gen-secrets: wrote $project/.env"
fi

secrets="$project/deploy/secrets"
key="$secrets/jwt-ed25519.pem"
mkdir -p "$secrets"
# The directory keeps other host users out. The key itself must be readable by the containers'
# unprivileged user (Compose bind-mounts it at /run/secrets/jwt_signing_key with its host mode).
chmod 700 "$secrets"
if [ -e "$key" ]; then
  echo "gen-secrets: $key exists, kept"
else
  openssl genpkey -algorithm ed25519 -out "$key.tmp"
  chmod 644 "$key.tmp"
  mv "$key.tmp" "$key"
  echo "gen-secrets: wrote $key"
fi
