#!/bin/sh
# Creates the secret files docker-compose.yml mounts, with random values, unless they
# exist. For a real corp, overwrite secrets/wecom_callback_token, wecom_callback_aes_key
# and wecom_contact_secret with the values from the WeCom admin console (no trailing
# newline needed; one is ignored).
#
# Also writes emulator.env for the `emulator` profile: the emulator uses the same corp id,
# contact secret, Token and EncodingAESKey as the receivers.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
chmod 0700 secrets

rand() { # rand BYTES: base64 of BYTES random bytes, without padding or newline
	head -c "$1" /dev/urandom | base64 | tr -d '\n='
}
alnum() { # alnum N: N random letters and digits
	head -c 4096 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9' | head -c "$1"
}
put() { # put NAME VALUE: write the secret unless it exists
	if [ ! -s "secrets/$1" ]; then
		printf '%s' "$2" >"secrets/$1"
		echo "created secrets/$1"
	fi
}

put wecom_callback_token "$(alnum 32)"
put wecom_callback_aes_key "$(rand 32)" # 32 bytes -> 43 characters, as WeCom's EncodingAESKey
put wecom_contact_secret "$(alnum 43)"
put postgres_password "$(alnum 32)"
put grafana_admin_password "$(alnum 20)"
# libpq password file for the worker (pgx reads PGPASSFILE): host:port:db:user:password
if [ ! -s secrets/pgpass ]; then
	printf 'postgres:5432:wecomsync:wecomsync:%s\n' "$(cat secrets/postgres_password)" >secrets/pgpass
	echo "created secrets/pgpass"
fi
# The containers run as 65532 (distroless nonroot), Postgres as 999: the files must be
# readable by them. The directory stays 0700, so other users of this host cannot reach them.
chmod 0644 secrets/*

corp_id=$(sed -n 's/^WECOM_CORP_ID=//p' wecomsync.env)
if [ ! -s emulator.env ]; then
	cat >emulator.env <<EOT
WECOM_EMULATOR_CORP_ID=$corp_id
WECOM_EMULATOR_CONTACT_SECRET=$(cat secrets/wecom_contact_secret)
WECOM_EMULATOR_CONSOLE_SECRET=$(alnum 43)
WECOM_EMULATOR_CALLBACK_URL=http://proxy:8080/callback
WECOM_EMULATOR_CALLBACK_TOKEN=$(cat secrets/wecom_callback_token)
WECOM_EMULATOR_CALLBACK_AES_KEY=$(cat secrets/wecom_callback_aes_key)
WECOM_EMULATOR_SEED_USERS=500
EOT
	echo "created emulator.env"
fi
