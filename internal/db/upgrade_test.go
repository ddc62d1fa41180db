package db_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/db"
	"github.com/wecomsync/wecomsync/internal/testutil/pgtest"
)

// releasedVersion is the newest goose migration of the last release (00011 landed with
// the previous one; installs upgraded before it are at 00010, tested too). A new
// migration must be numbered above it: goose refuses a version lower than one a database
// already has, so an upgrade would stop at `worker migrate up` (and `worker run` would
// refuse to start).
const releasedVersion = 11

// TestUpgradeFromTheLastRelease migrates a database as the last release left it (and as
// the one before it did), then up to this build's schema, and back down one step.
func TestUpgradeFromTheLastRelease(t *testing.T) {
	t.Parallel()
	for _, from := range []int64{releasedVersion - 1, releasedVersion} {
		t.Run(fmt.Sprintf("From%05d", from), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool, err := db.Open(ctx, pgtest.NewEmptyDatabase(t))
			require.NoError(t, err)
			defer pool.Close()
			sqlDB := stdlib.OpenDBFromPool(pool)
			defer sqlDB.Close()
			p, err := db.NewProviderForTest(sqlDB)
			require.NoError(t, err)
			_, err = p.UpTo(ctx, from)
			require.NoError(t, err)
			pending, err := db.Pending(ctx, pool)
			require.NoError(t, err)
			require.True(t, pending, "river's migrations and any newer goose ones are pending")
			var out bytes.Buffer
			require.NoError(t, db.Migrate(ctx, pool, db.Up, &out))
			pending, err = db.Pending(ctx, pool)
			require.NoError(t, err)
			require.False(t, pending, out.String())
			require.Contains(t, out.String(), "00012_drop_users_main_department_idx.sql")
			if from < 11 {
				require.Contains(t, out.String(), "00011_changes_json.sql")
			}
			// The newest migration runs outside a transaction (DROP INDEX CONCURRENTLY);
			// its down step must work too.
			_, err = p.Down(ctx)
			require.NoError(t, err)
			var n int
			require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes
				WHERE schemaname = 'wecom' AND indexname = 'users_main_department_idx'`).Scan(&n))
			require.Equal(t, 1, n)
		})
	}
}
