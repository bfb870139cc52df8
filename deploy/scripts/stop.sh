#!/bin/sh
# ApplicationStop: stop the sample service started by the previous release (SIGTERM, drain,
# SIGKILL after 30 s). Idempotent: nothing running is fine.
set -eu
"${HOOKS_BIN:-hooks}" proc stop --pidfile run/service.pid --timeout 30
