#!/bin/sh
# Entry point of the inference image: shows the model's licence note in the container log, then
# runs the service in its place (so it receives the stop signal directly).
set -eu
note="${MODEL_DIR:-/app/model}/LICENCE-NOTE.txt"
if [ -r "$note" ]; then
  echo "Model licence: $(cat "$note")"
fi
exec "$(dirname "$0")/service" "$@"
