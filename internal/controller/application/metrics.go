package application

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics are the agent's Prometheus collectors.
type Metrics struct {
	ReconcileDuration *prometheus.HistogramVec
	FetchDuration     *prometheus.HistogramVec
	AppliedObjects    *prometheus.CounterVec
	Failures          *prometheus.CounterVec
	Drift             *prometheus.GaugeVec
	Healed            *prometheus.CounterVec
	PolicyViolations  *prometheus.GaugeVec
	Rollbacks         *prometheus.CounterVec
	UncachedReads     prometheus.Counter
	RenderStops       *prometheus.CounterVec
}

var defaultMetrics = newMetrics()

func newMetrics() *Metrics {
	m := buildMetrics()
	metrics.Registry.MustRegister(m.ReconcileDuration, m.FetchDuration, m.AppliedObjects, m.Failures, m.Drift, m.Healed, m.PolicyViolations, m.Rollbacks, m.UncachedReads, m.RenderStops)
	return m
}

// buildMetrics makes the collectors, registered nowhere.
func buildMetrics() *Metrics {
	return &Metrics{
		ReconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_reconcile_duration_seconds", Help: "Duration of Application reconciles.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}, []string{"namespace", "name"}),
		FetchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_git_fetch_duration_seconds", Help: "Duration of real Git fetches (cache hits excluded).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}, []string{"result"}),
		AppliedObjects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_applied_objects_total", Help: "Objects written by server-side apply or deleted by prune, by action.",
		}, []string{"namespace", "name", "action"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_sync_failures_total", Help: "Failed syncs, by reason.",
		}, []string{"namespace", "name", "reason"}),
		Drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_drifted_objects", Help: "Owned objects whose live state differs from Git.",
		}, []string{"namespace", "name"}),
		Healed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_drift_healed_total", Help: "Re-applies caused by drift.",
		}, []string{"namespace", "name"}),
		PolicyViolations: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_policy_violations", Help: "Policy violations of the last evaluated revision, by rule and mode.",
		}, []string{"namespace", "name", "rule", "mode"}),
		Rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_rollbacks_total", Help: "Rollbacks performed (automatic and requested).",
		}, []string{"namespace", "name"}),
		UncachedReads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_uncached_application_reads_total", Help: "Applications read from the API server because the cache had not caught up with the agent's last status write.",
		}),
		RenderStops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_render_worker_stops_total", Help: "Helm or Kustomize renders whose worker process was stopped or ended, by reason (memory, timeout, size, crash).",
		}, []string{"reason"}),
	}
}

// forget deletes every series of the Application namespace/name: an
// Application that is gone leaves no gauge behind to alert on, and
// preview Applications that come and go leave no series to pile up.
func (m *Metrics) forget(namespace, name string) {
	app := prometheus.Labels{"namespace": namespace, "name": name}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.ReconcileDuration, m.AppliedObjects, m.Failures, m.Drift, m.Healed, m.PolicyViolations, m.Rollbacks,
	} {
		v.DeletePartialMatch(app)
	}
}

// RenderStopObserver returns a callback counting render workers stopped at
// a limit or ended by a crash.
func RenderStopObserver() func(reason string) {
	return func(reason string) { defaultMetrics.RenderStops.WithLabelValues(reason).Inc() }
}

// FetchObserver returns a callback recording real Git fetch durations.
func FetchObserver() func(url string, d time.Duration, err error) {
	return func(_ string, d time.Duration, err error) {
		result := "success"
		if err != nil {
			result = "error"
		}
		defaultMetrics.FetchDuration.WithLabelValues(result).Observe(d.Seconds())
	}
}
