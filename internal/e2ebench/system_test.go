package e2ebench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/callback"
	"github.com/wecomsync/wecomsync/internal/crypto"
	"github.com/wecomsync/wecomsync/internal/db"
	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/mirror"
	"github.com/wecomsync/wecomsync/internal/tenant"
	"github.com/wecomsync/wecomsync/internal/testutil/natstest"
	"github.com/wecomsync/wecomsync/internal/testutil/pgtest"
	"github.com/wecomsync/wecomsync/internal/wecom"
	"github.com/wecomsync/wecomsync/internal/worker"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// sysConfig sizes the system under test.
type sysConfig struct {
	corps     int            // emulators (tenants), one ordered callback queue each
	seedUsers int            // members seeded per corp
	lane      worker.Options // the worker's lane tuning
	// partitions is how many lanes the corps are spread over (WORKER_PARTITIONS).
	partitions int
	// poolMaxConns, when > 0, sets the worker pool's size (pool_max_conns in
	// DATABASE_URL); 0 keeps pgxpool's default, max(4, CPUs).
	poolMaxConns int
}

// defaultSysConfig is the benchmark's configuration: worker.DefaultOptions (what
// `worker run` uses without WORKER_* variables) unless E2EBENCH_* variables say otherwise.
func defaultSysConfig(tb testing.TB) sysConfig {
	tb.Helper()
	c := sysConfig{corps: envInt(tb, "E2EBENCH_CORPS", 8), seedUsers: 1000, lane: worker.DefaultOptions}
	if v := os.Getenv("E2EBENCH_MAX_WAIT"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(tb, err, "E2EBENCH_MAX_WAIT")
		c.lane.MaxWait = d
	}
	c.lane.BatchSize = envInt(tb, "E2EBENCH_BATCH", c.lane.BatchSize)
	c.partitions = envInt(tb, "E2EBENCH_PARTITIONS", defaultPartitions(c.corps))
	c.poolMaxConns = envInt(tb, "E2EBENCH_POOL_MAX_CONNS", 0)
	require.NoError(tb, c.lane.Validate())
	return c
}

// defaultPartitions is cmd/worker's WORKER_PARTITIONS default (DefaultPartitions): one
// lane, the fastest on one machine; E2EBENCH_PARTITIONS measures others.
func defaultPartitions(int) int { return 1 }

func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(tb, err, name)
	require.Positive(tb, n, name)
	return n
}

// corp is one emulated WeCom corp and what the editors need to edit it.
type corp struct {
	id    string
	emu   *emulator.Server
	api   string   // http://host:port/cgi-bin/
	token string   // console-secret access token: edits are called back
	users []string // seeded userids, the members updates go to
}

// system is the whole pipeline: emulators → receiver → JetStream → worker → Postgres,
// plus the detector that sees edits land in the mirror.
type system struct {
	cfg    sysConfig
	corps  []*corp
	byID   map[string]int
	pool   *pgxpool.Pool
	js     jetstream.JetStream
	client *http.Client // the editors' client
	det    *detector
	next   atomic.Int64 // global edit number: every edit's position is unique

	applier *timedApplier
	dbName  string // the mirror database, to find its Postgres backends
	// laneBacklog returns the events in WECOM_EVENTS the lanes have not yet settled
	// (not yet delivered, or delivered and not yet acked).
	laneBacklog func(context.Context) (int64, error)
}

