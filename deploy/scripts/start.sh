#!/bin/sh
# ApplicationStart: start this release's sample service detached, with its output in
# run/service.log (shared across releases), its config named by CONFIG_PATH.
set -eu
export CONFIG_PATH="$PWD/config/service.yml"
exec "${HOOKS_BIN:-hooks}" proc start --pidfile run/service.pid --log run/service.log -- "$PWD/bin/sample-service"
