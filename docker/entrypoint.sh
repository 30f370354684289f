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
set -eu

if [ "$(id -u)" != 0 ]; then
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
# The owner's home when the image knows the uid, else a writable stand-in (caches, ~/.config).
home="$(getent passwd "$owner" | cut -d: -f6)"
if [ -z "$home" ] || [ ! -d "$home" ]; then
  home=/tmp
fi
export HOME="$home"
exec setpriv --reuid="$owner" --regid="$group" --clear-groups -- "$@"
