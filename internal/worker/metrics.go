package worker

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker runtime's Prometheus collectors. The mirror's own collectors
// (batch size, apply latency, lookups, dead letters, relay) are registered beside them.
type Metrics struct {
	// Events counts settled events by corp, kind (change type or event) and outcome
	// (applied, duplicate, ignored, poison, retried).
	Events *prometheus.CounterVec
	// Lag is the lane consumer's NumPending: events in the stream not yet delivered.
	Lag *prometheus.GaugeVec
	// AckPending is the lane consumer's NumAckPending: delivered, not yet settled.
	AckPending *prometheus.GaugeVec
	// BatchErrors counts batches that failed transiently (and were retried) by reason.
	BatchErrors *prometheus.CounterVec
	// Syncs counts full syncs by corp and outcome.
	Syncs *prometheus.CounterVec
	// Pinned is 1 for each lane this replica is pinned on (applies), 0 for the others.
	Pinned *prometheus.GaugeVec
	// Handovers counts lanes this replica handed over to balance the lanes.
	Handovers *prometheus.CounterVec
	// GateWaits counts the times the ordering gate held a fetched batch back.
	GateWaits *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecomsync_worker_events_total",
			Help: "Events settled by the worker, by corp, kind (change type or event) and outcome.",
		}, []string{"corp", "kind", "outcome"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wecomsync_worker_lag_events",
			Help: "Events in WECOM_EVENTS not yet delivered to the lane's consumer (NumPending).",
		}, []string{"lane"}),
		AckPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wecomsync_worker_ack_pending_events",
			Help: "Events delivered to the lane's consumer and not yet settled (NumAckPending).",
		}, []string{"lane"}),
		BatchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecomsync_worker_batch_errors_total",
			Help: "Batches that failed transiently and were retried, by reason (error, panic).",
		}, []string{"reason"}),
		Syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecomsync_worker_syncs_total",
			Help: "Full syncs of a corp from the WeCom API, by corp and outcome (ok, error).",
		}, []string{"corp", "outcome"}),
		Pinned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wecomsync_worker_lane_pinned",
			Help: "1 when this replica is the one the lane's consumer delivers to (it applies the lane), else 0.",
		}, []string{"lane"}),
		Handovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecomsync_worker_lane_handovers_total",
			Help: "Lanes this replica handed over to another replica to balance the lanes.",
		}, []string{"lane"}),
		GateWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecomsync_worker_gate_waits_total",
			Help: "Times the lane held a fetched batch back because earlier messages were outstanding elsewhere (retried, or held by another replica).",
		}, []string{"lane"}),
	}
	reg.MustRegister(m.Events, m.Lag, m.AckPending, m.BatchErrors, m.Syncs, m.Pinned, m.Handovers, m.GateWaits)
	return m
}

// knownKinds bounds the kind label: names WeCom adds later count as "other".
var knownKinds = map[string]bool{
	"create_user": true, "update_user": true, "delete_user": true, "create_party": true,
	"update_party": true, "delete_party": true, "update_tag": true, "batch_job_result": true,
	"unparsed": true, "undecodable": true,
}

func kindLabel(event, changeType string) string {
	k := changeType
	if k == "" {
		k = event
	}
	if knownKinds[k] {
		return k
	}
	return "other"
}
