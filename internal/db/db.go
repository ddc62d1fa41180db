// Package db holds what every Postgres user in wecomsync shares: connecting, applying the
// embedded goose migrations under a Postgres session lock (safe when several replicas
// start at once), and the small DBTX interface that both a pool and a transaction satisfy.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/wecomsync/wecomsync/migrations"
)

// DBTX is what a store needs from Postgres: a *pgxpool.Pool, a *pgxpool.Conn or a pgx.Tx.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Open returns a connection pool for url after checking that the server answers. Each
// option adjusts the pool's configuration first.
func Open(ctx context.Context, url string, opts ...func(*pgxpool.Config)) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing DATABASE_URL: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "wecomsync"
	for _, o := range opts {
		o(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating Postgres pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to Postgres at %s: %w", redact(cfg), err)
	}
	return pool, nil
}

// redact names the server without the password.
func redact(cfg *pgxpool.Config) string {
	return fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
}

// MinConns is an Open option raising the pool's size to at least n connections, unless the
// URL sets pool_max_conns itself (pgxpool's default is max(4, CPUs), too few for a worker
// running several lanes, its relay and its status page at once).
func MinConns(url string, n int) func(*pgxpool.Config) {
	return func(c *pgxpool.Config) {
		if !strings.Contains(url, "pool_max_conns") && c.MaxConns < int32(n) {
			c.MaxConns = int32(n)
		}
	}
}

// Direction selects what Migrate does.
type Direction string

// The migrate commands.
const (
	Up     Direction = "up"
	Down   Direction = "down"
	Status Direction = "status"
)

// Migrate applies the embedded migrations to the database pool points at: Up applies all
// pending ones, Down rolls back the latest, Status lists them. A Postgres session advisory
// lock serialises concurrent callers. Progress lines go to out.
//
// Up and Status also cover River's tables (the job queue of internal/jobs), migrated by
// rivermigrate after the goose files; Down rolls back goose migrations only (River's
// tables are shared by every job and are left in place; drop them with the river CLI).
func Migrate(ctx context.Context, pool *pgxpool.Pool, dir Direction, out io.Writer) error {
	if err := migrateGoose(ctx, pool, dir, out); err != nil {
		return err
	}
	if dir == Down {
		return nil
	}
	return migrateRiver(ctx, pool, dir, out)
}

// riverMigrateLock is the session advisory lock key serialising concurrent river migrations.
const riverMigrateLock = 0x77636d72697665 // "wcmrive"

// migrateRiver applies (Up) or lists (Status) River's migrations. A session advisory lock
// serialises replicas migrating at once. The lock and the migrations use a private pool of
// two connections (one holds the lock, one runs River's per-migration transactions), never
// the caller's: goroutines waiting for the lock would otherwise hold the very connections
// the holder needs, a deadlock on any pool smaller than the number of migrators.
func migrateRiver(ctx context.Context, pool *pgxpool.Pool, dir Direction, out io.Writer) error {
	cfg := pool.Config()
	cfg.MaxConns, cfg.MinConns = 2, 0
	own, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("opening connections for river migrations: %w", err)
	}
	defer own.Close()
	conn, err := own.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring connection for river migrations: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(riverMigrateLock)); err != nil {
		return fmt.Errorf("locking river migrations: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(riverMigrateLock)) //nolint:errcheck // released with the session anyway
	m, err := rivermigrate.New(riverpgxv5.New(own), nil)
	if err != nil {
		return fmt.Errorf("creating river migrator: %w", err)
	}
	if dir == Status {
		have, err := m.ExistingVersions(ctx)
		if err != nil {
			return fmt.Errorf("reading river migration status: %w", err)
		}
		all := m.AllVersions()
		fmt.Fprintf(out, "%-30s applied %d of %d\n", "river (job queue)", len(have), len(all))
		return nil
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("migrating river up: %w", err)
	}
	for _, v := range res.Versions {
		fmt.Fprintf(out, "applied river migration %03d %s (%s)\n", v.Version, v.Name, v.Duration.Round(1e6))
	}
	return nil
}

func migrateGoose(ctx context.Context, pool *pgxpool.Pool, dir Direction, out io.Writer) error {
	sqlDB := stdlib.OpenDBFromPool(pool)
	defer sqlDB.Close()
	p, err := newProvider(sqlDB)
	if err != nil {
		return err
	}
	switch dir {
	case Up:
		res, err := p.Up(ctx)
		for _, r := range res {
			fmt.Fprintf(out, "applied %s (%s)\n", r.Source.Path, r.Duration.Round(1e6))
		}
		if err != nil {
			return fmt.Errorf("migrating up: %w", err)
		}
		if len(res) == 0 {
			fmt.Fprintln(out, "no pending migrations")
		}
	case Down:
		r, err := p.Down(ctx)
		if err != nil {
			if errors.Is(err, goose.ErrNoNextVersion) {
				fmt.Fprintln(out, "nothing to roll back")
				return nil
			}
			return fmt.Errorf("migrating down: %w", err)
		}
		fmt.Fprintf(out, "rolled back %s\n", r.Source.Path)
	case Status:
		st, err := p.Status(ctx)
		if err != nil {
			return fmt.Errorf("reading migration status: %w", err)
		}
		for _, s := range st {
			at := "pending"
			if s.State == goose.StateApplied {
				at = "applied " + s.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
			}
			fmt.Fprintf(out, "%-30s %s\n", s.Source.Path, at)
		}
	default:
		return fmt.Errorf("unknown migrate direction %q (want up, down or status)", dir)
	}
	return nil
}

// Pending reports whether migrations remain to be applied, goose's or River's, so a
// service can refuse to start on an old schema.
func Pending(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	sqlDB := stdlib.OpenDBFromPool(pool)
	defer sqlDB.Close()
	p, err := newProvider(sqlDB)
	if err != nil {
		return false, err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("checking for pending migrations: %w", err)
	}
	if pending {
		return true, nil
	}
	// River's tables (the job queue) are migrated by the same `worker migrate up`.
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return false, fmt.Errorf("creating river migrator: %w", err)
	}
	have, err := m.ExistingVersions(ctx)
	if err != nil {
		return false, fmt.Errorf("checking for pending river migrations: %w", err)
	}
	applied := map[int]bool{}
	for _, v := range have {
		applied[v.Version] = true
	}
	for _, v := range m.AllVersions() {
		if !applied[v.Version] {
			return true, nil
		}
	}
	return false, nil
}

func newProvider(sqlDB *sql.DB) (*goose.Provider, error) {
	// Retry every second (goose waits 5 s by default), for up to five minutes.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, fmt.Errorf("creating migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS,
		goose.WithSessionLocker(locker), goose.WithSlog(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, fmt.Errorf("loading migrations: %w", err)
	}
	return p, nil
}
