package db_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/db"
	"github.com/wecomsync/wecomsync/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestMigrate(t *testing.T) {
	t.Parallel()

	t.Run("CreatesTheDocumentedSchemaAndRollsBack", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.New(t) // already migrated up
		ctx := context.Background()
		var tables []string
		rows, err := pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'wecom' ORDER BY 1`)
		require.NoError(t, err)
		for rows.Next() {
			var n string
			require.NoError(t, rows.Scan(&n))
			tables = append(tables, n)
		}
		require.NoError(t, rows.Err())
		for _, want := range []string{"changes", "departments", "tag_departments", "tag_users", "tags", "user_departments", "users"} {
			require.Contains(t, tables, want)
		}
		pending, err := db.Pending(ctx, pool)
		require.NoError(t, err)
		require.False(t, pending)

		var out bytes.Buffer
		require.NoError(t, db.Migrate(ctx, pool, db.Status, &out))
		require.Contains(t, out.String(), "00001_mirror.sql")
		require.Contains(t, out.String(), "applied")

		// Roll everything back, one step at a time, then up again.
		for {
			out.Reset()
			require.NoError(t, db.Migrate(ctx, pool, db.Down, &out))
			if bytes.Contains(out.Bytes(), []byte("nothing to roll back")) {
				break
			}
		}
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'wecom'`).Scan(&n))
		require.Zero(t, n)
		require.NoError(t, db.Migrate(ctx, pool, db.Up, &out))
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'wecom'`).Scan(&n))
		require.Equal(t, 1, n)
	})

	t.Run("ConcurrentMigratorsAreSerialised", func(t *testing.T) {
		t.Parallel()
		// A pool of two connections shared by eight migrators: a migrator waiting for the
		// lock must never hold the connection the lock holder needs (this deadlocked once).
		url := pgtest.NewDatabase(t)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		pool, err := db.Open(ctx, withParam(url, "pool_max_conns=2"))
		require.NoError(t, err)
		defer pool.Close()
		require.EqualValues(t, 2, pool.Config().MaxConns)
		for {
			var out bytes.Buffer
			require.NoError(t, db.Migrate(ctx, pool, db.Down, &out))
			if bytes.Contains(out.Bytes(), []byte("nothing")) {
				break
			}
		}
		rm, err := rivermigrate.New(riverpgxv5.New(pool), nil)
		require.NoError(t, err)
		_, err = rm.Migrate(ctx, rivermigrate.DirectionDown, &rivermigrate.MigrateOpts{TargetVersion: -1})
		require.NoError(t, err)
		var wg sync.WaitGroup
		errs := make([]error, 8)
		outs := make([]bytes.Buffer, len(errs))
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = db.Migrate(ctx, pool, db.Up, &outs[i])
			}()
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		// Each migration, goose's and River's, was applied by exactly one migrator.
		var all string
		for i := range outs {
			all += outs[i].String()
		}
		require.Equal(t, 1, strings.Count(all, "applied 00001_mirror.sql"), all)
		require.Equal(t, 1, strings.Count(all, "applied river migration 001 "), all)
		pending, err := db.Pending(ctx, pool)
		require.NoError(t, err)
		require.False(t, pending)
	})

	t.Run("PendingCoversRiversMigrations", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.New(t) // migrated up
		ctx := context.Background()
		pending, err := db.Pending(ctx, pool)
		require.NoError(t, err)
		require.False(t, pending)
		// The job queue's latest migration rolled back: the worker must not start.
		rm, err := rivermigrate.New(riverpgxv5.New(pool), nil)
		require.NoError(t, err)
		_, err = rm.Migrate(ctx, rivermigrate.DirectionDown, &rivermigrate.MigrateOpts{MaxSteps: 1})
		require.NoError(t, err)
		pending, err = db.Pending(ctx, pool)
		require.NoError(t, err)
		require.True(t, pending)
		require.NoError(t, db.Migrate(ctx, pool, db.Up, &bytes.Buffer{}))
		pending, err = db.Pending(ctx, pool)
		require.NoError(t, err)
		require.False(t, pending)
	})

	t.Run("RejectsUnknownDirection", func(t *testing.T) {
		t.Parallel()
		pool := pgtest.New(t)
		require.ErrorContains(t, db.Migrate(context.Background(), pool, "sideways", &bytes.Buffer{}), "unknown migrate direction")
	})
}

// withParam appends a query parameter to a postgres:// URL or a keyword/value string.
func withParam(url, kv string) string {
	if strings.Contains(url, "://") {
		if strings.Contains(url, "?") {
			return url + "&" + kv
		}
		return url + "?" + kv
	}
	return url + " " + kv
}
