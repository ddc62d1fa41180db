package worker

import (
	"context"
	"iter"
	"testing"

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
}