// editNumber finds the edit number in a bus message's data ("position":"e2e-<n>").
func editNumber(data []byte) (int64, bool) {
	const key = `"position":"e2e-`
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := data[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return n, err == nil
}

// timedApplier counts the worker's ApplyBatch calls (one transaction per corp per
// batch), their events and the time spent in them, to tell the mirror's share of the
// time from the rest of the system's.
type timedApplier struct {
	worker.Applier
	calls, items, ns atomic.Int64
}

func (t *timedApplier) ApplyBatch(ctx context.Context, corp string, items []mirror.Item) ([]mirror.Result, error) {
	start := time.Now()
	r, err := t.Applier.ApplyBatch(ctx, corp, items)
	t.ns.Add(int64(time.Since(start)))
	t.calls.Add(1)
	t.items.Add(int64(len(items)))
	return r, err
}

// applyStats is what the worker's applier did during a run.
type applyStats struct {
	calls, items int64
	busy         time.Duration
}

func (t *timedApplier) snapshot() applyStats {
	return applyStats{calls: t.calls.Load(), items: t.items.Load(), busy: time.Duration(t.ns.Load())}
}

// startSystem builds and starts every component and returns once the worker has synced
// every corp and is consuming. Everything stops when tb ends.
func startSystem(tb testing.TB, cfg sysConfig) *system {
	tb.Helper()
	ctx := context.Background()
	s := &system{cfg: cfg, byID: map[string]int{},
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 128}}}
	tb.Cleanup(s.client.CloseIdleConnections)

	// Profiler labels name the component each goroutine works for (goroutines inherit
	// the labels of the goroutine that starts them), so `go tool pprof -tags` splits a
	// CPU profile of the run by component.
	defer label("")
	label("nats-server")
	ns := natstest.Start(tb)
	label("harness")
	_, s.js = ns.Connect(tb)
	require.NoError(tb, callback.EnsureStream(ctx, s.js, callback.DefaultStreamOptions))
	require.NoError(tb, mirror.EnsureChangesStream(ctx, s.js, 1))
	// A plain subscriber on the events' subjects sees each event as the broker takes the
	// receiver's publish (JetStream stores it on the same pass): the time splits each
	// edit's latency into "to the broker" and "broker to mirror".
	tapNC, _ := ns.Connect(tb)
	_, err := tapNC.Subscribe(callback.StreamSubjects, func(m *nats.Msg) {
		if r := s.det.cur.Load(); r != nil {
			if g, ok := editNumber(m.Data); ok {
				r.markStored(g, time.Now().UnixNano())
			}
		}
	})
	require.NoError(tb, err)

	// The callback receiver: one tenant per corp, its own NATS connection.
	tenants := make([]tenant.Tenant, cfg.corps)
	for i := range tenants {
		tenants[i] = tenant.Tenant{Name: fmt.Sprintf("t%02d", i), CorpID: fmt.Sprintf("wwe2ebench%04d", i),
			Token: fmt.Sprintf("token%d", i), AESKey: crypto.NewKey(), ContactSecret: fmt.Sprintf("contact-%d", i)}
	}
	label("callback")
	_, recvJS := ns.Connect(tb)
	h, err := callback.NewHandler(tenants, recvJS, discard(), callback.NewMetrics(prometheus.NewRegistry()), callback.Options{})
	require.NoError(tb, err)
	recvURL := serve(tb, h)

	// The emulators, one per corp, each calling back its tenant's URL.
	label("emulator")
	for i, t := range tenants {
		emu, err := emulator.New(emulator.Config{
			Addr: "127.0.0.1:0", CorpID: t.CorpID, ContactSecret: t.ContactSecret, ConsoleSecret: fmt.Sprintf("console-%d", i),
			CallbackURL: recvURL + "/callback/" + t.Name, CallbackToken: t.Token, CallbackAESKey: t.AESKey,
			SeedUsers: cfg.seedUsers, SeedRandom: uint64(i + 1),
			RateLimitPerMinute: -1, ConcurrencyLimit: -1,
		})
		require.NoError(tb, err)
		require.NoError(tb, emu.Start(ctx), "emulator start (verifies the callback URL)")
		tb.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = emu.Close(cctx)
		})
		c := &corp{id: t.CorpID, emu: emu, api: "http://" + emu.Addr() + "/cgi-bin/"}
		members, ok := emu.Directory().DepartmentUsers(1, true)
		require.True(tb, ok)
		for _, u := range members {
			c.users = append(c.users, u.UserID)
		}
		require.NotEmpty(tb, c.users)
		c.token = s.gettoken(tb, c, fmt.Sprintf("console-%d", i))
		s.byID[c.id] = len(s.corps)
		s.corps = append(s.corps, c)
	}

	// The worker, wired as `worker run` wires it.
	label("worker")
	dbURL := pgtest.NewDatabase(tb)
	pcfg, err := pgx.ParseConfig(dbURL)
	require.NoError(tb, err)
	s.dbName = pcfg.Database
	poolURL := dbURL
	if cfg.poolMaxConns > 0 {
		poolURL += sepQuery(dbURL) + "pool_max_conns=" + strconv.Itoa(cfg.poolMaxConns)
	}
	// Sized as `worker run` sizes it: a connection per lane plus four.
	s.pool, err = db.Open(ctx, poolURL, db.MinConns(poolURL, min(cfg.partitions, len(tenants))+4))
	require.NoError(tb, err)
	tb.Cleanup(s.pool.Close)
	_, workerJS := ns.Connect(tb) // `worker run` uses one NATS connection for everything
	reg := prometheus.NewRegistry()
	// Unlimited client pacing: the emulators' limits are off, and only the initial sync
	// (set-up, not measured) calls the API; the edits' events carry full data, so the
	// measured path makes no lookups.
	limits := wecom.NewLimits(0, 0)
	tokens := wecom.NewPGTokenStore(s.pool)
	clients := map[string]worker.DirectoryClient{}
	corpIDs := make([]string, len(tenants))
	for i, t := range tenants {
		wc, err := wecom.New(wecom.Config{BaseURL: "http://" + s.corps[i].emu.Addr(), CorpID: t.CorpID, Secret: t.ContactSecret,
			Logger: discard(), Registerer: reg, Store: tokens, Limits: limits})
		require.NoError(tb, err)
		clients[t.CorpID] = wc
		corpIDs[i] = t.CorpID
	}
	wcs := worker.NewWeCom(clients, 8)
	mmetrics := mirror.NewMetrics(reg)
	store := mirror.NewStore(s.pool, wcs, discard(), mirror.Options{Metrics: mmetrics})
	wmetrics := worker.NewMetrics(reg)
	// The corps spread over the partition lanes, one pinned consumer each.
	lanes := worker.PartitionLanes(worker.DefaultLane.Name, corpIDs, cfg.partitions)
	cons, err := worker.EnsureLanes(ctx, workerJS, worker.DefaultLane.Name, lanes, cfg.lane, store, discard())
	require.NoError(tb, err)
	stream, err := workerJS.Stream(ctx, callback.StreamName)
	require.NoError(tb, err)
	require.NoError(tb, worker.InitialSync(ctx, store, wcs, worker.EventsTail(workerJS), corpIDs, discard(), wmetrics))

	// The detector listens before any edit is made, so it sees every commit.
	label("harness")
	s.det = startDetector(tb, dbURL, s.byID)
	label("worker")

	s.applier = &timedApplier{Applier: store}
	consumers := make([]*worker.Consumer, len(lanes))
	for i, l := range lanes {
		consumers[i] = worker.NewConsumer(l, cons[i], s.applier, discard(), wmetrics, cfg.lane, corpIDs)
		consumers[i].SetUnpinner(stream)
	}
	s.laneBacklog = func(ctx context.Context) (int64, error) {
		var n int64
		for _, c := range cons {
			i, err := c.Info(ctx)
			if err != nil {
				return 0, err
			}
			n += int64(i.NumPending) + int64(i.NumAckPending)
		}
		return n, nil
	}
	group := worker.NewGroup(consumers, discard(), cfg.lane)
	relay := mirror.NewRelay(s.pool, workerJS, discard(), mirror.RelayOptions{Metrics: mmetrics})
	runCtx, stop := context.WithCancel(context.Background())
	laneDone, relayDone := make(chan error, 1), make(chan error, 1)
	go func() { laneDone <- group.Run(runCtx) }()
	go func() { relayDone <- relay.Run(runCtx) }()
	tb.Cleanup(func() {
		stop()
		require.NoError(tb, <-laneDone)
		require.NoError(tb, <-relayDone)
	})
	return s
}

