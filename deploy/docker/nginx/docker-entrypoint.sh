#!/bin/sh
# Entry point of the nginx:stable image that scripts/stack-images makes from Debian's packages.
# Like the official image it renders /etc/nginx/templates/*.template into /etc/nginx/conf.d/
# with the environment, so compose files set server names (and the like) per environment.
# Only variables that are set are replaced: nginx's own `$host` & co. stay as they are.
set -eu

if [ "${1:-}" = nginx ] && [ -d /etc/nginx/templates ]; then
    names=$(export -p | while read -r _ assignment; do printf '${%s} ' "${assignment%%=*}"; done)
    for template in /etc/nginx/templates/*.template; do
        [ -f "$template" ] || continue
        base=${template##*/}
        envsubst "$names" <"$template" >"/etc/nginx/conf.d/${base%.template}"
        echo "docker-entrypoint: rendered /etc/nginx/conf.d/${base%.template}"
    done
fi
exec "$@"
