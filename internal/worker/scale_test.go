package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/callback"
	"github.com/wecomsync/wecomsync/internal/event"
	"github.com/wecomsync/wecomsync/internal/mirror"
)

// envInt returns the integer in the environment variable name, or def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, name)
		return n
	}
	return def
}

// scaleModel is the expected outcome of the events the scale-out test publishes: per
// corp, the members' final names and the ids of the events in stream order (each event
// changes its member, so each makes exactly one change row).
type scaleModel struct {
	names  map[string]map[string]string
	events map[string][]string
}

// scaleEvent is one event to publish.
type scaleEvent struct {
	corp, subject, id string
	data              []byte
}

// scaleEvents generates perCorp events for every corp on a few members each: creates,
// renames (always to a new name) and deletes, and returns them interleaved across corps
// (round by round, corps shuffled within a round), with the model of their outcome.
func scaleEvents(t *testing.T, corps []string, perCorp int, rng *rand.Rand) ([]scaleEvent, *scaleModel) {
	t.Helper()
	model := &scaleModel{names: map[string]map[string]string{}, events: map[string][]string{}}
	byCorp := map[string][]scaleEvent{}
	n := 0
	for _, corp := range corps {
		names := map[string]string{}
		for k := range perCorp {
			n++
			user := "u" + strconv.Itoa(rng.IntN(4))
			var changeType, body string
			switch _, exists := names[user]; {
			case !exists:
				changeType, names[user] = "create_user", fmt.Sprintf("%s-%d", user, k)
				body = createUser(user, names[user], 1)
			case rng.IntN(6) == 0:
				changeType = "delete_user"
				body = "<UserID><![CDATA[" + user + "]]></UserID>"
				delete(names, user)
			default:
				changeType, names[user] = "update_user", fmt.Sprintf("%s-%d", user, k)
				body = renameUser(user, names[user])
			}
			raw := fmt.Sprintf(`<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>%d</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[%s]]></ChangeType>%s</xml>`,
				corp, 1700000000+n, changeType, body)
			e, err := event.Parse([]byte(raw))
			require.NoError(t, err)
			m := event.NewMessage(e, []byte(raw), "default", corp, time.Now())
			byCorp[corp] = append(byCorp[corp], scaleEvent{corp: corp, subject: e.Subject(corp), id: m.ID, data: m.AppendJSON(nil)})
			model.events[corp] = append(model.events[corp], m.ID)
		}
		model.names[corp] = names
	}
	var out []scaleEvent
	order := slices.Clone(corps)
	for k := range perCorp {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, corp := range order {
			out = append(out, byCorp[corp][k])
		}
	}
	return out, model
}

// scaleWorker is one worker replica: its own NATS connection and a Group running every
// partition lane, like `worker run`.
type scaleWorker struct {
	id     int
	nc     *nats.Conn
	group  *Group
	killed atomic.Bool
	cancel context.CancelFunc
	done   chan error
}

// applyLog records which worker applied events of which partition, before and after the
// kill.
type applyLog struct {
	mu     sync.Mutex
	killed bool
	before map[int]map[int]int // worker -> partition -> events
	after  map[int]map[int]int
}

func (l *applyLog) record(worker, partition, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.before
	if l.killed {
		m = l.after
	}
	if m[worker] == nil {
		m[worker] = map[int]int{}
	}
	m[worker][partition] += n
}

// recordingApplier applies through the store and records who applied what.
type recordingApplier struct {
	Applier
	worker, partitions int
	log                *applyLog
}

func (r *recordingApplier) ApplyBatch(ctx context.Context, corp string, items []mirror.Item) ([]mirror.Result, error) {
	res, err := r.Applier.ApplyBatch(ctx, corp, items)
	if err == nil {
		r.log.record(r.worker, Partition(corp, r.partitions), len(items))
	}
	return res, err
}

