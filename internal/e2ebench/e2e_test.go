package e2ebench

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// BenchmarkE2E measures the whole system on this machine (see the package comment):
// first the callback-only and apply-only baselines, then console edits paced at 100/s and
// 1,000/s (open loop) and flat out (closed loop), reporting events/s and the latency from
// the edit to the committed mirror row (p50_ms, p99_ms, max_ms). The flat-out run also
// reports its ratio to each baseline. Each op is a whole run: use -benchtime=1x. Goals:
// at least 5,000 events/s flat out, p99 under 100 ms at 1,000/s.
//
// Sizes: E2EBENCH_SECONDS (default 10) per paced run, E2EBENCH_FLAT_EVENTS (30,000),
// E2EBENCH_WINDOW (2,000 unseen edits at most, flat out), E2EBENCH_BASELINE_EVENTS
// (20,000 per baseline), E2EBENCH_CORPS (8); worker tuning E2EBENCH_PARTITIONS (8),
// E2EBENCH_MAX_WAIT and E2EBENCH_BATCH (worker.DefaultOptions), E2EBENCH_POOL_MAX_CONNS.
func BenchmarkE2E(b *testing.B) {
	baseN := envInt(b, "E2EBENCH_BASELINE_EVENTS", 20000)
	var cbRate, applyRate float64
	b.Run("callback_only", func(b *testing.B) {
		for b.Loop() {
			cbRate = callbackOnly(b, baseN)
		}
		b.ReportMetric(cbRate, "callbacks/s")
	})
	b.Run("apply_only", func(b *testing.B) {
		for b.Loop() {
			applyRate = applyOnly(b, baseN)
		}
		b.ReportMetric(applyRate, "events/s")
	})

	cfg := defaultSysConfig(b)
	secs := envInt(b, "E2EBENCH_SECONDS", 10)
	flatN := envInt(b, "E2EBENCH_FLAT_EVENTS", 30000)
	window := envInt(b, "E2EBENCH_WINDOW", 2000)
	setupStart := time.Now()
	sys := startSystem(b, cfg)
	// Warm up (connections, pools, the mirror's caches) for a second, unmeasured.
	sys.paced(b, 500, 500)
	setup := time.Since(setupStart)

	type row struct {
		name string
		st   stats
	}
	var rows []row
	report := func(b *testing.B, st stats) {
		b.ReportMetric(st.rate, "events/s")
		b.ReportMetric(st.p50, "p50_ms")
		b.ReportMetric(st.p99, "p99_ms")
		b.ReportMetric(st.max, "max_ms")
		b.ReportMetric(st.toMirror99, "broker_to_mirror_p99_ms")
		proc, pg := st.cpuPerEvent()
		b.ReportMetric(proc+pg, "cpu_us/event")
	}
	for _, rate := range []int{100, 1000} {
		name := fmt.Sprintf("rate=%d", rate)
		b.Run(name, func(b *testing.B) {
			var st stats
			for b.Loop() {
				st = sys.paced(b, rate*secs, float64(rate)).stats()
			}
			report(b, st)
			rows = append(rows, row{name, st})
		})
	}
	b.Run("flat_out", func(b *testing.B) {
		var st stats
		for b.Loop() {
			st = sys.flatOut(b, flatN, window).stats()
		}
		report(b, st)
		if cbRate > 0 {
			b.ReportMetric(st.rate/cbRate, "ratio_to_callback_only")
		}
		if applyRate > 0 {
			b.ReportMetric(st.rate/applyRate, "ratio_to_apply_only")
		}
		rows = append(rows, row{"flat_out", st})
	})

	w := os.Stdout
	pool := "default"
	if cfg.poolMaxConns > 0 {
		pool = fmt.Sprint(cfg.poolMaxConns)
	}
	fmt.Fprintf(w, "\nwhole system: emulator → callback → JetStream → worker → Postgres (%d corps over %d lanes, batch %d, max wait %s, pool %s; set-up %.1fs)\n",
		cfg.corps, cfg.partitions, cfg.lane.BatchSize, cfg.lane.MaxWait, pool, setup.Seconds())
	fmt.Fprintf(w, "%-10s %7s %9s %8s %8s %8s | %s | %s\n", "run", "edits", "events/s", "p50 ms", "p99 ms", "max ms",
		"ApplyBatch: calls ev/call ms/call busy", "CPUs: machine process postgres")
	for _, r := range rows {
		a := r.st.apply
		var per, ms float64
		if a.calls > 0 {
			per, ms = float64(a.items)/float64(a.calls), a.busy.Seconds()*1000/float64(a.calls)
		}
		mach, proc, pg := r.st.cpu.cpus()
		fmt.Fprintf(w, "%-10s %7d %9.0f %8.1f %8.1f %8.1f | %17d %7.1f %6.2f %4.0f%% | %13.2f %7.2f %8.2f\n", r.name, r.st.events, r.st.rate, r.st.p50, r.st.p99, r.st.max,
			a.calls, per, ms, 100*a.busy.Seconds()/r.st.took.Seconds(), mach, proc, pg)
	}
	fmt.Fprintf(w, "%-10s | %-27s | %-27s | %-36s | %s\n", "", "edit → broker p50/p99 ms", "broker → mirror p50/p99 ms",
		"mean queued: emulators  WECOM_EVENTS", "CPU µs/event: process postgres")
	for _, r := range rows {
		proc, pg := r.st.cpuPerEvent()
		fmt.Fprintf(w, "%-10s | %12.1f %14.1f | %12.1f %14.1f | %22.0f %13.0f | %21.0f %8.0f\n", r.name, r.st.toBroker50, r.st.toBroker99,
			r.st.toMirror50, r.st.toMirror99, r.st.queueEmulator, r.st.queueLane, proc, pg)
	}
	if cbRate > 0 || applyRate > 0 {
		fmt.Fprintf(w, "baselines (same run): callback_only %.0f callbacks/s, apply_only %.0f events/s\n", cbRate, applyRate)
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	for _, r := range rows {
		switch r.name {
		case "flat_out":
			if cbRate > 0 && applyRate > 0 {
				fmt.Fprintf(w, "flat out / callback_only = %.2f, flat out / apply_only = %.2f\n", r.st.rate/cbRate, r.st.rate/applyRate)
			}
			fmt.Fprintf(w, "goal ≥ 5,000 events/s flat out: %s (%.0f)\n", verdict(r.st.rate >= 5000), r.st.rate)
			if proc, pg := r.st.cpuPerEvent(); proc+pg > 0 {
				fmt.Fprintf(w, "flat out used %.0f µs of CPU per event (this process, emulators and load generator included, + postgres): %d idle CPUs would allow ≈ %.0f events/s\n",
					proc+pg, runtime.NumCPU(), float64(runtime.NumCPU())*1e6/(proc+pg))
			}
		case "rate=1000":
			fmt.Fprintf(w, "goal p99 < 100 ms at 1,000/s: %s (%.1f ms)\n", verdict(r.st.p99 < 100), r.st.p99)
		}
	}
	fmt.Fprintln(w, "(CPUs: averages over the run; machine minus process minus postgres is other work on the machine)")
	fmt.Fprintln(w)
}
