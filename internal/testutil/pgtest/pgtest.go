// Package pgtest gives tests a real Postgres: the server named by TEST_DATABASE_URL, or a
// throwaway cluster started with the installed initdb and pg_ctl for the test binary's
// lifetime. Each test gets a freshly created and migrated database, dropped afterwards.
// When no server can be had, tests fail with a message saying how to provide one; they
// never pass silently.
//
// A package that uses it calls pgtest.Main from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wecomsync/wecomsync/internal/db"
	"github.com/wecomsync/wecomsync/internal/pgcluster"
)

var (
	serverURL string // the server tests create their databases on
	setupErr  error  // why no server could be had
)

// Main finds or starts the Postgres server, runs the tests and stops the throwaway
// cluster, if it started one. It returns the exit code for os.Exit.
func Main(m *testing.M) int {
	stop := func() {}
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		serverURL = u
	} else {
		var c *pgcluster.Cluster
		if c, setupErr = pgcluster.Start(""); setupErr == nil {
			serverURL, stop = c.URL, c.Stop
		}
	}
	code := m.Run()
	stop()
	return code
}

// URL returns the server URL, failing the test with instructions when there is none.
func URL(tb testing.TB) string {
	tb.Helper()
	if setupErr != nil {
		tb.Fatalf("no Postgres for tests: %v\nSet TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) or install PostgreSQL (apt-get install postgresql) so initdb and pg_ctl can start a throwaway cluster.", setupErr)
	}
	if serverURL == "" {
		tb.Fatal("pgtest: call pgtest.Main from the package's TestMain, or set TEST_DATABASE_URL")
	}
	return serverURL
}

// NewDatabase creates an empty database with the embedded migrations applied and returns
// its URL; the database is dropped when the test ends.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	url := NewEmptyDatabase(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pool, err := db.Open(ctx, url)
	if err != nil {
		tb.Fatalf("opening test database: %v", err)
	}
	defer pool.Close()
	if err := db.Migrate(ctx, pool, db.Up, io.Discard); err != nil {
		tb.Fatalf("migrating test database: %v", err)
	}
	return url
}

// NewEmptyDatabase creates an empty database, without migrations, and returns its URL;
// the database is dropped when the test ends.
func NewEmptyDatabase(tb testing.TB) string {
	tb.Helper()
	base := URL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connecting to the test Postgres server: %v (is TEST_DATABASE_URL right?)", err)
	}
	defer admin.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "wecomsync_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("creating test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("dropping test database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("dropping test database %s: %v", name, err)
		}
	})
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		tb.Fatalf("parsing test database URL: %v", err)
	}
	return withDatabase(base, cfg.Database, name)
}

// New returns a pool to a fresh migrated database (see NewDatabase), closed when the test
// ends.
func New(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	url := NewDatabase(tb)
	pool, err := db.Open(context.Background(), url)
	if err != nil {
		tb.Fatalf("opening test database: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// withDatabase rewrites the database name of a URL or keyword/value connection string.
func withDatabase(conn, old, name string) string {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		rest := conn[strings.Index(conn, "://")+3:]
		slash := strings.IndexByte(rest, '/')
		q := ""
		if i := strings.IndexByte(rest, '?'); i >= 0 {
			q = rest[i:]
			if slash > i {
				slash = -1
			}
			rest = rest[:i]
		}
		if slash >= 0 {
			rest = rest[:slash]
		}
		return conn[:strings.Index(conn, "://")+3] + rest + "/" + name + q
	}
	if old != "" && strings.Contains(conn, "dbname="+old) {
		return strings.Replace(conn, "dbname="+old, "dbname="+name, 1)
	}
	return conn + " dbname=" + name
}
