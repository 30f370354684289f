# The team stack's front door: nginx from Debian's packages on the project's base image
# (built locally, no registry needed). It terminates TLS, limits body size and request rate,
# refuses foreign Origin headers, bars an address after repeated failed logins (Debian's Lua
# module) and replaces upstream 5xx bodies (docker/proxy.conf).
# Runs as www-data on unprivileged ports (8443, 8080, and 8000 the inner door) with no capability.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx libnginx-mod-http-lua \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/default
COPY docker/proxy.conf /etc/nginx/proxy.conf.template
COPY docker/proxy-entrypoint.sh /usr/local/bin/proxy-entrypoint
USER www-data
EXPOSE 8443 8080 8000
ENTRYPOINT ["proxy-entrypoint"]
