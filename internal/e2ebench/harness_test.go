package e2ebench

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/worker"
)

// TestHarness checks the benchmark's harness at a small scale, so `go test` keeps it
// working: every console edit is seen in the mirror, and what the detector saw is what
// the mirror holds.
func TestHarness(t *testing.T) {
	t.Parallel()
	opts := worker.DefaultOptions
	opts.MaxWait = 20 * time.Millisecond
	s := startSystem(t, sysConfig{corps: 2, seedUsers: 50, lane: opts, partitions: 2})

	t.Run("SeesEveryPacedEdit", func(t *testing.T) {
		r := s.paced(t, 100, 200)
		st := r.stats()
		require.Equal(t, 100, st.events)
		for i := range r.n {
			require.GreaterOrEqual(t, r.seen[i], r.start[i], "edit %d seen before it was made", i)
		}
		// Edit 4 of each corp (numbers 8 and 9 with two corps) created a member.
		var pos string
		require.NoError(t, s.pool.QueryRow(context.Background(),
			`SELECT position FROM wecom.users WHERE corp_id = $1 AND userid = $2`, s.corps[0].id, "e2e8").Scan(&pos))
		require.Equal(t, "e2e-8", pos)
	})
	t.Run("SeesEveryEditFlatOut", func(t *testing.T) {
		r := s.flatOut(t, 300, 50)
		require.Equal(t, 300, r.stats().events)
		require.Zero(t, r.left.Load())
	})
}