// startScaleWorker starts worker id: a connection, the lanes ensured (as `worker run`
// does at start) and a Group running a Consumer per lane applying through app.
func startScaleWorker(t *testing.T, b *bundle, base string, lanes []Lane, corps []string, app func(*Consumer) Applier, id int) *scaleWorker {
	t.Helper()
	ctx := context.Background()
	w := &scaleWorker{id: id, done: make(chan error, 1)}
	var err error
	w.nc, err = nats.Connect(b.ns.URL)
	require.NoError(t, err)
	t.Cleanup(w.nc.Close)
	js, err := jetstream.New(w.nc)
	require.NoError(t, err)
	cons, err := EnsureLanes(ctx, js, base, lanes, b.opts, b.store, discard())
	require.NoError(t, err)
	stream, err := js.Stream(ctx, callback.StreamName)
	require.NoError(t, err)
	metrics := NewMetrics(prometheus.NewRegistry())
	var cs []*Consumer
	for i, l := range lanes {
		c := NewConsumer(l, cons[i], nil, discard(), metrics, b.opts, corps)
		c.app = app(c)
		c.SetUnpinner(stream)
		// A killed worker stops between commit and acks, like a process killed there.
		c.afterCommit = func() bool { return !w.killed.Load() }
		cs = append(cs, c)
	}
	w.group = NewGroup(cs, discard(), b.opts)
	rctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	go func() { w.done <- w.group.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		<-w.done
	})
	return w
}

