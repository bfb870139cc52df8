# Sourced by the scripts in this directory. The CodeDeploy agent starts hook scripts in its own
# directory with only its variables set, so: go to the bundle root (two levels up; under the
# agent, hooks turns the unpacked revision into a link to the release), read the server's
# settings (HOOKS_ROOT, HOOKS_BIN) from /etc/default/hooks, and find `hooks`: the one running
# this deployment, else the bundle's bin/hooks, else the one on PATH.
bundle=$(cd "$(dirname "$0")/../.." && pwd)
cd "$bundle"
if [ -z "${HOOKS_ENGINE_PID:-}" ]; then
    defaults=${HOOKS_DEFAULTS:-/etc/default/hooks}
    if [ -r "$defaults" ]; then
        set -a
        . "$defaults"
        set +a
    fi
fi
if [ -z "${HOOKS_BIN:-}" ]; then
    if [ -x "$bundle/bin/hooks" ]; then
        HOOKS_BIN=$bundle/bin/hooks
    else
        HOOKS_BIN=$(command -v hooks || echo /usr/local/bin/hooks)
    fi
fi
export HOOKS_BIN
