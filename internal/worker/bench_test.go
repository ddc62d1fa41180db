package worker

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/callback"
	"github.com/wecomsync/wecomsync/internal/event/eventtest"
	"github.com/wecomsync/wecomsync/internal/mirror"
	"github.com/wecomsync/wecomsync/internal/testutil/natstest"
	"github.com/wecomsync/wecomsync/internal/testutil/pgtest"
)

// benchLane is a lane over a fresh database and JetStream server.
type benchLane struct {
	pool     interface{ Close() }
	store    *mirror.Store
	js       jetstream.JetStream
	ns       *natstest.Server
	next     int
	distance int // events between a member's creation and its update (eventtest.LaneEventAt)
}

func newBenchLane(b *testing.B, stream jetstream.StreamConfig) *benchLane {
	b.Helper()
	pool := pgtest.New(b)
	ns := natstest.Start(b)
	_, js := ns.Connect(b)
	_, err := js.CreateOrUpdateStream(context.Background(), stream)
	require.NoError(b, err)
	return &benchLane{pool: pool, store: mirror.NewStore(pool, nil, discard(), mirror.Options{}), js: js, ns: ns, distance: 1000}
}

// seed fills the mirror the way a deployment's initial sync does: n members (other than
// the ones the events create) through Store.Sync, whose statistics refresh it waits for.
// A production mirror has been synced before events stream in; an empty one, never
// analyzed, is planned as if each corp had a handful of members for the first minute.
func (l *benchLane) seed(b *testing.B, n int) {
	b.Helper()
	users := make(map[string]string, n)
	for i := range n {
		users[fmt.Sprintf("seed%07d", i)] = fmt.Sprintf("成员%d", i)
	}
	_, err := l.store.Sync(context.Background(), corpA, snapshot{users: users})
	require.NoError(b, err)
	l.store.WaitAnalyze()
}

// publish stores events next..next+n-1 with async publishes and waits for the PubAcks.
func (l *benchLane) publish(b *testing.B, n int) uint64 {
	b.Helper()
	var last uint64
	for start := 0; start < n; start += 5000 {
		var futs []jetstream.PubAckFuture
		for i := start; i < min(start+5000, n); i++ {
			subj, data, id := eventtest.LaneEventAt(corpA, l.next, l.distance)
			l.next++
			f, err := l.js.PublishMsgAsync(&nats.Msg{Subject: subj, Data: data, Header: nats.Header{jetstream.MsgIDHeader: {id}}})
			require.NoError(b, err)
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case ack := <-f.Ok():
				last = ack.Sequence
			case err := <-f.Err():
				require.NoError(b, err)
			}
		}
	}
	return last
}

// drain runs a Consumer with opts until the lane has applied and settled everything, and
// returns how long that took.
func (l *benchLane) drain(b *testing.B, opts Options) time.Duration {
	b.Helper()
	ctx := context.Background()
	cons, err := EnsureConsumer(ctx, l.js, DefaultLane, opts)
	require.NoError(b, err)
	ta := &timedApplier{Applier: l.store}
	c := NewConsumer(DefaultLane, cons, ta, discard(), NewMetrics(prometheus.NewRegistry()), opts, []string{corpA})
	start := time.Now()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	for {
		info, err := cons.Info(ctx)
		require.NoError(b, err)
		if info.NumPending == 0 && info.NumAckPending == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling an observable state; a benchmark, not a test
	}
	took := time.Since(start)
	cancel()
	require.NoError(b, <-done)
	b.ReportMetric(100*float64(ta.ns.Load())/float64(took), "%-in-ApplyBatch")
	return took
}

