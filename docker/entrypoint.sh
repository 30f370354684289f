#!/bin/sh
# Every service's entrypoint: run the command as the owner of /workspace, so that the
# pipeline can write the mounted checkout whoever owns it (uid 1000, root on a server, a
# second user on a shared host) without any setting in .env. Where nothing is mounted there
# (mlflow, serve), /workspace is the image's own and belongs to its `app` user.
#
# A checkout owned by root runs the command as root (Jupyter then needs --allow-root, which
# the compose service adds). Started as a non-root user already (`docker run --user`,
# compose `user:`), the command runs unchanged.
set -eu

if [ "$(id -u)" != 0 ]; then
  exec "$@"
fi
owner="$(stat -c %u /workspace)"
group="$(stat -c %g /workspace)"
if [ "$owner" = 0 ]; then
  exec "$@"
fi
# The owner's home when the image knows the uid, else a writable stand-in (caches, ~/.config).
home="$(getent passwd "$owner" | cut -d: -f6)"
if [ -z "$home" ] || [ ! -d "$home" ]; then
  home=/tmp
fi
export HOME="$home"
exec setpriv --reuid="$owner" --regid="$group" --clear-groups -- "$@"
