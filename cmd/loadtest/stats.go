package main

import (
	"math"
	"slices"
	"time"
)

// percentiles returns the nearest-rank percentiles ps (0 < p <= 100) of
// ds: the smallest value that at least p% of the sample is at or below.
// Nearest rank never invents a value between two samples, so a p99 is a
// latency some event really had. ds is sorted in place; an empty sample
// gives zeros.
func percentiles(ds []time.Duration, ps ...float64) []time.Duration {
	out := make([]time.Duration, len(ps))
	if len(ds) == 0 {
		return out
	}
	slices.Sort(ds)
	for i, p := range ps {
		rank := int(math.Ceil(p / 100 * float64(len(ds))))
		out[i] = ds[min(max(rank, 1), len(ds))-1]
	}
	return out
}

// perSecond is n over d, or 0 when d is not positive.
func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
