#!/bin/sh
# deploy/scripts/validate.sh through `hooks run-hook --script`: under the CodeDeploy agent it runs in
# <root>/releases/<id>, its output goes into hooks' deployment log, and a failure is recorded in
# the history (the agent calls no hook after a failing script). Under `hooks deploy` run-hook
# just executes it.
set -eu
. "$(dirname "$0")/env.sh"
exec "$HOOKS_BIN" run-hook --archive "$bundle" --script deploy/scripts/validate.sh
