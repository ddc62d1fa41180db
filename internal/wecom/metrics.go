package wecom

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the client's Prometheus collectors. Several clients may register on the
// same Registerer: the collectors are shared (corp_id is a label).
type metrics struct {
	calls    *prometheus.CounterVec   // corp_id, api, errcode ("transport" for no answer)
	retries  *prometheus.CounterVec   // corp_id, api, reason
	refresh  *prometheus.CounterVec   // corp_id, result
	duration *prometheus.HistogramVec // corp_id, api
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "wecom", Subsystem: "client", Name: "calls_total",
			Help: "WeCom API call attempts by API and errcode (transport = no answer).",
		}, []string{"corp_id", "api", "errcode"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "wecom", Subsystem: "client", Name: "retries_total",
			Help: "WeCom API call retries by API and reason.",
		}, []string{"corp_id", "api", "reason"}),
		refresh: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "wecom", Subsystem: "client", Name: "token_fetches_total",
			Help: "gettoken calls made by this process, by result.",
		}, []string{"corp_id", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "wecom", Subsystem: "client", Name: "call_duration_seconds",
			Help:    "WeCom API call attempt duration.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"corp_id", "api"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.calls, err = register(reg, m.calls)
	if err != nil {
		return nil, err
	}
	if m.retries, err = register(reg, m.retries); err != nil {
		return nil, err
	}
	if m.refresh, err = register(reg, m.refresh); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *metrics) call(corp, api string, code int, transport bool, d time.Duration) {
	ec := strconv.Itoa(code)
	if transport {
		ec = "transport"
	}
	m.calls.WithLabelValues(corp, api, ec).Inc()
	m.duration.WithLabelValues(corp, api).Observe(d.Seconds())
}

func (m *metrics) retry(corp, api, reason string) { m.retries.WithLabelValues(corp, api, reason).Inc() }

func (m *metrics) tokenFetch(corp string, err error) {
	res := "ok"
	if err != nil {
		res = "error"
	}
	m.refresh.WithLabelValues(corp, res).Inc()
}
