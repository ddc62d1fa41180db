package worker

import (
	"context"
	"iter"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/mirror"
)

// snapshot is a fixed directory (our own SyncSource, the shape WeCom's lists give).
type snapshot struct{ users map[string]string }

func (s snapshot) Source(string) (mirror.SyncSource, error) { return s, nil }

func (s snapshot) Departments(context.Context) iter.Seq2[*mirror.Department, error] {
	return func(yield func(*mirror.Department, error) bool) {
		yield(&mirror.Department{ID: 1, Name: "Root", Raw: []byte(`{}`)}, nil)
	}
}

func (s snapshot) Users(context.Context) iter.Seq2[*mirror.User, error] {
	return func(yield func(*mirror.User, error) bool) {
		for id, name := range s.users {
			if !yield(&mirror.User{UserID: id, Name: name, Departments: []mirror.Membership{{DepartmentID: 1}}, Raw: []byte(`{}`)}, nil) {
				return
			}
		}
	}
}

func (s snapshot) Tags(context.Context) iter.Seq2[*mirror.Tag, error] {
	return func(func(*mirror.Tag, error) bool) {}
}

func TestInitialSync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("EventsQueuedBeforeTheSyncAreNotReplayedOverIt", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Queued before the sync: their effects are in WeCom's current state, which the
		// snapshot holds ("Now"); replayed they would show the older names for a while.
		b.publish(t, corpA, "create_user", createUser("ann", "Then", 1))
		b.publish(t, corpA, "update_user", renameUser("ann", "Later"))
		b.publish(t, corpB, "create_user", createUser("bob", "Bob", 1))
		snap := snapshot{users: map[string]string{"ann": "Now"}}
		require.NoError(t, InitialSync(ctx, b.store, snap, EventsTail(b.js), []string{corpA}, discard(), NewMetrics(prometheus.NewRegistry())))
		after := b.publish(t, corpA, "update_user", renameUser("ann", "After"))

		rep := b.newReplica(t, nil, nil).start()
		b.waitDrained(t)
		rep.stop(t)
		require.Equal(t, map[string]string{"ann": "After"}, b.userNames(t, corpA), "the event after the sync applies")
		var fromEvents int
		for _, id := range b.changeEventIDs(t, corpA) {
			if id != "" {
				fromEvents++
			}
		}
		require.Equal(t, 1, fromEvents, "only the event after the sync changed the mirror, nothing was replayed")
		require.Equal(t, map[string]string{"bob": "Bob"}, b.userNames(t, corpB), "other corps' queues are untouched")
		pos, err := b.store.LanePosition(ctx, corpA)
		require.NoError(t, err)
		require.Equal(t, after, pos)
	})

	t.Run("WithoutATailQueuedEventsAreReplayed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.publish(t, corpA, "create_user", createUser("ann", "Then", 1))
		snap := snapshot{users: map[string]string{"ann": "Now"}}
		require.NoError(t, InitialSync(ctx, b.store, snap, nil, []string{corpA}, discard(), NewMetrics(prometheus.NewRegistry())))
		rep := b.newReplica(t, nil, nil).start()
		b.waitDrained(t)
		rep.stop(t)
		require.Equal(t, map[string]string{"ann": "Then"}, b.userNames(t, corpA))
	})

	t.Run("SkipsCorpsWithAMirror", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.publish(t, corpA, "create_user", createUser("ann", "Then", 1))
		rep := b.newReplica(t, nil, nil).start()
		b.waitDrained(t)
		rep.stop(t)
		snap := snapshot{users: map[string]string{"ann": "Now"}}
		require.NoError(t, InitialSync(ctx, b.store, snap, EventsTail(b.js), []string{corpA}, discard(), NewMetrics(prometheus.NewRegistry())))
		require.Equal(t, map[string]string{"ann": "Then"}, b.userNames(t, corpA))
	})
	t.Run("ReplicasStartingTogetherSyncOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var sources atomic.Int32
		snap := &gatedSource{snapshot: snapshot{users: map[string]string{"ann": "Now"}}, calls: &sources,
			// The first replica reads WeCom only once the second waits on the corp's
			// initial-sync lock, so both found the mirror empty before either synced.
			first: func() { waitForAdvisoryWaiter(t, b) }}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Go(func() {
				errs[i] = InitialSync(ctx, b.store, snap, EventsTail(b.js), []string{corpA}, discard(), NewMetrics(prometheus.NewRegistry()))
			})
		}
		wg.Wait()
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		require.EqualValues(t, 1, sources.Load(), "WeCom was read by one replica")
		require.Equal(t, map[string]string{"ann": "Now"}, b.userNames(t, corpA))
	})
}

// gatedSource is a snapshot that counts Source calls and runs first before the first one
// returns.
type gatedSource struct {
	snapshot
	calls *atomic.Int32
	first func()
}

func (g *gatedSource) Source(corp string) (mirror.SyncSource, error) {
	if g.calls.Add(1) == 1 {
		g.first()
	}
	return g.snapshot, nil
}

// waitForAdvisoryWaiter returns once some session of b's database waits for an advisory
// lock, failing t after 30 s.
func waitForAdvisoryWaiter(t *testing.T, b *bundle) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n))
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Error("no second replica waited for the initial-sync lock")
			return
		}
		time.Sleep(10 * time.Millisecond) // polling an observable state
	}
}
