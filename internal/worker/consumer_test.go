package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/callback"

	"github.com/wecomsync/wecomsync/internal/mirror"
)

func TestConsumer(t *testing.T) {
	t.Parallel()

	t.Run("AppliesEventsOfEveryCorpInStreamOrder", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// More events than a batch, interleaved between two corps, each user renamed
		// several times: only in-order application ends with the last names.
		for i := range 40 {
			b.publish(t, corpA, "create_user", createUser("a"+itoa(i), "A0", 1))
			b.publish(t, corpB, "create_user", createUser("b"+itoa(i), "B0", 1))
		}
		for r := 1; r <= 3; r++ {
			for i := range 40 {
				b.publish(t, corpA, "update_user", renameUser("a"+itoa(i), fmt.Sprintf("A%d", r)))
				b.publish(t, corpB, "update_user", renameUser("b"+itoa(i), fmt.Sprintf("B%d", r)))
			}
		}
		rep := b.newReplica(t, nil, nil).start()
		b.waitDrained(t)
		rep.stop(t)
		for corp, prefix := range map[string]string{corpA: "a", corpB: "b"} {
			names := b.userNames(t, corp)
			require.Len(t, names, 40)
			for i := range 40 {
				require.Equal(t, string(prefix[0]-32)+"3", names[prefix+itoa(i)], corp)
			}
		}
		b.requireNoDuplicateChanges(t)
	})

	t.Run("AcksDuplicates", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := createUser("dup", "Dup", 1)
		// The same callback stored twice under different stream sequences (outside
		// JetStream's dedup window): the mirror sees the event id again.
		raw := `<xml><ToUserName>` + corpA + `</ToUserName><FromUserName>sys</FromUserName><CreateTime>1700000000</CreateTime><MsgType>event</MsgType><Event>change_contact</Event><ChangeType>create_user</ChangeType>` + body + `</xml>`
		b.publishXML(t, corpA, raw)
		_, err := b.js.Publish(context.Background(), "wecom.events."+corpA+".change_contact.create_user", mustMessage(t, corpA, raw))
		require.NoError(t, err)
		rep := b.newReplica(t, nil, nil).start()
		b.waitDrained(t)
		rep.stop(t)
		require.Equal(t, map[string]string{"dup": "Dup"}, b.userNames(t, corpA))
		require.Len(t, b.changeEventIDs(t, corpA), 1)
	})

	t.Run("DeadLettersPoisonAndContinues", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.publish(t, corpA, "create_user", createUser("before", "Before", 1))
		b.publishRaw(t, "wecom.events."+corpA+".unparsed", []byte(`{"id":"x1","corp_id":"`+corpA+`","event":"unparsed","data":{},"xml":"<xml><broken"}`))
		b.publishRaw(t, "wecom.events."+corpA+".change_contact.create_user", []byte("not json at all"))
		b.publishRaw(t, "wecom.events.stray", []byte("stray")) // no corp in the subject: terminated, nothing to record
		b.publish(t, corpA, "create_user", createUser("after", "After", 1))
		rep := b.newReplica(t, nil, nil).start()
		b.waitDrained(t)
		rep.stop(t)
		require.Equal(t, map[string]string{"before": "Before", "after": "After"}, b.userNames(t, corpA))
		dls, err := b.store.DeadLetters(context.Background(), corpA, 10)
		require.NoError(t, err)
		require.Len(t, dls, 2)
		require.Equal(t, "not json at all", string(dls[1].Payload))
	})

	t.Run("RetriesATransientErrorWithBackoff", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for i := range 5 {
			b.publish(t, corpA, "create_user", createUser("u"+itoa(i), "U", 1))
		}
		b.publish(t, corpA, "update_user", renameUser("u0", "Renamed"))
		app := &flaky{Applier: b.store, failures: 2}
		rep := b.newReplica(t, app, nil).start()
		b.waitDrained(t)
		rep.stop(t)
		require.GreaterOrEqual(t, app.calls.Load(), int64(3))
		names := b.userNames(t, corpA)
		require.Len(t, names, 5)
		require.Equal(t, "Renamed", names["u0"])
		b.requireNoDuplicateChanges(t)
	})

	t.Run("RecoversAPanicAndRetries", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.publish(t, corpA, "create_user", createUser("p", "P", 1))
		app := &flaky{Applier: b.store, failures: 1, panics: true}
		rep := b.newReplica(t, app, nil).start()
		b.waitDrained(t)
		rep.stop(t)
		require.Equal(t, map[string]string{"p": "P"}, b.userNames(t, corpA))
	})

	t.Run("CancelsAHungApplyAndRetries", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.opts.ApplyTimeout = 300 * time.Millisecond
		b.publish(t, corpA, "create_user", createUser("h", "H", 1))
		app := &flaky{Applier: b.store, failures: 1, hangs: true}
		rep := b.newReplica(t, app, nil).start()
		b.waitDrained(t)
		rep.stop(t)
		require.Equal(t, map[string]string{"h": "H"}, b.userNames(t, corpA))
		require.GreaterOrEqual(t, app.calls.Load(), int64(2))
	})

	t.Run("FinishesTheBatchInFlightWhenStopped", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for i := range 30 {
			b.publish(t, corpA, "create_user", createUser("s"+itoa(i), "S", 1))
		}
		inApply := make(chan struct{})
		release := make(chan struct{})
		var once sync.Once
		rep := b.newReplica(t, nil, func(c *Consumer) {
			c.beforeApply = func(ctx context.Context, _ string, _ []mirror.Item) {
				once.Do(func() {
					close(inApply)
					<-release
				})
			}
		}).start()
		<-inApply
		// Stop while the first batch is being applied: it must still commit and be acked.
		rep.cancel()
		close(release)
		require.NoError(t, <-rep.done)
		cons, err := b.js.Consumer(context.Background(), "WECOM_EVENTS", b.lane.Name)
		require.NoError(t, err)
		info, err := cons.Info(context.Background())
		require.NoError(t, err)
		require.Zero(t, info.NumAckPending, "the batch in flight was settled before Run returned")
		applied := len(b.userNames(t, corpA))
		require.Equal(t, 30, applied, "the whole batch in flight was applied")
	})

	t.Run("SecondReplicaFinishesAfterACrashBetweenCommitAndAck", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for i := range 120 {
			b.publish(t, corpA, "create_user", createUser("k"+itoa(i), "K", 1))
		}
		for i := range 120 {
			b.publish(t, corpA, "update_user", renameUser("k"+itoa(i), "K2"))
		}
		var batches atomic.Int64
		crashed := b.newReplica(t, nil, func(c *Consumer) {
			c.afterCommit = func() bool { return batches.Add(1) < 2 } // dies after committing its 2nd batch
		}).start()
		require.NoError(t, <-crashed.done)
		crashed.nc.Close() // the process is gone: no more pulls, no acks
		rep := b.newReplica(t, nil, nil).start()
		b.waitDrained(t)
		rep.stop(t)
		names := b.userNames(t, corpA)
		require.Len(t, names, 120)
		for id, name := range names {
			require.Equal(t, "K2", name, id)
		}
		b.requireNoDuplicateChanges(t)
		require.Len(t, b.changeEventIDs(t, corpA), 240, "every event changed the mirror exactly once")
	})

	t.Run("TwoReplicasNeverApplyOutOfOrder", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r1 := b.newReplica(t, nil, nil).start()
		r2 := b.newReplica(t, nil, nil).start()
		b.publish(t, corpA, "create_user", createUser("o", "N-1", 1))
		for i := range 300 {
			b.publish(t, corpA, "update_user", renameUser("o", fmt.Sprintf("N%03d", i)))
			if i == 150 {
				// One replica goes away mid-stream; the other must carry on in order.
				r1.cancel()
				require.NoError(t, <-r1.done)
				r1.nc.Close()
			}
		}
		b.waitDrained(t)
		r2.stop(t)
		b.requireNoDuplicateChanges(t)
		rows, err := b.pool.Query(context.Background(), `SELECT after->>'name' FROM wecom.changes
			WHERE corp_id = $1 AND entity = 'user' AND key = 'o' AND op = 'updated' ORDER BY seq`, corpA)
		require.NoError(t, err)
		var names []string
		for rows.Next() {
			var n string
			require.NoError(t, rows.Scan(&n))
			names = append(names, n)
		}
		require.NoError(t, rows.Err())
		require.Len(t, names, 300)
		for i, n := range names {
			require.Equal(t, fmt.Sprintf("N%03d", i), n, "change %d out of order", i)
		}
	})

	t.Run("ASlowReplicaLosesThePinWithoutBreakingOrder", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.publish(t, corpA, "create_user", createUser("s", "N-1", 1))
		for i := range 200 {
			b.publish(t, corpA, "update_user", renameUser("s", fmt.Sprintf("N%03d", i)))
		}
		// The first replica stalls in its first apply for three pinned TTLs (a slow
		// lookup): the server pins the second one, which must wait for what the first
		// holds; the first then finds itself unpinned and hands back what it fetched.
		stalled := make(chan struct{})
		var once sync.Once
		slow := b.newReplica(t, nil, func(c *Consumer) {
			c.beforeApply = func(context.Context, string, []mirror.Item) {
				once.Do(func() {
					close(stalled)
					time.Sleep(3 * b.opts.PinnedTTL) // the stall under test, not synchronisation
				})
			}
		}).start()
		<-stalled
		other := b.newReplica(t, nil, nil).start()
		for i := 200; i < 300; i++ {
			b.publish(t, corpA, "update_user", renameUser("s", fmt.Sprintf("N%03d", i)))
		}
		b.waitDrained(t)
		slow.stop(t)
		other.stop(t)
		b.requireNoDuplicateChanges(t)
		rows, err := b.pool.Query(context.Background(), `SELECT after->>'name' FROM wecom.changes
			WHERE corp_id = $1 AND entity = 'user' AND key = 's' AND op = 'updated' ORDER BY seq`, corpA)
		require.NoError(t, err)
		var names []string
		for rows.Next() {
			var n string
			require.NoError(t, rows.Scan(&n))
			names = append(names, n)
		}
		require.NoError(t, rows.Err())
		require.Len(t, names, 300)
		for i, n := range names {
			require.Equal(t, fmt.Sprintf("N%03d", i), n, "change %d out of order", i)
		}
	})
}

