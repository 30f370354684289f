#!/bin/sh
# Run once by the PostgreSQL image on an empty data directory (/docker-entrypoint-initdb.d;
# tests/standins/postgres-debian-entrypoint.sh does the same): the role MLflow connects as, not a
# superuser, owning MLflow's database and its public schema (where MLflow creates its
# tables), with the password from MLFLOW_DB_PASSWORD_FILE. The superuser POSTGRES_USER
# stays with the postgres container alone.
set -eu

: "${MLFLOW_DB_USER:?10-mlflow-role.sh: MLFLOW_DB_USER is not set}"
password="$(cat "${MLFLOW_DB_PASSWORD_FILE:?10-mlflow-role.sh: MLFLOW_DB_PASSWORD_FILE is not set}")"
psql -v ON_ERROR_STOP=1 -q --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v role="$MLFLOW_DB_USER" -v password="$password" -v database="$POSTGRES_DB" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER DATABASE :"database" OWNER TO :"role";
ALTER SCHEMA public OWNER TO :"role";
SQL
echo "10-mlflow-role.sh: role $MLFLOW_DB_USER owns database $POSTGRES_DB (not a superuser)"
