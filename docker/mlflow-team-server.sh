#!/bin/sh
# The team's MLflow server: MLflow's basic-auth app, every secret read from the environment,
# none on a command line (`ps`) or in a file of the image.
#
#   MLFLOW_BACKEND_STORE_URI        postgresql://USER:PASSWORD@HOST:PORT/DB (`mlflow server`
#                                   reads it itself); the auth tables live in the same database.
#                                   Unset or empty, it is built from POSTGRES_USER,
#                                   POSTGRES_PASSWORD (from POSTGRES_PASSWORD_FILE, see
#                                   docker/entrypoint.sh), POSTGRES_HOST and POSTGRES_DB
#   MLFLOW_AUTH_ADMIN_USERNAME      the admin account, created on the first start with
#   MLFLOW_AUTH_ADMIN_PASSWORD      this password (MLflow ships none; later changes: the API)
#   MLFLOW_FLASK_SERVER_SECRET_KEY  signs the UI's sessions and CSRF tokens
#   MLFLOW_AUTH_DEFAULT_PERMISSION  what a user may do where nobody granted anything:
#                                   READ (default here) or NO_PERMISSIONS (the team
#                                   compose stack's default); never more
#   MLFLOW_AUTH_CACHE_TTL_SECONDS   seconds a good login is remembered per worker (default
#                                   60; 0: off, MLflow's default): the password hash is slow
#   MLFLOW_ALIAS_MOVERS             accounts that may move @champion (comma-separated: the
#                                   pipeline account, the releasers); others are refused
#   MLFLOW_PROTECTED_ALIASES        aliases so guarded (default: champion)
#   MLFLOW_CRYPTO_KEK_PASSPHRASE    optional: turns MLflow's AI gateway on, which encrypts
#                                   the provider keys it stores with it; unset, the gateway
#                                   is off (MLflow's default passphrase is public)
#
# Arguments go to `mlflow server` (--host, --port, --serve-artifacts, ...). MLflow takes the
# auth database's URI only from its config file (MLFLOW_AUTH_CONFIG_PATH), so that file is
# written here, private to this user (mode 0600), into TMPDIR, and removed when the server
# exits (a TERM or INT to this script is passed on to the server first). The compose service
# points TMPDIR at a tmpfs, so even a killed container leaves it on no disk.
set -eu

if [ -z "${MLFLOW_BACKEND_STORE_URI:-}" ] && [ -n "${POSTGRES_PASSWORD:-}" ]; then
  MLFLOW_BACKEND_STORE_URI="$(python -c 'import os, urllib.parse as p; e = os.environ
print("postgresql://{}:{}@{}/{}".format(p.quote(e.get("POSTGRES_USER", "mlflow"), safe=""),
      p.quote(e["POSTGRES_PASSWORD"], safe=""), e.get("POSTGRES_HOST", "postgres:5432"),
      e.get("POSTGRES_DB", "mlflow")))')"
  export MLFLOW_BACKEND_STORE_URI
  unset POSTGRES_PASSWORD
fi

for name in MLFLOW_BACKEND_STORE_URI MLFLOW_AUTH_ADMIN_USERNAME MLFLOW_AUTH_ADMIN_PASSWORD \
  MLFLOW_FLASK_SERVER_SECRET_KEY; do
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then
    echo "mlflow-team-server: $name is not set (see docs/deploy.md, Users and permissions)" >&2
    exit 1
  fi
done
permission="${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}"
case "$permission" in
  READ | NO_PERMISSIONS) ;;
  *)
    echo "mlflow-team-server: MLFLOW_AUTH_DEFAULT_PERMISSION must be READ or NO_PERMISSIONS," \
      "not $permission" >&2
    exit 1
    ;;
esac

cache_ttl="${MLFLOW_AUTH_CACHE_TTL_SECONDS:-60}"
case "$cache_ttl" in
  '' | *[!0-9]*)
    echo "mlflow-team-server: MLFLOW_AUTH_CACHE_TTL_SECONDS must be a whole number of seconds," \
      "not $cache_ttl" >&2
    exit 1
    ;;
esac

if [ -n "${MLFLOW_CRYPTO_KEK_PASSPHRASE:-}" ]; then
  export MLFLOW_ENABLE_AI_GATEWAY=true
else
  unset MLFLOW_CRYPTO_KEK_PASSPHRASE
  export MLFLOW_ENABLE_AI_GATEWAY=false
fi

config="$(mktemp "${TMPDIR:-/tmp}/mlflow-auth.XXXXXX")"
trap 'rm -f "$config"' EXIT
# configparser reads % as interpolation: a percent-encoded password needs it doubled.
database_uri="$(printf '%s' "${MLFLOW_AUTH_DATABASE_URI:-$MLFLOW_BACKEND_STORE_URI}" | sed 's/%/%%/g')"
printf '[mlflow]\ndefault_permission = %s\ndatabase_uri = %s\n' "$permission" "$database_uri" >"$config"
# MLflow's basic-auth check, with an unknown user answered in a known user's time (one
# password hash either way), so answer times do not tell who has an account.
printf 'authorization_function = mlpipeline.tracking.team_auth:authenticate_request\n' >>"$config"
# Each request's password check is a slow hash (~0.2 s of CPU here) and a stage makes dozens:
# a good login is remembered per worker for this long (0: off, MLflow's default). A changed
# or removed password takes effect at once on the worker that changed it, on the others
# within this many seconds (docs/deploy.md, "Users and permissions").
printf 'auth_cache_ttl_seconds = %s\n' "$cache_ttl" >>"$config"
export MLFLOW_AUTH_CONFIG_PATH="$config"
# Not exec: this shell stays to remove the file. The server runs in the background, so a
# signal to this shell (docker stop's TERM to PID 1) is handed on, and `wait` ends early when
# one arrives: wait again until the server has exited, then exit with its status.
server=""
trap '[ -z "$server" ] || kill -TERM "$server" 2>/dev/null || true' TERM INT HUP
mlflow server --app-name basic-auth "$@" &
server=$!
status=0
wait "$server" || status=$?
while kill -0 "$server" 2>/dev/null; do
  status=0
  wait "$server" || status=$?
done
exit "$status"
