package worker

import (
	"context"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/callback"
)

func TestPartitionLanes(t *testing.T) {
	t.Parallel()

	t.Run("OnePartitionIsTheWholeStreamLane", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, []Lane{DefaultLane}, PartitionLanes(DefaultLane.Name, []string{corpA, corpB}, 1))
	})

	t.Run("EveryCorpIsInExactlyOneLane", func(t *testing.T) {
		t.Parallel()
		var corps []string
		for i := range 100 {
			corps = append(corps, "wwp"+itoa(i))
		}
		lanes := PartitionLanes("m", corps, 8)
		require.Len(t, lanes, 8)
		seen := map[string]int{}
		for _, l := range lanes {
			require.Regexp(t, `^m-p[0-7]$`, l.Name)
			require.True(t, slices.IsSorted(l.Filters))
			for _, corp := range l.corps() {
				seen[corp]++
				require.Equal(t, l.Name, "m-p"+itoa(Partition(corp, 8)))
			}
		}
		require.Len(t, seen, 100)
		for corp, n := range seen {
			require.Equal(t, 1, n, corp)
		}
	})

	t.Run("PartitionsWithoutCorpsHaveNoLane", func(t *testing.T) {
		t.Parallel()
		lanes := PartitionLanes("m", []string{corpA}, 8)
		require.Equal(t, []Lane{{Name: "m-p" + itoa(Partition(corpA, 8)), Filters: []string{CorpSubjects(corpA)}}}, lanes)
	})

	t.Run("PartitionIsStable", func(t *testing.T) {
		t.Parallel()
		// FNV-1a of the corp id: the same in every process and version.
		require.Equal(t, Partition("wwcorpa", 8), Partition("wwcorpa", 8))
		require.Equal(t, 0, Partition("anything", 1))
	})
}

func TestEnsureLanes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	lane := func(name string, corps ...string) Lane {
		l := Lane{Name: name}
		for _, c := range corps {
			l.Filters = append(l.Filters, CorpSubjects(c))
		}
		return l
	}
	info := func(t *testing.T, b *bundle, name string) *jetstream.ConsumerInfo {
		t.Helper()
		c, err := b.js.Consumer(ctx, callback.StreamName, name)
		require.NoError(t, err)
		i, err := c.Info(ctx)
		require.NoError(t, err)
		return i
	}
	names := func(t *testing.T, b *bundle) []string {
		t.Helper()
		st, err := b.js.Stream(ctx, callback.StreamName)
		require.NoError(t, err)
		var out []string
		l := st.ConsumerNames(ctx)
		for n := range l.Name() {
			out = append(out, n)
		}
		require.NoError(t, l.Err())
		slices.Sort(out)
		return out
	}

	t.Run("ANewLaneStartsWhereItsCorpsNeedIt", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.publish(t, corpA, "create_user", createUser("a1", "A", 1)) // 1
		b.publish(t, corpA, "create_user", createUser("a2", "A", 1)) // 2
		b.publish(t, corpB, "create_user", createUser("b1", "B", 1)) // 3
		b.publish(t, corpA, "create_user", createUser("a3", "A", 1)) // 4
		b.publish(t, corpB, "create_user", createUser("b2", "B", 1)) // 5
		// corpA applied up to 4; corpB never applied: its first event is 3.
		_, err := b.store.AdvanceLane(ctx, corpA, 0, 4)
		require.NoError(t, err)
		_, err = EnsureLanes(ctx, b.js, "m", []Lane{lane("m-p0", corpA, corpB)}, b.opts, b.store, discard())
		require.NoError(t, err)
		i := info(t, b, "m-p0")
		require.Equal(t, jetstream.DeliverByStartSequencePolicy, i.Config.DeliverPolicy)
		require.EqualValues(t, 3, i.Config.OptStartSeq)
		require.EqualValues(t, 3, i.NumPending, "from corpB's first event (corpA's at 4 is a duplicate to the mirror)")

		_, err = EnsureLanes(ctx, b.js, "m", []Lane{lane("m-p1", corpA)}, b.opts, b.store, discard())
		require.NoError(t, err)
		require.EqualValues(t, 5, info(t, b, "m-p1").Config.OptStartSeq, "nothing of corpA left: after the stream's end")
	})

	t.Run("KeepsALaneWhoseCorpsAreUnchanged", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.publish(t, corpA, "create_user", createUser("a1", "A", 1))
		l := lane("m-p0", corpA, corpB)
		_, err := EnsureLanes(ctx, b.js, "m", []Lane{l}, b.opts, b.store, discard())
		require.NoError(t, err)
		before := info(t, b, "m-p0")
		b.opts.BatchSize = 20
		_, err = EnsureLanes(ctx, b.js, "m", []Lane{{Name: l.Name, Filters: []string{l.Filters[1], l.Filters[0]}}}, b.opts, b.store, discard())
		require.NoError(t, err)
		after := info(t, b, "m-p0")
		require.Equal(t, before.Created, after.Created, "the same consumer")
		require.Equal(t, 40, after.Config.MaxAckPending, "with the new tuning")
	})

	t.Run("RecreatesALaneWhoseCorpsChanged", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.publish(t, corpA, "create_user", createUser("a1", "A", 1))
		b.publish(t, corpB, "create_user", createUser("b1", "B", 1))
		_, err := EnsureLanes(ctx, b.js, "m", []Lane{lane("m-p0", corpA)}, b.opts, b.store, discard())
		require.NoError(t, err)
		_, err = EnsureLanes(ctx, b.js, "m", []Lane{lane("m-p0", corpA, corpB)}, b.opts, b.store, discard())
		require.NoError(t, err)
		i := info(t, b, "m-p0")
		require.ElementsMatch(t, []string{CorpSubjects(corpA), CorpSubjects(corpB)}, i.Config.FilterSubjects)
		require.EqualValues(t, 1, i.Config.OptStartSeq)
		require.EqualValues(t, 2, i.NumPending, "corpB's earlier event is delivered too")
	})

	t.Run("DeletesTheLanesOfAnotherLayout", func(t *testing.T) {
		t.Parallel()
		b := setup(t) // has the whole-stream lane DefaultLane
		_, err := b.js.CreateConsumer(ctx, callback.StreamName, jetstream.ConsumerConfig{Durable: "someone-else"})
		require.NoError(t, err)
		base := DefaultLane.Name
		_, err = EnsureLanes(ctx, b.js, base, PartitionLanes(base, []string{corpA, corpB, "wwc", "wwd", "wwe"}, 4), b.opts, b.store, discard())
		require.NoError(t, err)
		got := names(t, b)
		require.NotContains(t, got, base)
		require.Contains(t, got, "someone-else")
		_, err = EnsureLanes(ctx, b.js, base, PartitionLanes(base, []string{corpA}, 2), b.opts, b.store, discard())
		require.NoError(t, err)
		require.ElementsMatch(t, []string{base + "-p" + itoa(Partition(corpA, 2)), "someone-else"}, names(t, b))
		_, err = EnsureLanes(ctx, b.js, base, PartitionLanes(base, []string{corpA}, 1), b.opts, b.store, discard())
		require.NoError(t, err)
		require.ElementsMatch(t, []string{base, "someone-else"}, names(t, b))
	})
}