// BenchmarkLaneThroughput measures the sustained apply rate from JetStream into Postgres:
// events are published first, then a Consumer applies them until the lane drains. The
// naive case is the same runtime with one event per batch, so one transaction per event;
// ratio is batched events/s over naive events/s measured in the same run. Each op is a
// whole drain; run with -benchtime=1x.
//
// The mirror is empty, or synced first with 50,000 members. The events (eventtest) create
// members and update members created 1,000 events before, so that in batches of
// thousands most updates follow their creation within the batch; "steady" updates members
// created 20,000 events before instead, every update changing a row of an earlier batch.
func BenchmarkLaneThroughput(b *testing.B) {
	gcAsWorkerRun(b)
	// 200,000 events: about ten seconds of applying, so the lane's start (the first fetch,
	// the first batch with nothing to overlap) weighs little in the sustained rate. The
	// naive rate is steady after a few hundred transactions.
	events := benchEvents(b, "WORKER_BENCH_THROUGHPUT_EVENTS", 200000)
	seeded := benchEvents(b, "WORKER_BENCH_SEED_MEMBERS", 50000)
	naiveEvents := min(max(events/10, 1000), 5000)
	for _, mirrorState := range []string{"empty", "synced", "synced-steady"} {
		prepare := func(b *testing.B) *benchLane {
			l := newBenchLane(b, callback.StreamConfig(callback.DefaultStreamOptions))
			if mirrorState != "empty" {
				l.seed(b, seeded)
			}
			if mirrorState == "synced-steady" {
				l.distance = 20000
			}
			return l
		}
		var naiveRate float64
		b.Run(mirrorState+"/naive", func(b *testing.B) {
			opts := DefaultOptions
			opts.BatchSize, opts.MaxWait = 1, 5*time.Millisecond
			opts.PinnedTTL = time.Second
			for b.Loop() {
				b.StopTimer()
				l := prepare(b)
				l.publish(b, naiveEvents)
				b.StartTimer()
				took := l.drain(b, opts)
				naiveRate = float64(naiveEvents) / took.Seconds()
			}
			b.ReportMetric(naiveRate, "events/s")
		})
		batches := []int{2000, 4000}
		if mirrorState == "synced-steady" {
			batches = []int{4000} // the default
		}
		for _, batch := range batches {
			b.Run(mirrorState+"/batch="+strconv.Itoa(batch), func(b *testing.B) {
				opts := DefaultOptions
				opts.BatchSize, opts.MaxWait = batch, 20*time.Millisecond
				var rate float64
				for b.Loop() {
					b.StopTimer()
					l := prepare(b)
					l.publish(b, events)
					b.StartTimer()
					took := l.drain(b, opts)
					rate = float64(events) / took.Seconds()
				}
				b.ReportMetric(rate, "events/s")
				if naiveRate > 0 {
					b.ReportMetric(rate/naiveRate, "x-naive")
				}
			})
		}
	}
}

func benchEvents(b *testing.B, env string, def int) int {
	if v := os.Getenv(env); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(b, err, env)
		return n
	}
	return def
}

