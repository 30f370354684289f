# A stand-in for the pinned `postgres` image where no registry can be reached: PostgreSQL
# from Debian's packages on the project's base (tests/standins/offline-base.sh builds one offline).
# It keeps the official image's contract as far as the team stack uses it: POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB from the environment, the data in
# /var/lib/postgresql/data, `pg_isready` for the healthcheck. Bookworm ships PostgreSQL 15:
# its data directory is not the pinned 16's, so a volume stays with the image that made it.
#
#   tests/standins/local-images.sh   # builds it as local/postgres:15-bookworm
#   POSTGRES_IMAGE=local/postgres:15-bookworm in .env
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG PG_MAJOR=15
# No `main` cluster at install time: the entrypoint makes the one the environment asks for.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/no-main.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends "postgresql-${PG_MAJOR}" \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql

ENV PATH=/usr/lib/postgresql/${PG_MAJOR}/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY tests/standins/postgres-debian-entrypoint.sh /usr/local/bin/postgres-entrypoint
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["postgres-entrypoint"]
