#!/bin/sh
# docker-compose.yml's `pg-secrets` one-shot: a random password per PostgreSQL role, made
# once into the `pg-secrets` volume, and a pgpass file per client service, each 0600 and
# owned by who reads it (postgres: the image's uid 999; streamplane: the Dockerfile's 10001).
# Prints locations only, never a password.
set -eu
dir=/run/streamplane-secrets
umask 077
for role in postgres streamplane_read_model streamplane_api; do
  [ -s "$dir/$role.password" ] || head -c 24 /dev/urandom | base64 | tr '+/' '-_' > "$dir/$role.password"
done
chown 999:999 "$dir/postgres.password"
printf 'postgres:5432:*:streamplane_read_model:%s\n' "$(cat "$dir/streamplane_read_model.password")" > "$dir/read_model.pgpass"
printf 'postgres:5432:*:streamplane_api:%s\n' "$(cat "$dir/streamplane_api.password")" > "$dir/api.pgpass"
chown 10001:10001 "$dir/read_model.pgpass" "$dir/api.pgpass"
chown 999:999 "$dir/streamplane_read_model.password" "$dir/streamplane_api.password"
echo "passwords and pgpass files in the pg-secrets volume ($dir)"
