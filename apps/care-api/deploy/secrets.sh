#!/bin/sh
# Generates the secrets docker-compose.yml mounts: the session secret and one AES-256 key for data at rest.
# Run once from this directory: sh secrets.sh. Existing files are kept (rotating a key: add a new id to the list and
# set DATA_ENCRYPTION_KEY_ID to it; keep the old id until no data encrypted with it remains).
set -eu
cd "$(dirname "$0")"
mkdir -p secrets
# Readable by the container's non-root user: compose mounts these files with their host permissions.
umask 022
[ -s secrets/session_secret ] || openssl rand -base64 48 | tr -d '\n' > secrets/session_secret
[ -s secrets/data_encryption_keys ] || printf 'k1:%s' "$(openssl rand -base64 32)" > secrets/data_encryption_keys
echo "secrets in $(pwd)/secrets"
