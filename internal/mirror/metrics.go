package mirror

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the mirror's Prometheus collectors, shared by Store and Relay.
type Metrics struct {
	// Applied counts items by kind (create_user, ..., batch_job_result, other) and status.
	Applied *prometheus.CounterVec
	// BatchSize observes the number of items per ApplyBatch call.
	BatchSize prometheus.Histogram
	// ApplyDuration observes ApplyBatch's duration, lookups and retries included.
	ApplyDuration prometheus.Histogram
	// Lookups counts Lookup calls by entity (user, department) and result
	// (ok, not_found, not_permitted, error).
	Lookups *prometheus.CounterVec
	// DeadLetters counts items dead-lettered, by corp.
	DeadLetters *prometheus.CounterVec
	// Changes counts change-log rows written, by entity, op and source.
	Changes *prometheus.CounterVec
	// RelayPublished counts change messages published (PubAck received), by corp.
	RelayPublished *prometheus.CounterVec
	// RelayLag is, per corp, the age in seconds of the oldest change not yet published
	// (0 when the relay has caught up).
	RelayLag *prometheus.GaugeVec
}

// NewMetrics creates the collectors and registers them with reg; a nil reg leaves them
// unregistered (useful in tests). It panics if they are already registered there.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecomsync_mirror_applied_total",
			Help: "Events handled by the mirror, by kind and status (applied, duplicate, poison, ignored).",
		}, []string{"kind", "status"}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wecomsync_mirror_batch_size",
			Help:    "Items per ApplyBatch call.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000},
		}),
		ApplyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wecomsync_mirror_apply_seconds",
			Help:    "ApplyBatch duration, lookups and retries included.",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		Lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecomsync_mirror_lookups_total",
			Help: "Lookups of full records for minimal or unseen events, by entity and result.",
		}, []string{"entity", "result"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecomsync_mirror_dead_letters_total",
			Help: "Items recorded in wecom.dead_letters, by corp.",
		}, []string{"corp_id"}),
		Changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecomsync_mirror_changes_total",
			Help: "Rows appended to wecom.changes, by entity, op and source.",
		}, []string{"entity", "op", "source"}),
		RelayPublished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecomsync_relay_published_total",
			Help: "Change messages published to WECOM_CHANGES, by corp.",
		}, []string{"corp_id"}),
		RelayLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wecomsync_relay_lag_seconds",
			Help: "Age of the oldest change not yet published, by corp (0 when caught up).",
		}, []string{"corp_id"}),
	}
	if reg != nil {
		reg.MustRegister(m.Applied, m.BatchSize, m.ApplyDuration, m.Lookups, m.DeadLetters, m.Changes,
			m.RelayPublished, m.RelayLag)
	}
	return m
}
