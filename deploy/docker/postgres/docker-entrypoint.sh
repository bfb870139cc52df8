#!/bin/sh
# Entry point of the postgres:15 image that scripts/stack-images makes from Debian's packages.
# It follows the official image's interface (POSTGRES_USER, POSTGRES_DB,
# POSTGRES_PASSWORD_FILE, PGDATA) so a compose file written for that image works unchanged.
#
# It starts as root only to read the password file (secrets are bind-mounted root-owned, mode
# 0600) and to own the data directory, then drops to the postgres user with setpriv. The
# password goes to the server on the stdin of single-user mode: never into the environment, a
# command line or a file of the container.
set -eu

PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
as_postgres() { setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; }

if [ "${1:-}" != postgres ]; then
    exec "$@"
fi
if [ "$(id -u)" != 0 ]; then
    echo "docker-entrypoint: run this image as root: it drops to the postgres user itself" >&2
    exit 1
fi
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD_FILE:-}" ]; then
        echo "docker-entrypoint: the database is not initialised and POSTGRES_PASSWORD_FILE is not set; mount the password as a secret and name it there" >&2
        exit 1
    fi
    password=$(cat "$POSTGRES_PASSWORD_FILE")
    case $password in
        *'$hooks_pw$'*)
            echo "docker-entrypoint: the password must not contain \$hooks_pw\$" >&2
            exit 1
            ;;
    esac
    echo "docker-entrypoint: initialising $PGDATA for user $user, database $db"
    as_postgres initdb --username="$user" --encoding=UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    # printf is a shell builtin: the password reaches no command line. Statements are never
    # echoed (log_min_error_statement=panic), so an error does not print it either.
    {
        printf 'ALTER ROLE "%s" PASSWORD $hooks_pw$%s$hooks_pw$\n' "$user" "$password"
        if [ "$db" != postgres ]; then
            printf 'CREATE DATABASE "%s" OWNER "%s"\n' "$db" "$user"
        fi
    } | as_postgres postgres --single -c log_min_error_statement=panic -D "$PGDATA" postgres >/dev/null
    unset password
    echo "docker-entrypoint: initialised"
fi
# The engine stops a container with SIGTERM, which is PostgreSQL's "smart" shutdown: it waits
# for every client to disconnect, and the app's pool never does, so the engine would kill it
# after its timeout. The official image sets STOPSIGNAL SIGINT (fast shutdown); an imported
# image cannot on every engine version, so this shell turns SIGTERM into SIGINT.
# Not the as_postgres function: in the background it would be a subshell, and the signal
# must reach the server itself.
setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@" &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null || true' TERM INT
set +e
wait "$pid"
status=$?
while kill -0 "$pid" 2>/dev/null; do
    wait "$pid"
    status=$?
done
exit "$status"
