#!/usr/bin/env bash
# Run by the postgres image at its first start, after 10-roles.sql: sets the roles'
# passwords (SCRAM) from the files the `pg-secrets` service generated. psql reads each file
# itself (\set with backquotes): a password is never on a command line or in the log.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" >/dev/null <<'SQL'
\set rm_pw `cat /run/streamplane-secrets/streamplane_read_model.password`
\set api_pw `cat /run/streamplane-secrets/streamplane_api.password`
SET password_encryption = 'scram-sha-256';
ALTER ROLE streamplane_read_model WITH LOGIN PASSWORD :'rm_pw';
ALTER ROLE streamplane_api WITH LOGIN PASSWORD :'api_pw';
SQL
