# Sourced by the scripts in this directory. The CodeDeploy agent starts hook scripts in its own
# directory with its whole environment, so:
# - $bundle is the revision as the agent names it (its deployment-archive, which hooks turns
#   into a link to the release); the scripts then change into the release itself (cd -P:
#   <root>/releases/<id>), so a path a service derives from its working directory (CONFIG_PATH,
#   pid files) stays valid after the agent deletes its old deployment folders.
# - Unless `hooks deploy` started this script (HOOKS_ENGINE_PID is our parent's pid), hooks'
#   settings come from /etc/default/hooks (HOOKS_DEFAULTS names another file) and nothing else:
#   a HOOKS_ROOT, HOOKS_BIN or HOOKS_ENGINE_PID in the agent's environment is dropped.
# - `hooks` is the one running this deployment ($HOOKS_BIN), else the bundle's bin/hooks, else
#   the one on PATH.
bundle=$(cd "$(dirname "$0")/../.." && pwd)
cd -P "$bundle"
if [ "${HOOKS_ENGINE_PID:-}" != "$PPID" ]; then
    unset HOOKS_ENGINE_PID HOOKS_ROOT HOOKS_BIN
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
