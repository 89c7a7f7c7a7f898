package runner

import (
	"net/http"
	"strconv"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/spec"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the runner's Prometheus series, on a registry of its own so
// that several runners (tests) do not collide.
type metrics struct {
	registry        *prometheus.Registry
	received        *prometheus.CounterVec   // pipeline
	duplicates      *prometheus.CounterVec   // pipeline
	refused         *prometheus.CounterVec   // pipeline, reason
	handled         *prometheus.CounterVec   // pipeline, outcome: delivered, filtered
	retried         *prometheus.CounterVec   // pipeline
	replayed        *prometheus.CounterVec   // pipeline: dead letters queued again
	queuedAtStart   *prometheus.GaugeVec     // pipeline: events found in the inbox at the start
	deadLettered    *prometheus.CounterVec   // pipeline, reason
	batchSize       *prometheus.HistogramVec // pipeline: events per request
	acceptDuration  *prometheus.HistogramVec // pipeline: webhook in to 2xx out
	requestDuration *prometheus.HistogramVec // connection, endpoint, code
	rateLimitWait   *prometheus.CounterVec   // connection: seconds
	pauses          *prometheus.CounterVec   // connection: pauses begun (a burst of 429s is one)
	answered        *prometheus.CounterVec   // pipeline, code, cache: synchronous pipelines' answers
	reloads         *prometheus.CounterVec   // pipeline, result: added, changed, removed, rejected, restored
	lastReloadOK    prometheus.Gauge
}

func newMetrics(r *Runner) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "engine_events_received_total", Help: "Events taken in: webhooks stored in the inbox, and CSV rows read from their file.",
		}, []string{"pipeline"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "engine_events_duplicate_total", Help: "Events recognised as repeats of stored ones and not stored again.",
		}, []string{"pipeline"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "engine_events_refused_total", Help: "Webhooks answered with an error and not stored, by reason.",
		}, []string{"pipeline", "reason"}),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "engine_events_handled_total", Help: "Events done with: delivered or filtered out.",
		}, []string{"pipeline", "outcome"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "engine_events_retried_total", Help: "Attempts that failed and will be made again.",
		}, []string{"pipeline"}),
		// With these two, the counts add up: received + replayed + queued
		// at the start = handled + dead-lettered (but csv_row: a broken
		// row is never received) + the inbox's depth. A replayed event is
		// no new event (received), but its outcome is counted again (a QA
		// run could not tell replays from losses).
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "engine_events_replayed_total", Help: "Dead letters queued again by a replay through the running engine's admin listener; each outcome is counted again. Replays made by engine dlq replay while it was stopped are in engine_events_queued_at_start.",
		}, []string{"pipeline"}),
		queuedAtStart: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "engine_events_queued_at_start", Help: "Events in the inbox when the engine started: left by the last run, or queued by engine dlq replay while it was stopped.",
		}, []string{"pipeline"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "engine_events_dead_lettered_total", Help: "Events moved to the dead letters, by reason.",
		}, []string{"pipeline", "reason"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "engine_batch_events", Help: "Events carried by each request a batching pipeline sent (a merged request, or one event sent alone).",
			Buckets: []float64{1, 2, 5, 10, 20, 30, 40, 45, 50, 60, 75},
		}, []string{"pipeline"}),
		acceptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "engine_accept_duration_seconds", Help: "Time from a webhook's headers to its 2xx answer (stored, or recognised as a repeat): mostly the inbox journal's write and sync.",
			Buckets: []float64{0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25},
		}, []string{"pipeline"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "engine_request_duration_seconds", Help: "Requests to connections (lookups and targets), by answer.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"connection", "endpoint", "code"}),
		rateLimitWait: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "engine_rate_limit_wait_seconds_total", Help: "Seconds requests waited for a connection's rate limit or pause, the wait of a request that got the 429 or Retry-After for its retry and a batch's kept open for them included; summed over requests (two waiting one second together add 2, a merged Braze request counts once), each added once it is over, never in advance.",
		}, []string{"connection"}),
		pauses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "engine_connection_pauses_total", Help: "Pauses of a whole connection after a 429 or Retry-After; answers during a pause extend it, and are not counted again.",
		}, []string{"connection"}),
		answered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "engine_respond_answers_total", Help: "Answers of synchronous (respond) pipelines, by status code and cache (hit, miss, stale; none without a cache or when no answer could be given).",
		}, []string{"pipeline", "code", "cache"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "engine_reload_total", Help: "Pipeline changes a reload made or refused, by result: added, changed, removed, rejected, restored (a rejected file accepted again as the version that runs).",
		}, []string{"pipeline", "result"}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "engine_config_last_reload_successful", Help: "1 when the last reload took every file, 0 when it rejected one (its running version goes on).",
		}),
	}
	m.lastReloadOK.Set(1)
	depth := prometheus.NewDesc("engine_inbox_depth", "Events in the inbox, not yet delivered.", []string{"pipeline"}, nil)
	dead := prometheus.NewDesc("engine_dead_letters", "Dead letters stored in the data folder, of every pipeline, until replayed or dropped.", nil, nil)
	for name, n := range r.store.Pipelines() {
		m.queuedAtStart.WithLabelValues(name).Set(float64(n))
	}
	m.registry.MustRegister(m.received, m.duplicates, m.refused, m.handled, m.retried, m.replayed, m.queuedAtStart, m.deadLettered,
		m.batchSize, m.acceptDuration, m.requestDuration, m.rateLimitWait, m.pauses, m.answered, m.reloads, m.lastReloadOK,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectorFunc{depth, func(ch chan<- prometheus.Metric) {
			// The running pipelines, and any other that still has events
			// queued (one a reload removed).
			names := r.store.Pipelines()
			for name := range r.gen.Load().lanes {
				names[name] = r.store.Depth(name)
			}
			for name, n := range names {
				ch <- prometheus.MustNewConstMetric(depth, prometheus.GaugeValue, float64(n), name)
			}
		}},
		collectorFunc{dead, func(ch chan<- prometheus.Metric) {
			// engine_events_dead_lettered_total counts from the start;
			// this is what is stored, across restarts, to alert on.
			if n, err := r.store.DeadLetterCount(); err == nil {
				ch <- prometheus.MustNewConstMetric(dead, prometheus.GaugeValue, float64(n))
			}
		}})
	return m
}

