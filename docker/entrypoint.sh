#!/bin/sh
# Every service's entrypoint: run the command as the owner of the mounted checkout, so that
# the pipeline can write it whoever owns it (uid 1000, a second user on a shared host)
# without any setting in .env. OWNER_PATH names the folder whose owner that is (default
# /workspace; Jupyter's is /workspace/notebooks, the only folder it may write). Where
# nothing is mounted (mlflow, serve), /workspace is the image's own and belongs to `app`.
#
# Never root: a checkout owned by root is refused with the fix, rather than run as root
# (docs/deploy.md, "Who the services run as"). Started as a non-root user already
# (`docker run --user`, compose `user:`), the command runs unchanged. The compose services
# drop every capability but SETUID and SETGID, which is what setpriv needs here.
#
# Secrets come as files (compose `secrets:`, mounted in /run/secrets), never in the
# container's environment (`docker inspect`): for each NAME below, NAME_FILE names the file,
# and the command gets NAME with its content, read once it runs as the owner.
set -eu

SECRET_NAMES="POSTGRES_PASSWORD AWS_SECRET_ACCESS_KEY MLFLOW_AUTH_ADMIN_PASSWORD
  MLFLOW_FLASK_SERVER_SECRET_KEY MLFLOW_TRACKING_PASSWORD MLFLOW_CRYPTO_KEK_PASSPHRASE
  TEAM_USER_PASSWORD JUPYTER_TOKEN SPARK_AUTH_SECRET"

if [ "$(id -u)" != 0 ]; then
  for name in $SECRET_NAMES; do
    eval "file=\${${name}_FILE:-}"
    [ -n "$file" ] || continue
    if [ ! -r "$file" ]; then
      echo "entrypoint: ${name}_FILE is $file, which uid $(id -u) cannot read" \
        "(docs/deploy.md, Secrets)" >&2
      exit 78
    fi
    value="$(cat "$file")"
    export "$name=$value"
    unset "${name}_FILE"
  done
  exec "$@"
fi
path="${OWNER_PATH:-/workspace}"
owner="$(stat -c %u "$path")"
group="$(stat -c %g "$path")"
if [ "$owner" = 0 ]; then
  echo "entrypoint: $path belongs to root, and no service runs as root; give the checkout" \
    "to a user, e.g. sudo chown -R 1000:1000 . (docs/deploy.md, Who the services run as)" >&2
  exit 78
fi
# The owner's name and home when the image knows the uid, else stand-ins: a user name for
# the tools that ask for one (getpass.getuser() in DVC and MLflow reads USER before the
# password database), a writable folder for caches and ~/.config.
entry="$(getent passwd "$owner" || true)"
name="$(printf '%s' "$entry" | cut -d: -f1)"
home="$(printf '%s' "$entry" | cut -d: -f6)"
if [ -z "$home" ] || [ ! -d "$home" ]; then
  home=/tmp
fi
export HOME="$home" USER="${name:-uid$owner}" LOGNAME="${name:-uid$owner}"
# Again, as the owner: the branch above reads the secrets.
exec setpriv --reuid="$owner" --regid="$group" --clear-groups -- /usr/local/bin/entrypoint "$@"