// label sets the profiler label component=name on the calling goroutine (and so on the
// goroutines it starts from now on); "" removes it.
func label(name string) {
	if name == "" {
		pprof.SetGoroutineLabels(context.Background())
		return
	}
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("component", name)))
}

func sepQuery(u string) string {
	if strings.Contains(u, "?") {
		return "&"
	}
	return "?"
}

// serve serves h at /callback and /callback/ on a loopback listener with cmd/callback's
// server settings and returns its base URL.
func serve(tb testing.TB, h http.Handler) string {
	tb.Helper()
	mux := http.NewServeMux()
	mux.Handle("/callback", h)
	mux.Handle("/callback/", h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

func (s *system) gettoken(tb testing.TB, c *corp, secret string) string {
	tb.Helper()
	resp, err := s.client.Get(c.api + "gettoken?corpid=" + c.id + "&corpsecret=" + secret)
	require.NoError(tb, err)
	defer resp.Body.Close()
	var tok struct {
		ErrCode     int    `json:"errcode"`
		AccessToken string `json:"access_token"`
	}
	require.NoError(tb, json.NewDecoder(resp.Body).Decode(&tok))
	require.Zero(tb, tok.ErrCode)
	return tok.AccessToken
}

// edit makes console edit n (a global number): user/create of a new member one time in
// five, otherwise user/update of a seeded member's position; either way the member's
// position becomes "e2e-<n>". It returns an error for a transport failure or a non-zero
// errcode.
func (s *system) edit(n int64) error {
	c := s.corps[n%int64(len(s.corps))]
	k := n / int64(len(s.corps)) // the corp's own edit number
	var path, body string
	if k%5 == 4 {
		path = "user/create"
		body = fmt.Sprintf(`{"userid":"e2e%d","name":"新成员%d","department":[1],"position":"e2e-%d","mobile":"19%09d"}`, n, n, n, n)
	} else {
		path = "user/update"
		body = fmt.Sprintf(`{"userid":"%s","position":"e2e-%d"}`, c.users[k%int64(len(c.users))], n)
	}
	resp, err := s.client.Post(c.api+path+"?access_token="+c.token, "application/json", strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s on %s: %w", path, c.id, err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("reading the answer of %s on %s: %w", path, c.id, err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(raw, []byte(`"errcode":0,`)) {
		return fmt.Errorf("%s on %s answered HTTP %d %s", path, c.id, resp.StatusCode, raw)
	}
	return nil
}

// callbacksPending returns the callbacks the emulators have queued or are delivering,
// and how many they gave up on.
func (s *system) callbacksPending() (pending, failed int64) {
	for _, c := range s.corps {
		st := c.emu.CallbackStats()
		pending += st.Pending
		failed += st.Failed
	}
	return pending, failed
}

// run is one measured set of edits: numbers base..base+n-1.
type run struct {
	base  int64
	n     int
	start []int64 // per edit: unix nanos its latency counts from (scheduled or sent)
	seen  []int64 // per edit: unix nanos it was seen in the mirror; 0 until then
	// stored is per edit: unix nanos the broker took its event; 0 until then.
	stored []int64
	left   atomic.Int64
	done   chan struct{}
	// window, when set, holds a token per edit sent and not yet seen (closed loop).
	window chan struct{}
	// applyBefore and apply are the worker applier's counters at the start and over the run.
	applyBefore, apply applyStats
	// cpuBefore and cpu are the CPU counters at the start and over the run.
	cpuBefore, cpu cpuUse
	// queueEmulator and queueLane are the mean callbacks queued in the emulators and
	// events waiting in WECOM_EVENTS for the worker, sampled during the run.
	queueEmulator, queueLane float64
	stopSampling             func()
}

// cpuUse is CPU time: the machine's busy and total jiffies (/proc/stat), this process's
// user+system time, and that of the Postgres backends serving the mirror database (the
// postmaster's background processes, e.g. the WAL writer, are not included). What the
// machine spent beyond these two is other work on the (shared) machine.
type cpuUse struct {
	busy, total int64 // jiffies, all CPUs
	proc        time.Duration
	pg          map[int]int64 // backend pid -> utime+stime jiffies
	pgTotal     int64         // jiffies, in since's result
	wall        time.Duration
	at          time.Time
}

// clockTicks is USER_HZ, the unit of /proc's CPU times (100 on Linux).
const clockTicks = 100

func readCPU(dbName string) cpuUse {
	u := cpuUse{at: time.Now(), pg: map[int]int64{}}
	if dirs, err := os.ReadDir("/proc"); err == nil && dbName != "" {
		for _, d := range dirs {
			pid, err := strconv.Atoi(d.Name())
			if err != nil {
				continue
			}
			cmd, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
			if err != nil || !bytes.HasPrefix(cmd, []byte("postgres: ")) || !bytes.Contains(cmd, []byte(" "+dbName+" ")) {
				continue
			}
			st, err := os.ReadFile("/proc/" + d.Name() + "/stat")
			if err != nil {
				continue
			}
			// Fields after the parenthesised command: state is field 3; utime 14, stime 15.
			_, rest, _ := bytes.Cut(st, []byte(") "))
			f := strings.Fields(string(rest))
			if len(f) > 12 {
				ut, _ := strconv.ParseInt(f[11], 10, 64)
				stime, _ := strconv.ParseInt(f[12], 10, 64)
				u.pg[pid] = ut + stime
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		u.proc = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return u
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		u.total += n
		if i != 3 && i != 4 { // idle, iowait
			u.busy += n
		}
	}
	return u
}

// since returns the use between an earlier reading and u.
func (u cpuUse) since(a cpuUse) cpuUse {
	d := cpuUse{busy: u.busy - a.busy, total: u.total - a.total, proc: u.proc - a.proc, wall: u.at.Sub(a.at)}
	for pid, j := range u.pg {
		d.pgTotal += j - a.pg[pid] // a backend started since counts from zero
	}
	return d
}

// cpus returns how many CPUs were busy on average: the whole machine, this process, and
// the mirror database's Postgres backends.
func (u cpuUse) cpus() (machine, proc, pg float64) {
	if u.total <= 0 || u.wall <= 0 {
		return 0, 0, 0
	}
	w := u.wall.Seconds()
	return float64(runtime.NumCPU()) * float64(u.busy) / float64(u.total), u.proc.Seconds() / w, float64(u.pgTotal) / clockTicks / w
}

func newRun(base int64, n, window int) *run {
	r := &run{base: base, n: n, start: make([]int64, n), seen: make([]int64, n), stored: make([]int64, n), done: make(chan struct{})}
	r.left.Store(int64(n))
	if window > 0 {
		r.window = make(chan struct{}, window)
	}
	return r
}

// markStored records that edit number g reached the broker at t (the first time).
func (r *run) markStored(g int64, t int64) {
	if i := g - r.base; i >= 0 && i < int64(r.n) {
		atomic.CompareAndSwapInt64(&r.stored[i], 0, t)
	}
}

// markSeen records that edit number g was seen at t (once).
func (r *run) markSeen(g int64, t int64) {
	i := g - r.base
	if i < 0 || i >= int64(r.n) || r.seen[i] != 0 {
		return
	}
	atomic.StoreInt64(&r.seen[i], t)
	if r.window != nil {
		select {
		case <-r.window:
		default:
		}
	}
	if r.left.Add(-1) == 0 {
		close(r.done)
	}
}

// detector sees edits land in the mirror: it LISTENs on the mirror's NOTIFY channel
// (signalled by each apply transaction, delivered at commit) and reads each notified
// corp's new change rows.
type detector struct {
	cur     atomic.Pointer[run]
	queries atomic.Int64
}

func startDetector(tb testing.TB, dbURL string, corps map[string]int) *detector {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(tb, err)
	_, err = conn.Exec(ctx, "LISTEN "+mirror.NotifyChannel)
	require.NoError(tb, err)
	// Start after what the initial sync logged.
	cursors := make([]int64, len(corps))
	var last int64
	require.NoError(tb, conn.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM wecom.changes`).Scan(&last))
	for i := range cursors {
		cursors[i] = last
	}
	d := &detector{}
	done := make(chan error, 1)
	go func() { done <- d.loop(ctx, conn, corps, cursors) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			tb.Errorf("detector: %v", err)
		}
		_ = conn.Close(context.Background())
	})
	return d
}

func (d *detector) loop(ctx context.Context, conn *pgx.Conn, corps map[string]int, cursors []int64) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		ci, ok := corps[n.Payload]
		if !ok {
			continue
		}
		rows, _ := conn.Query(ctx, `SELECT seq, coalesce(after->>'position', '') FROM wecom.changes
			WHERE corp_id = $1 AND seq > $2 AND entity = 'user' ORDER BY seq`, n.Payload, cursors[ci])
		var seqs []int64
		var positions []string
		var seq int64
		var pos string
		_, err = pgx.ForEachRow(rows, []any{&seq, &pos}, func() error {
			seqs, positions = append(seqs, seq), append(positions, pos)
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading change rows: %w", err)
		}
		// After the read: every row returned was committed by now (an upper bound).
		now := time.Now().UnixNano()
		d.queries.Add(1)
		if len(seqs) == 0 {
			continue
		}
		cursors[ci] = seqs[len(seqs)-1]
		r := d.cur.Load()
		if r == nil {
			continue
		}
		for _, p := range positions {
			if g, ok := strings.CutPrefix(p, "e2e-"); ok {
				if v, err := strconv.ParseInt(g, 10, 64); err == nil {
					r.markSeen(v, now)
				}
			}
		}
	}
}

// paced makes n edits at rate per second, open loop: edit i is sent at start+i/rate
// from its own goroutine whatever happened to the others, and its latency counts from
// that scheduled time. It returns once every edit is seen in the mirror.
func (s *system) paced(tb testing.TB, n int, rate float64) *run {
	tb.Helper()
	label("harness")
	defer label("")
	r := s.begin(n, 0)
	var failed atomic.Int64
	var firstErr sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(float64(i) * float64(time.Second) / rate))
		if d := time.Until(at); d > 0 {
			time.Sleep(d) // pacing the load generator, not synchronisation
		}
		r.start[i] = at.UnixNano()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.edit(r.base + int64(i)); err != nil {
				if failed.Add(1) == 1 {
					firstErr.Do(func() { tb.Errorf("edit: %v", err) })
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(tb, failed.Load(), "failed edits")
	s.await(tb, r)
	return r
}

// editors is the flat-out run's number of concurrent HTTP editors.
const editors = 64

// flatOut makes n edits from `editors` concurrent editors as fast as the system takes
// them, with at most window edits sent and not yet seen in the mirror. Latency counts
// from when the edit was sent.
func (s *system) flatOut(tb testing.TB, n, window int) *run {
	tb.Helper()
	label("harness")
	defer label("")
	r := s.begin(n, window)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range editors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				r.window <- struct{}{} // blocks while window edits are unseen
				atomic.StoreInt64(&r.start[i], time.Now().UnixNano())
				if err := s.edit(r.base + i); err != nil {
					if failed.Add(1) == 1 {
						tb.Errorf("edit: %v", err)
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(tb, failed.Load(), "failed edits")
	s.await(tb, r)
	return r
}

// begin starts a run of n edits (a window > 0 bounds unseen edits) and shows it to the
// detector.
func (s *system) begin(n, window int) *run {
	r := newRun(s.next.Add(int64(n))-int64(n), n, window)
	r.applyBefore = s.applier.snapshot()
	r.cpuBefore = readCPU(s.dbName)
	s.det.cur.Store(r)
	r.stopSampling = s.sampleQueues(r)
	return r
}

// sampleQueues samples, every 20 ms until the returned stop is called, where the run's
// edits wait: in the emulators' callback queues, or in WECOM_EVENTS for the worker
// (messages not yet delivered or delivered and not yet acked).
func (s *system) sampleQueues(r *run) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var samples, emu, lane int64
		for {
			select {
			case <-ctx.Done():
				if samples > 0 {
					r.queueEmulator, r.queueLane = float64(emu)/float64(samples), float64(lane)/float64(samples)
				}
				return
			case <-t.C:
			}
			p, _ := s.callbacksPending()
			backlog, err := s.laneBacklog(ctx)
			if err != nil {
				continue
			}
			samples++
			emu += p
			lane += backlog
		}
	}()
	return func() { cancel(); <-done }
}

// await waits until every edit of r is seen in the mirror, failing after a minute
// without progress or when an emulator gave up on a callback.
func (s *system) await(tb testing.TB, r *run) {
	tb.Helper()
	last, lastChange := r.left.Load(), time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.done:
			s.det.cur.Store(nil)
			a := s.applier.snapshot()
			r.apply = applyStats{calls: a.calls - r.applyBefore.calls, items: a.items - r.applyBefore.items, busy: a.busy - r.applyBefore.busy}
			r.cpu = readCPU(s.dbName).since(r.cpuBefore)
			r.stopSampling()
			return
		case <-tick.C:
		}
		if _, failed := s.callbacksPending(); failed > 0 {
			tb.Fatalf("the emulators gave up on %d callbacks", failed)
		}
		if left := r.left.Load(); left != last {
			last, lastChange = left, time.Now()
		} else if time.Since(lastChange) > time.Minute {
			pending, _ := s.callbacksPending()
			tb.Fatalf("%d of %d edits not seen in the mirror after a minute without progress (%d callbacks pending)", left, r.n, pending)
		}
	}
}

// stats summarises a finished run: throughput over first start to last seen, and the
// latency percentiles in milliseconds.
type stats struct {
	events        int
	took          time.Duration
	rate          float64
	p50, p99, max float64
	// The latency split at the broker: edit → event taken by the broker (emulator,
	// callback round trip, receiver) and broker → mirror row (JetStream, worker, Postgres).
	toBroker50, toBroker99, toMirror50, toMirror99 float64
	apply                                          applyStats
	cpu                                            cpuUse
	queueEmulator, queueLane                       float64
}

// cpuPerEvent returns the CPU microseconds per event this process (everything but
// Postgres: emulators and load generator included) and the mirror's Postgres backends
// spent during the run.
func (st stats) cpuPerEvent() (proc, pg float64) {
	if st.events == 0 {
		return 0, 0
	}
	return st.cpu.proc.Seconds() * 1e6 / float64(st.events), float64(st.cpu.pgTotal) / clockTicks * 1e6 / float64(st.events)
}

func (r *run) stats() stats {
	lat := make([]int64, r.n)
	first, last := r.start[0], r.seen[0]
	for i := range r.n {
		lat[i] = r.seen[i] - r.start[i]
		first, last = min(first, r.start[i]), max(last, r.seen[i])
	}
	slices.Sort(lat)
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	took := time.Duration(last - first)
	st := stats{events: r.n, took: took, rate: float64(r.n) / took.Seconds(),
		p50: ms(lat[r.n/2]), p99: ms(lat[r.n*99/100]), max: ms(lat[r.n-1]), apply: r.apply, cpu: r.cpu,
		queueEmulator: r.queueEmulator, queueLane: r.queueLane}
	// The split counts the edits whose event the tap saw (a core subscriber may miss a
	// message under pressure; the end-to-end figures above never depend on it).
	var a, b []int64
	for i := range r.n {
		// Atomic: a slow tap may still be writing after the run ended.
		if at := atomic.LoadInt64(&r.stored[i]); at != 0 {
			a, b = append(a, at-r.start[i]), append(b, r.seen[i]-at)
		}
	}
	if len(a) > 0 {
		slices.Sort(a)
		slices.Sort(b)
		st.toBroker50, st.toBroker99 = ms(a[len(a)/2]), ms(a[len(a)*99/100])
		st.toMirror50, st.toMirror99 = ms(b[len(b)/2]), ms(b[len(b)*99/100])
	}
	return st
}
