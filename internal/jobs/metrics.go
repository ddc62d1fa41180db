package jobs

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the job runner's Prometheus collectors.
type Metrics struct {
	// Drift counts entities a reconciliation healed, by corp, entity (user, department,
	// tag) and op (created, updated, deleted).
	Drift *prometheus.CounterVec
	// Jobs counts finished jobs by kind and outcome (done, failed).
	Jobs *prometheus.CounterVec
	// ExportRows counts entities read from export files, by export kind.
	ExportRows *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them on reg (nil: unregistered). A
// collector already registered on reg (a second Runner in one process) is reused.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Drift: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wecomsync_reconcile_drift_total",
			Help: "Entities a reconciliation found different from WeCom and healed."}, []string{"corp", "entity", "op"}),
		Jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wecomsync_jobs_finished_total",
			Help: "Import, export and reconcile jobs finished, by kind and outcome."}, []string{"kind", "outcome"}),
		ExportRows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wecomsync_export_rows_total",
			Help: "Entities read from WeCom export files."}, []string{"kind"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []**prometheus.CounterVec{&m.Drift, &m.Jobs, &m.ExportRows} {
		if err := reg.Register(*c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				*c = are.ExistingCollector.(*prometheus.CounterVec)
				continue
			}
			return nil, fmt.Errorf("registering job metrics: %w", err)
		}
	}
	return m, nil
}
