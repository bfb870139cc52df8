#!/bin/sh
# ValidateService: the deployment succeeds only when /health (which checks the database)
# answers 200 within 30 s, as tribist's wait_for_it did.
set -eu
listen=$(sed -n 's/^listen:[[:space:]]*//p' config/service.yml | tr -d "\"'")
exec "${HOOKS_BIN:-hooks}" wait-for "http://$listen/health" --timeout 30