// BenchmarkLaneMemory applies 1,000,000 events (WORKER_BENCH_MEMORY_EVENTS) through one
// lane while a publisher keeps the stream at most ~60,000 events ahead of it. Every 50ms
// it samples runtime.MemStats (peak-heap-MiB, garbage included) and the process RSS; every
// 2s it forces a GC and samples the live heap, reported for the first and the last tenth
// of the run (live-first-10%-MiB, live-last-10%-MiB): flat memory means those two are
// close. The process includes the in-process nats-server. WORKER_BENCH_HEAPPROFILE=path
// writes an in-use heap profile at the end (before the servers stop). It takes minutes:
// run it from `make bench` or by hand, with -benchtime=1x.
func BenchmarkLaneMemory(b *testing.B) {
	gcAsWorkerRun(b)
	total := benchEvents(b, "WORKER_BENCH_MEMORY_EVENTS", 1_000_000)
	for b.Loop() {
		b.StopTimer()
		cfg := callback.StreamConfig(callback.DefaultStreamOptions)
		// Keep the broker's share of this shared heap bounded: old messages (long applied
		// and acked) are discarded, and the Nats-Msg-Id dedup table (every id of the
		// window: 2 minutes of a fast publisher is hundreds of thousands of ids) is kept
		// to a second. In production the broker is another process.
		cfg.MaxMsgs = 200_000
		cfg.Duplicates = time.Second
		l := newBenchLane(b, cfg)
		opts := DefaultOptions
		cons, err := EnsureConsumer(context.Background(), l.js, DefaultLane, opts)
		require.NoError(b, err)
		ta := &timedApplier{Applier: l.store}
		c := NewConsumer(DefaultLane, cons, ta, discard(), NewMetrics(prometheus.NewRegistry()), opts, []string{corpA})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		var applied atomic.Int64
		var peakHeap, peakRSS, liveFirst, liveLast uint64
		sampleDone := make(chan struct{})
		go func() {
			defer close(sampleDone)
			var ms runtime.MemStats
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if i%40 == 39 {
					runtime.GC()
					runtime.ReadMemStats(&ms)
					switch n := applied.Load(); {
					case n < int64(total/10):
						liveFirst = max(liveFirst, ms.HeapAlloc)
					case n > int64(total*9/10):
						liveLast = max(liveLast, ms.HeapAlloc)
					}
				} else {
					runtime.ReadMemStats(&ms)
				}
				peakHeap = max(peakHeap, ms.HeapAlloc)
				peakRSS = max(peakRSS, rss())
			}
		}()
		b.StartTimer()
		start := time.Now()
		go func() { done <- c.Run(ctx) }()
		progress := func() *jetstream.ConsumerInfo {
			info, err := cons.Info(context.Background())
			require.NoError(b, err)
			applied.Store(int64(l.next) - int64(info.NumPending) - int64(info.NumAckPending))
			return info
		}
		// Publish in steps of 20,000, staying at most 60,000 ahead of the lane.
		for l.next < total {
			for progress().NumPending >= 40_000 {
				time.Sleep(20 * time.Millisecond)
			}
			l.publish(b, min(20_000, total-l.next))
		}
		for info := progress(); info.NumPending != 0 || info.NumAckPending != 0; info = progress() {
			time.Sleep(20 * time.Millisecond)
		}
		took := time.Since(start)
		b.StopTimer()
		if path := os.Getenv("WORKER_BENCH_HEAPPROFILE"); path != "" {
			f, err := os.Create(path)
			require.NoError(b, err)
			runtime.GC()
			require.NoError(b, pprof.WriteHeapProfile(f))
			require.NoError(b, f.Close())
		}
		cancel()
		require.NoError(b, <-done)
		<-sampleDone
		b.StartTimer()
		b.ReportMetric(float64(total)/took.Seconds(), "events/s")
		b.ReportMetric(100*float64(ta.ns.Load())/float64(took), "%-in-ApplyBatch")
		b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(liveFirst)/(1<<20), "live-first-10%-MiB")
		b.ReportMetric(float64(liveLast)/(1<<20), "live-last-10%-MiB")
		b.ReportMetric(float64(peakRSS)/(1<<20), "peak-rss-MiB")
	}
}

// timedApplier measures the time spent in the mirror's ApplyBatch, to tell the runtime's
// own cost (fetch, decode, settle) from the database's.
type timedApplier struct {
	Applier
	ns atomic.Int64
}

func (t *timedApplier) ApplyBatch(ctx context.Context, corp string, items []mirror.Item) ([]mirror.Result, error) {
	s := time.Now()
	r, err := t.Applier.ApplyBatch(ctx, corp, items)
	t.ns.Add(int64(time.Since(s)))
	return r, err
}

// rss returns the process's resident set size from /proc/self/statm (0 elsewhere).
func rss() uint64 {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// gcAsWorkerRun sets the garbage collector's target as `worker run` does (SetGCDefaults:
// GCPercent unless GOGC is set) for the benchmark, and restores it after.
func gcAsWorkerRun(b *testing.B) {
	if prev, changed := SetGCDefaults(os.Getenv); changed {
		b.Cleanup(func() { debug.SetGCPercent(prev) })
	}
}
