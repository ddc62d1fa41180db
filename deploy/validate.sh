#!/bin/sh
# Validates the deployment files with the tools of each platform, where installed; a
# missing tool is reported as skipped. `go test ./deploy/...` (part of `make test`) runs
# the checks that need no external tool.
#
#   deploy/validate.sh
set -u
cd "$(dirname "$0")"
fail=0
ok() { echo "ok       $*"; }
skip() { echo "skipped  $*"; }
bad() {
	echo "FAILED   $*"
	fail=1
}
has() { command -v "$1" >/dev/null 2>&1; }

# Docker Compose: schema, interpolation, profiles.
if docker compose version >/dev/null 2>&1; then
	if (cd compose && docker compose --profile '*' config -q); then ok "compose: docker compose config"; else bad "compose: docker compose config"; fi
else
	skip "compose: docker compose config (not installed)"
fi

# Dockerfile: BuildKit's own checks, without building.
if docker buildx version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
	for t in callback worker wecom-emulator; do
		if docker buildx build --check -f docker/Dockerfile --target "$t" .. >/dev/null; then ok "docker: build checks ($t)"; else bad "docker: build checks ($t)"; fi
	done
else
	skip "docker: buildx build --check (needs a Docker daemon)"
fi

# Kubernetes: kustomize renders; the API server (if reachable) validates strictly.
if has kubectl; then
	if kubectl kustomize k8s >/dev/null; then ok "k8s: kubectl kustomize"; else bad "k8s: kubectl kustomize"; fi
	if kubectl version >/dev/null 2>&1; then
		if kubectl kustomize k8s | kubectl apply --dry-run=server --validate=strict -f - >/dev/null; then
			ok "k8s: server-side dry run"
		else
			bad "k8s: server-side dry run"
		fi
	else
		skip "k8s: server-side dry run (no cluster reachable)"
	fi
else
	skip "k8s: kubectl kustomize (not installed)"
fi
if has helm; then
	if helm template nats nats/nats -f k8s/nats-values.yaml >/dev/null 2>&1; then ok "k8s: helm template nats"; else bad "k8s: helm template nats (helm repo add nats https://nats-io.github.io/k8s/helm/charts/)"; fi
else
	skip "k8s: helm template nats (not installed)"
fi

# NATS server configuration.
if has nats-server; then
	if NATS_SERVER_NAME=check nats-server -t -c compose/nats.conf >/dev/null 2>&1; then ok "nats: nats-server -t"; else bad "nats: nats-server -t"; fi
else
	skip "nats: nats-server -t (not installed)"
fi
if has nats; then
	for s in nats/streams/*.json; do
		if nats stream add --config "$s" --validate >/dev/null; then ok "nats: $s"; else bad "nats: $s"; fi
	done
else
	skip "nats: nats stream add --validate (not installed)"
fi

# Caddy.
if has caddy; then
	if caddy validate --config compose/Caddyfile --adapter caddyfile >/dev/null 2>&1; then ok "caddy: validate"; else bad "caddy: validate"; fi
else
	skip "caddy: validate (not installed)"
fi

# systemd units (verify wants the ExecStart binaries to exist).
if has systemd-analyze; then
	tmp=$(mktemp -d)
	for b in callback worker; do printf '#!/bin/sh\n' >"$tmp/$b" && chmod +x "$tmp/$b"; done
	for u in systemd/*.service; do sed "s|/usr/local/bin/|$tmp/|" "$u" >"$tmp/$(basename "$u")"; done
	out=$(cd "$tmp" && systemd-analyze verify --man=no ./*.service 2>&1)
	if [ -z "$out" ]; then ok "systemd: systemd-analyze verify"; else
		echo "$out"
		bad "systemd: systemd-analyze verify"
	fi
	rm -rf "$tmp"
else
	skip "systemd: systemd-analyze verify (not installed)"
fi

# Prometheus rules: syntax, PromQL, templates, and the unit tests of alerts_test.yml.
if has promtool; then
	if promtool check rules monitoring/alerts.yml >/dev/null; then ok "prometheus: promtool check rules"; else bad "prometheus: promtool check rules"; fi
	if (cd monitoring && promtool test rules alerts_test.yml >/dev/null); then ok "prometheus: promtool test rules"; else bad "prometheus: promtool test rules"; fi
else
	skip "prometheus: promtool check rules / test rules (not installed)"
fi

exit $fail
