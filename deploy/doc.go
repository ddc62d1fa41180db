// Package deploy holds wecomsync's deployment artefacts: the container image
// (docker/), a Docker Compose stack (compose/), Kubernetes manifests and NATS Helm values
// (k8s/), systemd units (systemd/), the JetStream stream definitions (nats/streams/) and
// the Prometheus rules and Grafana dashboard (monitoring/). docs/deploy.md explains them.
//
// The package has no code; its tests parse every file and check that the artefacts agree
// with the binaries (stream definitions, probes, metric names), so `make test` catches a
// drift between the two.
package deploy
