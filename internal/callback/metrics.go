package callback

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes label wecomsync_callback_requests_total; each names one way a request ends.
const (
	OutcomeOK            = "ok"
	OutcomeDuplicate     = "duplicate"
	OutcomeVerified      = "url_verified"
	OutcomeBadSignature  = "bad_signature"
	OutcomeStale         = "stale_timestamp"
	OutcomeBadRequest    = "bad_request"
	OutcomeDecryptFailed = "decrypt_failed"
	OutcomeTooLarge      = "too_large"
	OutcomeBadMethod     = "bad_method"
	OutcomeUnknownTenant = "unknown_tenant"
	OutcomePublishFailed = "publish_failed"
)

// Metrics are the receiver's Prometheus collectors.
type Metrics struct {
	Requests        *prometheus.CounterVec
	CryptoFailures  *prometheus.CounterVec
	PublishDuration prometheus.Histogram
	Duplicates      *prometheus.CounterVec
	Events          *prometheus.CounterVec
	Unparsed        *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecomsync_callback_requests_total",
			Help: "Callback requests by tenant, method and outcome.",
		}, []string{"tenant", "method", "outcome"}),
		CryptoFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecomsync_callback_verify_failures_total",
			Help: "Callbacks rejected while verifying or decrypting, by reason.",
		}, []string{"tenant", "reason"}),
		PublishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wecomsync_callback_publish_seconds",
			Help:    "Time from publish to JetStream PubAck.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		Duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecomsync_callback_duplicates_total",
			Help: "Callbacks JetStream already held (WeCom retries), answered 200 and not stored again.",
		}, []string{"tenant"}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecomsync_callback_events_total",
			Help: "Events stored, by tenant, event and change type (unknown names count as \"other\").",
		}, []string{"tenant", "event", "change_type"}),
		Unparsed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecomsync_callback_unparsed_total",
			Help: "Authentic callbacks whose decrypted XML was malformed; stored under wecom.events.<corp>.unparsed.",
		}, []string{"tenant"}),
	}
	reg.MustRegister(m.Requests, m.CryptoFailures, m.PublishDuration, m.Duplicates, m.Events, m.Unparsed)
	return m
}

var knownEvents = map[string]map[string]bool{
	"change_contact": {"create_user": true, "update_user": true, "delete_user": true, "create_party": true,
		"update_party": true, "delete_party": true, "update_tag": true},
	"batch_job_result": {"": true},
}

// eventLabels bounds label cardinality: names WeCom might add later, or a forger could
// invent, are counted as "other".
func eventLabels(ev, ct string) (string, string) {
	cts, ok := knownEvents[ev]
	if !ok {
		return "other", "other"
	}
	if !cts[ct] {
		return ev, "other"
	}
	return ev, ct
}