// reloadResults are the results engine_reload_total counts.
var reloadResults = []string{"added", "changed", "removed", "rejected", "restored"}

// expect creates p's series whose labels are known before anything
// happens, at 0. A labelled series otherwise appears at its first
// increment: after a restart a dashboard showed no data rather than 0, and
// an absent() alert fired for a pipeline that was merely quiet. A
// synchronous pipeline never queues, so it gets none of the queue's
// series (engine_respond_answers_total is its own).
func (m *metrics) expect(p *engine.Pipeline) {
	for _, c := range pipelineConnections(p) {
		m.rateLimitWait.WithLabelValues(c.Name)
		m.pauses.WithLabelValues(c.Name)
	}
	for _, result := range reloadResults {
		m.reloads.WithLabelValues(p.Name, result)
	}
	webhook := p.Source.Type.Kind == spec.HTTPSource
	if webhook {
		reasons := []string{"unauthorized", "header_twice", "too_large", "body_unread", "not_json", "id_too_long", "busy"}
		if p.Respond == nil {
			reasons = append(reasons, "inbox_full", "store_failed")
		}
		for _, reason := range reasons {
			m.refused.WithLabelValues(p.Name, reason)
		}
	}
	if !queues(p) {
		return
	}
	m.received.WithLabelValues(p.Name)
	m.replayed.WithLabelValues(p.Name)
	m.queuedAtStart.WithLabelValues(p.Name)
	if webhook {
		m.duplicates.WithLabelValues(p.Name)
	}
	for _, outcome := range []string{"delivered", "filtered"} {
		m.handled.WithLabelValues(p.Name, outcome)
	}
	m.retried.WithLabelValues(p.Name)
	for _, reason := range inbox.Reasons {
		if reason != "csv_row" || !webhook {
			m.deadLettered.WithLabelValues(p.Name, reason)
		}
	}
}

// collectorFunc is a collector computed at scrape time.
type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// observeRequest records one request to a connection; code is the HTTP
// status, or "error" when there was no answer.
func (m *metrics) observeRequest(connection, endpoint string, status int, took, waited time.Duration) {
	code := "error"
	if status != 0 {
		code = strconv.Itoa(status)
	}
	m.requestDuration.WithLabelValues(connection, endpoint, code).Observe(took.Seconds())
	if waited > 0 {
		m.rateLimitWait.WithLabelValues(connection).Add(waited.Seconds())
	}
}
