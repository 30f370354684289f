#!/bin/sh
# make up's check of who owns the checkout (docs/deploy.md, "A checkout owned by root").
# Every service runs as the checkout's owner, never as root (docker/entrypoint.sh), so:
# - a checkout owned by root is refused here, in one line, before anything starts;
# - files root left in a user's checkout (a root `dvc pull`, `make run`, `mkdir`), which
#   the services could not replace ("Operation not permitted"), go back to the owner when
#   make up runs as root, and are named with the fix when it does not.
set -eu

owner="$(stat -c %u .)"
group="$(stat -c %g .)"
if [ "$owner" = 0 ]; then
  echo "make up: this checkout belongs to root, and no service runs as root; give it to a" \
    "user first: sudo chown -R 1000:1000 . (docs/deploy.md, A checkout owned by root)" >&2
  exit 2
fi
left="$(find . -xdev -uid 0 -print | wc -l)"
[ "$left" -gt 0 ] || exit 0
if [ "$(id -u)" != 0 ]; then
  first="$(find . -xdev -uid 0 -print | head -n 1)"
  echo "make up: $left files in this checkout belong to root (e.g. $first), which the" \
    "services, running as uid $owner, cannot replace; sudo chown -R $owner:$group ." >&2
  exit 2
fi
find . -xdev -uid 0 -exec chown -h "$owner:$group" {} +
echo "make up: gave the $left files root had left in this checkout back to its owner (uid $owner)"