// flaky wraps an Applier and fails (or panics) its first calls.
type flaky struct {
	Applier
	failures int64
	panics   bool
	hangs    bool // block until the apply's context ends (a stuck query)
	calls    atomic.Int64
}

func (f *flaky) ApplyBatch(ctx context.Context, corp string, items []mirror.Item) ([]mirror.Result, error) {
	if n := f.calls.Add(1); n <= f.failures {
		if f.panics {
			panic("boom")
		}
		if f.hangs {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return nil, errors.New("database went away")
	}
	return f.Applier.ApplyBatch(ctx, corp, items)
}

func TestDecide(t *testing.T) {
	t.Parallel()
	backoff := []time.Duration{time.Second, 5 * time.Second}
	for name, tc := range map[string]struct {
		res       *mirror.Result
		err       error
		delivered uint64
		want      settlement
	}{
		"AppliedAcks":         {res: &mirror.Result{Status: mirror.Applied}, delivered: 1, want: settlement{act: actAck}},
		"DuplicateAcks":       {res: &mirror.Result{Status: mirror.Duplicate}, delivered: 3, want: settlement{act: actAck}},
		"IgnoredAcks":         {res: &mirror.Result{Status: mirror.Ignored}, delivered: 1, want: settlement{act: actAck}},
		"PoisonTerms":         {res: &mirror.Result{Status: mirror.Poison, Reason: "bad xml"}, delivered: 1, want: settlement{act: actTerm, reason: "bad xml"}},
		"ErrorNaksFirstDelay": {err: errors.New("x"), delivered: 1, want: settlement{act: actNak, delay: time.Second}},
		"ErrorNaksLaterDelay": {err: errors.New("x"), delivered: 9, want: settlement{act: actNak, delay: 5 * time.Second}},
		"PanicNaks":           {err: errPanic, delivered: 2, want: settlement{act: actNak, delay: 5 * time.Second}},
		"MissingResultNaks":   {delivered: 1, want: settlement{act: actNak, delay: time.Second}},
		"UnknownStatusIsKept": {res: &mirror.Result{Status: "new"}, delivered: 1, want: settlement{act: actNak, delay: 5 * time.Second}},
		"PoisonWithoutReason": {res: &mirror.Result{Status: mirror.Poison}, delivered: 1, want: settlement{act: actTerm, reason: "poison event"}},
	} {
		require.Equal(t, tc.want, decide(tc.res, tc.err, tc.delivered, backoff), name)
	}
}

// TestConsumerSettlesWhileTheNextBatchApplies runs a backlog of full batches through one
// replica: each batch's acks go out while the next one applies, and the ordering gate,
// which counts the unsettled batch as the replica's own, never holds a batch back.
func TestConsumerSettlesWhileTheNextBatchApplies(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 6 * 50 // six batches of testOptions.BatchSize
	for i := range n {
		b.publish(t, corpA, "create_user", createUser("u"+itoa(i), "U", 1))
	}
	counter := &countingApplier{Applier: b.store}
	var c *Consumer
	rep := b.newReplica(t, counter, func(cc *Consumer) { c = cc }).start()
	b.waitDrained(t)
	rep.stop(t)
	require.Len(t, b.userNames(t, corpA), n)
	require.GreaterOrEqual(t, int(counter.batches.Load()), 6, "the backlog took several batches")
	require.Zero(t, testutil.ToFloat64(c.metrics.GateWaits.WithLabelValues(b.lane.Name)), "the gate never waited")
	info, err := b.js.Consumer(context.Background(), callback.StreamName, b.lane.Name)
	require.NoError(t, err)
	ci, err := info.Info(context.Background())
	require.NoError(t, err)
	require.Zero(t, ci.NumAckPending, "every message was settled")
	require.Zero(t, ci.NumRedelivered)
}

// countingApplier counts ApplyBatch calls.
type countingApplier struct {
	Applier
	batches atomic.Int64
}

func (a *countingApplier) ApplyBatch(ctx context.Context, corp string, items []mirror.Item) ([]mirror.Result, error) {
	a.batches.Add(1)
	return a.Applier.ApplyBatch(ctx, corp, items)
}
