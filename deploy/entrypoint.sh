#!/bin/sh
# The storyreel image's entrypoint: the first argument is the role this container plays.
#
#   api                     the HTTP API (uvicorn) on $PORT (8000)
#   worker --queues Q,...   a Temporal worker: workflows, media, clips:<provider>
#   simulator [options]     the Replicate-protocol simulator on $SIMULATOR_PORT (8090)
#   migrate                 bring the record database to the latest schema (Alembic), then exit
#   temporal-setup [opts]   register the namespace and search attributes, then exit
#   healthcheck [role]      the image's HEALTHCHECK (role defaults to the one started here)
#   cli ARGS...             the storyreel CLI, e.g. `cli keys create alice`
#
# Every role reads its settings from STORYREEL_* variables (see .env.example).
set -eu

usage() {
    sed -n '2,12p' "$0" >&2
}

if [ "$#" -eq 0 ]; then
    usage
    exit 64
fi
role="$1"
shift

# `exec` everywhere: the role's process becomes PID 1's direct child (or PID 1), so SIGTERM
# from `docker stop` or Kubernetes reaches the worker's graceful shutdown.
remember_role() {
    # The healthcheck runs in a fresh process; this tells it what to check.
    printf '%s\n' "$1" >"${ROLE_FILE:-/tmp/storyreel-role}" 2>/dev/null || true
}

case "$role" in
    api)
        remember_role api
        log_config="${LOG_CONFIG:-/etc/storyreel/logging.json}"
        set -- --factory api.app:create_app \
            --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" \
            --ws websockets-sansio \
            --proxy-headers --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-*}" \
            --timeout-graceful-shutdown "${API_SHUTDOWN_SECONDS:-20}" \
            "$@"
        if [ -f "$log_config" ]; then
            set -- "$@" --log-config "$log_config"
        fi
        exec python -m uvicorn "$@"
        ;;
    worker)
        remember_role worker
        exec python -m worker "$@"
        ;;
    simulator)
        remember_role simulator
        exec python -m activities.simulator \
            --host "${HOST:-0.0.0.0}" --port "${SIMULATOR_PORT:-8090}" "$@"
        ;;
    migrate)
        remember_role migrate
        # Alembic's own command line over the migrations shipped in the package; env.py takes
        # the database from STORYREEL_DATABASE_URL (else the SQLite file in the data dir).
        ini="$(python -c 'import storyreel.db, pathlib; print(pathlib.Path(storyreel.db.__file__).with_name("alembic.ini"))')"
        exec python -m alembic -c "$ini" upgrade head
        ;;
    temporal-setup)
        remember_role temporal-setup
        exec python -m storyreel.temporal_setup "$@"
        ;;
    healthcheck)
        exec python -m storyreel.healthcheck "$@"
        ;;
    cli)
        exec storyreel "$@"
        ;;
    *)
        echo "unknown role: $role" >&2
        usage
        exit 64
        ;;
esac
