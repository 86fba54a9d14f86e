#!/bin/sh
# docker-compose.yml's `pg-secrets` one-shot: a random password per PostgreSQL role, made
# once into the `pg-secrets` volume (the server's only), and a pgpass file per client role in
# a volume of its own, so a container can read no other role's password: `pg-read-model`
# (read_model.pgpass, the read model's) and `pg-reader` (api.pgpass, the API's and the
# monitor's). Each file is 0600 and owned by who reads it (postgres: the image's uid 999;
# streamplane: the Dockerfile's 10001). Prints locations only, never a password.
set -eu
# STREAMPLANE_SECRETS_ROOT: a directory standing for / (tests/unit/test_compose.py runs this)
root=${STREAMPLANE_SECRETS_ROOT:-}
dir=$root/run/streamplane-secrets
umask 077
own() { [ "$(id -u)" != 0 ] || chown "$@"; }  # only root may give files away
for role in postgres streamplane_read_model streamplane_api; do
  [ -s "$dir/$role.password" ] || head -c 24 /dev/urandom | base64 | tr '+/' '-_' > "$dir/$role.password"
done
own 999:999 "$dir/postgres.password" "$dir/streamplane_read_model.password" "$dir/streamplane_api.password"
pgpass() {  # pgpass ROLE FILE: FILE holds ROLE's line, owned by the streamplane image's user
  printf 'postgres:5432:*:%s:%s\n' "$1" "$(cat "$dir/$1.password")" > "$2"
  own 10001:10001 "$2"
  chmod 0711 "$(dirname "$2")"
}
pgpass streamplane_read_model "$root"/run/streamplane-pgpass/read-model/read_model.pgpass
pgpass streamplane_api "$root"/run/streamplane-pgpass/reader/api.pgpass
echo "passwords in the pg-secrets volume ($dir); pgpass files in pg-read-model and pg-reader"
