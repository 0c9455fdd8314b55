#!/bin/sh
# Creates what Docker Compose and Docker Swarm need, once:
#   .env                                    settings, copied from .env.example
#   deploy/secrets/postgres-password        password of the PostgreSQL role `forgettable`
#   deploy/secrets/grafana-admin-password   Grafana's `admin` password
#   deploy/secrets/jwt-ed25519.pem          the Ed25519 key users_service signs access tokens with
#   deploy/secrets/ca.crt, ca.key           a local certificate authority (trust ca.crt in curl,
#                                           Postman or a browser to reach the gateway over HTTPS)
#   deploy/secrets/tls.crt, tls.key         the gateway's certificate for users.localhost,
#                                           images.localhost, inference.localhost, error.localhost,
#                                           signed by that authority
# Existing files are kept, so running it again never rotates a secret by accident; delete a file
# to have it made anew (tls.crt is made anew when it is missing, as long as the authority exists).
# A POSTGRES_PASSWORD or GRAFANA_ADMIN_PASSWORD left in an older .env becomes the password file,
# so a database created with it keeps working.
#
# Usage: deploy/gen-secrets.sh [PROJECT_DIR]   (default: the repository this script belongs to)
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
project=${1:-$repo}
command -v openssl >/dev/null || { echo "gen-secrets: openssl is needed (apt-get install openssl)" >&2; exit 1; }

umask 077
secrets="$project/deploy/secrets"
mkdir -p "$secrets"
# The directory keeps other host users out. The files Compose bind-mounts as secrets keep their
# host mode there, so they must be readable by the containers' unprivileged users (mode 644);
# the authority's key is never mounted (mode 600).
chmod 700 "$secrets"

if [ -e "$project/.env" ]; then
  echo "gen-secrets: $project/.env exists, kept"
else
  cp "$repo/.env.example" "$project/.env.tmp"
  mv "$project/.env.tmp" "$project/.env"
  echo "gen-secrets: wrote $project/.env"
fi

# write FILE MODE: standard input becomes FILE, atomically, unless FILE exists.
write() {
  if [ -e "$1" ]; then
    cat >/dev/null
    echo "gen-secrets: $1 exists, kept"
  else
    cat > "$1.tmp"
    chmod "$2" "$1.tmp"
    mv "$1.tmp" "$1"
    echo "gen-secrets: wrote $1"
  fi
}

# password FILE VARIABLE: the value VARIABLE has in an older .env, or a new random one.
password() {
  old=$(sed -n "s/^$2=//p" "$project/.env" | tail -n 1)
  if [ -n "$old" ] && [ "$old" != change-me ]; then
    printf '%s' "$old" | write "$1" 644
  else
    openssl rand -hex 24 | tr -d '\n' | write "$1" 644
  fi
}
password "$secrets/postgres-password" POSTGRES_PASSWORD
password "$secrets/grafana-admin-password" GRAFANA_ADMIN_PASSWORD

if [ ! -e "$secrets/jwt-ed25519.pem" ]; then
  openssl genpkey -algorithm ed25519 | write "$secrets/jwt-ed25519.pem" 644
else
  echo "gen-secrets: $secrets/jwt-ed25519.pem exists, kept"
fi

# The certificate authority: ten years, never overwritten (clients trust it once).
if [ ! -e "$secrets/ca.key" ]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc \
    -keyout "$secrets/ca.key.tmp" -out "$secrets/ca.crt.tmp" -days 3650 \
    -subj "/O=Forgettable Images/CN=Forgettable Images local CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  chmod 600 "$secrets/ca.key.tmp"
  chmod 644 "$secrets/ca.crt.tmp"
  mv "$secrets/ca.crt.tmp" "$secrets/ca.crt"
  mv "$secrets/ca.key.tmp" "$secrets/ca.key"
  echo "gen-secrets: wrote $secrets/ca.crt (the local certificate authority; its key is ca.key)"
else
  echo "gen-secrets: $secrets/ca.key exists, kept"
fi

# The gateway's certificate: 397 days, the longest browsers accept.
if [ ! -e "$secrets/tls.crt" ] || [ ! -e "$secrets/tls.key" ]; then
  extensions="$secrets/tls.ext.tmp"
  cat > "$extensions" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:users.localhost, DNS:images.localhost, DNS:inference.localhost, DNS:error.localhost
EOF
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc \
    -keyout "$secrets/tls.key.tmp" -out "$secrets/tls.csr.tmp" \
    -subj "/O=Forgettable Images/CN=users.localhost" 2>/dev/null
  openssl x509 -req -in "$secrets/tls.csr.tmp" -CA "$secrets/ca.crt" -CAkey "$secrets/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 397 -extfile "$extensions" \
    -out "$secrets/tls.crt.tmp" 2>/dev/null
  rm -f "$extensions" "$secrets/tls.csr.tmp"
  chmod 644 "$secrets/tls.key.tmp" "$secrets/tls.crt.tmp"
  mv "$secrets/tls.key.tmp" "$secrets/tls.key"
  mv "$secrets/tls.crt.tmp" "$secrets/tls.crt"
  echo "gen-secrets: wrote $secrets/tls.crt for users, images, inference and error.localhost"
else
  echo "gen-secrets: $secrets/tls.crt exists, kept"
fi
