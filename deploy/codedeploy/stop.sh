#!/bin/sh
# deploy/scripts/stop.sh from the release root with $HOOKS_BIN set, also under the CodeDeploy agent.
set -eu
. "$(dirname "$0")/env.sh"
exec deploy/scripts/stop.sh
