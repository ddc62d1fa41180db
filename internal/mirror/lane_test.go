package mirror

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/event"
)

func TestLanePositions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("AdvanceRaisesAnUntouchedLane", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		pos, err := s.LanePosition(ctx, corp)
		require.NoError(t, err)
		require.Zero(t, pos)
		ok, err := s.AdvanceLane(ctx, corp, 0, 40)
		require.NoError(t, err)
		require.True(t, ok)
		pos, err = s.LanePosition(ctx, corp)
		require.NoError(t, err)
		require.EqualValues(t, 40, pos)
		all, err := s.LanePositions(ctx, []string{corp, "wwother"})
		require.NoError(t, err)
		require.Equal(t, map[string]uint64{corp: 40}, all)
	})

	t.Run("EventsAtOrBelowTheAdvancedPositionAreDuplicates", func(t *testing.T) {
		t.Parallel()
		s, b := setup(t)
		ok, err := s.AdvanceLane(ctx, corp, 0, 5)
		require.NoError(t, err)
		require.True(t, ok)
		res := apply(t, s, []Item{
			{StreamSeq: 4, Msg: msg(event.ChangeCreateUser, `{"user_id":"old","name":"Old","department":[1]}`)},
			{StreamSeq: 6, Msg: msg(event.ChangeCreateUser, `{"user_id":"new","name":"New","department":[1]}`)},
		})
		requireStatuses(t, res, Duplicate, Applied)
		require.Nil(t, dbUser(t, b.pool, "old"))
		require.NotNil(t, dbUser(t, b.pool, "new"))
	})

	t.Run("NeverLowers", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		apply(t, s, []Item{{StreamSeq: 30, Msg: msg(event.ChangeCreateUser, `{"user_id":"a","name":"A","department":[1]}`)}})
		ok, err := s.AdvanceLane(ctx, corp, 30, 20)
		require.NoError(t, err)
		require.False(t, ok)
		pos, err := s.LanePosition(ctx, corp)
		require.NoError(t, err)
		require.EqualValues(t, 30, pos)
	})

	t.Run("LeavesALaneThatMovedSinceItWasRead", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		// Read 0, then a lane applies seq 3 (an older value the events up to 9 would
		// overwrite again): advancing to 9 would skip them.
		apply(t, s, []Item{{StreamSeq: 3, Msg: msg(event.ChangeCreateUser, `{"user_id":"a","name":"A","department":[1]}`)}})
		ok, err := s.AdvanceLane(ctx, corp, 0, 9)
		require.NoError(t, err)
		require.False(t, ok)
		pos, err := s.LanePosition(ctx, corp)
		require.NoError(t, err)
		require.EqualValues(t, 3, pos)
		ok, err = s.AdvanceLane(ctx, corp, 3, 9)
		require.NoError(t, err)
		require.True(t, ok)
	})
}
