#!/usr/bin/env sh
# Writes deploy/compose/.env with the keys compose.yaml needs, once: an existing file is
# kept, since a new master key could not read what the old one sealed.
set -eu
env_file="$(dirname "$0")/.env"
if [ -e "$env_file" ]; then
  echo "$env_file exists: kept it"
  exit 0
fi
umask 077
{
  echo "BACKBONE_MASTER_KEY=$(openssl rand -base64 32)"
  echo "BACKBONE_SIGNING_SEED=$(openssl rand -base64 32)"
  echo "CONNECTOR_CLIENT_SECRET=$(openssl rand -hex 24)"
  echo "CONNECTOR_API_KEY=$(openssl rand -hex 24)"
  echo "CONNECTOR_STORAGE_KEY=$(openssl rand -base64 32)"
} > "$env_file"
echo "wrote $env_file (mode 0600); keep a copy: the master key opens every identity's data key"