// TestScaleOutAcrossCorps: three workers share the partition lanes of 300 corps while
// events of all corps arrive interleaved; one worker is killed midway (no drain, no acks
// for what it committed last). Every corp's mirror must end exactly as the model says,
// with its change log in event order, the lanes must have been spread over the workers
// and the killed worker's lanes taken over. Sizes: WORKER_SCALE_CORPS (300),
// WORKER_SCALE_EVENTS per corp (16), WORKER_SCALE_PARTITIONS (8), WORKER_SCALE_WORKERS (3).
func TestScaleOutAcrossCorps(t *testing.T) {
	t.Parallel()
	nCorps := envInt(t, "WORKER_SCALE_CORPS", 300)
	perCorp := envInt(t, "WORKER_SCALE_EVENTS", 16)
	parts := envInt(t, "WORKER_SCALE_PARTITIONS", 8)
	nWorkers := envInt(t, "WORKER_SCALE_WORKERS", 3)
	require.GreaterOrEqual(t, nWorkers, 2)
	b := setup(t)
	b.opts.BatchSize = 100
	ctx := context.Background()

	corps := make([]string, nCorps)
	for i := range corps {
		corps[i] = fmt.Sprintf("wwscale%04d", i)
	}
	const base = "wecomsync-mirror"
	lanes := PartitionLanes(base, corps, parts)
	events, model := scaleEvents(t, corps, perCorp, rand.New(rand.NewPCG(7, 11)))
	applied := &applyLog{before: map[int]map[int]int{}, after: map[int]map[int]int{}}

	start := func(id int) *scaleWorker {
		return startScaleWorker(t, b, base, lanes, corps, func(c *Consumer) Applier {
			return &recordingApplier{Applier: b.store, worker: id, partitions: parts, log: applied}
		}, id)
	}
	workers := make([]*scaleWorker, nWorkers)
	for i := range workers {
		workers[i] = start(i)
	}

	publish := func(evs []scaleEvent) {
		for _, e := range evs {
			_, err := b.js.PublishAsync(e.subject, e.data, jetstream.WithMsgID(e.id), jetstream.WithExpectStream(callback.StreamName))
			require.NoError(t, err)
		}
		select {
		case <-b.js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			t.Fatal("publishing did not complete within 30s")
		}
	}
	changes := func() int {
		var n int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM wecom.changes`).Scan(&n))
		return n
	}

	rounds := perCorp
	round := func(k int) []scaleEvent { return events[k*nCorps : (k+1)*nCorps] }
	spread := func() bool {
		pinnedWorkers := 0
		for _, w := range workers {
			if w.group.Pinned() > 0 {
				pinnedWorkers++
			}
		}
		applied.mu.Lock()
		defer applied.mu.Unlock()
		return pinnedWorkers > 1 && len(applied.before) > 1
	}
	t0 := time.Now()
	// Round by round, each one applied before the next is published (the lanes stay
	// busy, so the workers balance them), until the lanes are spread over the workers;
	// then one more round, and the kill while it is applied.
	k := 0
	for ; k < rounds/2 && (k < 2 || !spread()); k++ {
		publish(round(k))
		require.Eventually(t, func() bool { return changes() >= (k+1)*nCorps }, 60*time.Second, 5*time.Millisecond,
			"round %d was not applied", k)
	}
	require.True(t, spread(), "the lanes were spread over more than one worker within %d rounds", k)
	publish(round(k))
	k++
	pins := make([]int, nWorkers)
	for i, w := range workers {
		pins[i] = w.group.Pinned()
	}
	victim := workers[0]
	for _, w := range workers {
		if w.group.Pinned() > victim.group.Pinned() {
			victim = w
		}
	}
	var victimLanes []int
	for _, c := range victim.group.Lanes() {
		if c.Pinned() {
			p, err := strconv.Atoi(c.Lane().Name[len(base+"-p"):])
			require.NoError(t, err)
			victimLanes = append(victimLanes, p)
		}
	}
	t.Logf("lanes=%d pinned per worker before the kill: %v; killing worker %d (partitions %v) in round %d, after %s",
		len(lanes), pins, victim.id, victimLanes, k, time.Since(t0).Round(time.Millisecond))
	require.NotEmpty(t, victimLanes)

	// Kill: nothing it committed from now on is acked, its connection drops at once.
	victim.killed.Store(true)
	applied.mu.Lock()
	applied.killed = true
	applied.mu.Unlock()
	victim.nc.Close()
	victim.cancel()
	require.NoError(t, <-victim.done)
	victim.done <- nil // for the cleanup

	publish(events[k*nCorps:])
	for i, l := range lanes {
		cons, err := b.js.Consumer(ctx, callback.StreamName, l.Name)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			info, err := cons.Info(ctx)
			return err == nil && info.NumPending == 0 && info.NumAckPending == 0
		}, 60*time.Second, 20*time.Millisecond, "lane %d did not drain", i)
	}
	took := time.Since(t0)
	for i, w := range workers {
		pins[i] = w.group.Pinned()
	}
	t.Logf("drained %d events of %d corps in %s; pinned per worker after: %v; applied before the kill %v, after %v",
		len(events), nCorps, took.Round(time.Millisecond), pins, applied.before, applied.after)

	// Every corp's mirror is exactly the model's.
	got := map[string]map[string]string{}
	rows, err := b.pool.Query(ctx, `SELECT corp_id, userid, coalesce(name, '') FROM wecom.users`)
	require.NoError(t, err)
	var corp, id, name string
	_, err = pgx.ForEachRow(rows, []any{&corp, &id, &name}, func() error {
		if got[corp] == nil {
			got[corp] = map[string]string{}
		}
		got[corp][id] = name
		return nil
	})
	require.NoError(t, err)
	for _, c := range corps {
		want := model.names[c]
		if len(want) == 0 {
			want = nil
		}
		require.Equal(t, want, got[c], "members of corp %s", c)
	}
	// Every corp's change log holds each event's change once, in event order.
	log := map[string][]string{}
	rows, err = b.pool.Query(ctx, `SELECT corp_id, coalesce(event_id, '') FROM wecom.changes ORDER BY seq`)
	require.NoError(t, err)
	_, err = pgx.ForEachRow(rows, []any{&corp, &id}, func() error { log[corp] = append(log[corp], id); return nil })
	require.NoError(t, err)
	for _, c := range corps {
		require.Equal(t, model.events[c], log[c], "change log of corp %s", c)
	}

	// The lanes were spread, and the killed worker's were taken over.
	require.Greater(t, len(applied.before), 1, "more than one worker applied events before the kill")
	for _, p := range victimLanes {
		takers := 0
		for w, parts := range applied.after {
			if w != victim.id && parts[p] > 0 {
				takers++
			}
		}
		require.Positive(t, takers, "partition %d of the killed worker was taken over", p)
	}
}
