package worker

import (
	"runtime/debug"
	"strings"
)

// GCPercent is the garbage collector's target (GOGC) a running worker uses unless the
// GOGC environment variable sets one. A worker's live heap is small (60-160 MB at the
// default batch size, measured by BenchmarkLaneMemory) while applying allocates a few GB
// a minute, so at Go's default of 100 the collector ran several times a second and took a
// quarter of the worker's CPU (perf, BenchmarkLaneThroughput); that CPU is the one
// Postgres needs on a small machine. Four times the live heap is still a few hundred MB (peak RSS 702 MiB over a million
// events, against 327 at GOGC=100);
// GOMEMLIMIT (the Kubernetes manifest sets it to the container's limit) makes the
// collector work harder before the heap reaches it.
const GCPercent = 400

// SetGCDefaults applies GCPercent unless getenv("GOGC") is set, and returns the previous
// target (for debug.SetGCPercent) and whether it changed it.
func SetGCDefaults(getenv func(string) string) (previous int, changed bool) {
	if strings.TrimSpace(getenv("GOGC")) != "" {
		return 0, false
	}
	return debug.SetGCPercent(GCPercent), true
}
