package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// acceptHistogram is the engine's own engine_accept_duration_seconds for
// one pipeline: cumulative counts per upper bound, in the order /metrics
// lists them (ascending, +Inf last).
type acceptHistogram struct {
	bounds []float64
	counts []float64
}

// readAcceptHistogram scrapes the engine's /metrics. The engine's view of
// accept time leaves out the load generator's own scheduling delays, which
// on a machine this busy can be most of the client's p99.
func readAcceptHistogram(ctx context.Context, client *http.Client, base, pipeline string) (*acceptHistogram, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the engine's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading the engine's metrics: HTTP %d", resp.StatusCode)
	}
	return parseAcceptHistogram(resp.Body, pipeline)
}

func parseAcceptHistogram(r io.Reader, pipeline string) (*acceptHistogram, error) {
	prefix := `engine_accept_duration_seconds_bucket{pipeline="` + pipeline + `",le="`
	h := &acceptHistogram{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		le, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			return nil, fmt.Errorf("engine metrics: cannot read %q", sc.Text())
		}
		bound, err := strconv.ParseFloat(le, 64)
		if err != nil {
			return nil, fmt.Errorf("engine metrics: bucket bound %q: %w", le, err)
		}
		count, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("engine metrics: bucket count %q: %w", value, err)
		}
		h.bounds = append(h.bounds, bound)
		h.counts = append(h.counts, count)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("engine metrics: %w", err)
	}
	if len(h.counts) == 0 || h.counts[len(h.counts)-1] == 0 {
		return nil, fmt.Errorf("engine metrics: no engine_accept_duration_seconds for %s", pipeline)
	}
	return h, nil
}

// quantileBound is the upper bound, in seconds, of the bucket holding
// quantile q: the true quantile is at most this (+Inf past the last bound).
func (h *acceptHistogram) quantileBound(q float64) float64 {
	total := h.counts[len(h.counts)-1]
	want := math.Ceil(q * total)
	for i, c := range h.counts {
		if c >= want {
			return h.bounds[i]
		}
	}
	return math.Inf(1)
}
