#!/bin/sh
# Renders each /etc/nginx/templates/NAME.template to /etc/nginx/conf.d/NAME, substituting only the
# environment variables whose names match NGINX_ENVSUBST_FILTER (all of them when it is unset),
# as the official nginx image does; then runs the command.
set -eu
templates=/etc/nginx/templates
if [ -d "$templates" ]; then
  names=$(env | cut -d= -f1 | grep -E "${NGINX_ENVSUBST_FILTER:-.*}" || true)
  defined=$(printf '${%s} ' $names)
  for template in "$templates"/*.template; do
    [ -e "$template" ] || continue
    out="/etc/nginx/conf.d/$(basename "$template" .template)"
    envsubst "$defined" < "$template" > "$out"
    echo "rendered $template to $out"
  done
fi
exec "$@"
