package db_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/db"
	"github.com/wecomsync/wecomsync/internal/testutil/pgtest"
)

// releasedVersion is the newest goose migration of the last release (00012; installs
// upgraded before it are at 00011, tested too). A new
// migration must be numbered above it: goose refuses a version lower than one a database
// already has, so an upgrade would stop at `worker migrate up` (and `worker run` would
// refuse to start).
const releasedVersion = 12

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
			require.Contains(t, out.String(), "00013_identifier_collation.sql")
			if from < 12 {
				require.Contains(t, out.String(), "00012_drop_users_main_department_idx.sql")
			}
			collation := func() string {
				var c *string
				require.NoError(t, pool.QueryRow(ctx, `SELECT collation_name FROM information_schema.columns
					WHERE table_schema = 'wecom' AND table_name = 'users' AND column_name = 'userid'`).Scan(&c))
				if c == nil {
					return "default"
				}
				return *c
			}
			require.Equal(t, "C", collation())
			// Member rows written before and after the change read back in byte order.
			_, err = pool.Exec(ctx, `INSERT INTO wecom.users (corp_id, userid, raw) VALUES ('c', 'b', '{}'), ('c', 'B', '{}'), ('c', 'a', '{}')`)
			require.NoError(t, err)
			rows, err := pool.Query(ctx, `SELECT userid FROM wecom.users WHERE corp_id = 'c' ORDER BY userid`)
			require.NoError(t, err)
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			require.Equal(t, []string{"B", "a", "b"}, ids)

			// Down one step: the database's collation again.
			_, err = p.Down(ctx)
			require.NoError(t, err)
			require.NotEqual(t, "C", collation())
			// The one before runs outside a transaction (DROP INDEX CONCURRENTLY); its down
			// step must work too.
			_, err = p.Down(ctx)
			require.NoError(t, err)
			var n int
			require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes
				WHERE schemaname = 'wecom' AND indexname = 'users_main_department_idx'`).Scan(&n))
			require.Equal(t, 1, n)
		})
	}
}
