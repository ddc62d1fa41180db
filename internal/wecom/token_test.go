package wecom_test

import (
	"context"
	"crypto/sha256"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/db"
	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/testutil/pgtest"
	"github.com/wecomsync/wecomsync/internal/wecom"
)

// hammer runs n concurrent GetUser calls on c and requires them all to succeed.
func hammer(t *testing.T, ctx context.Context, n int, clients ...*wecom.Client) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n*len(clients))
	for _, c := range clients {
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.GetUser(ctx, "u000001")
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()

	t.Run("ExpiryMidRunIsRecoveredTransparently", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		ctx := ctxT(t)
		hammer(t, ctx, 1, f.client)
		require.Equal(t, 1, f.rec.count("gettoken"))
		for _, invalidate := range []bool{false, true} {
			require.Equal(t, 1, f.emu.ExpireTokens(invalidate))
			hammer(t, ctx, 50, f.client)
		}
		require.Equal(t, 3, f.rec.count("gettoken"), "one gettoken per expiry, not one per goroutine")
		errs := f.emu.Stats().APIErrors
		require.Positive(t, errs["42001"])
		require.Positive(t, errs["40014"])
	})

	t.Run("RefreshedEarlyBeforeExpiry", func(t *testing.T) {
		t.Parallel()
		var clock atomic.Int64
		clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
		now := func() time.Time { return time.Unix(0, clock.Load()) }
		f := setup(t, withEmulator(func(e *emulator.Config) { e.Now = now }), withClient(func(c *wecom.Config) { c.Now = now }))
		ctx := ctxT(t)
		hammer(t, ctx, 1, f.client)
		require.Equal(t, 1, f.rec.count("gettoken"))
		clock.Add(int64(7200*time.Second - 6*time.Minute))
		hammer(t, ctx, 1, f.client)
		require.Equal(t, 1, f.rec.count("gettoken"), "not due yet")
		clock.Add(int64(2 * time.Minute)) // 4 minutes before expiry: inside the 5-minute margin
		hammer(t, ctx, 5, f.client)
		require.Equal(t, 2, f.rec.count("gettoken"), "refreshed once, ahead of expiry")
		require.Zero(t, f.emu.Stats().APIErrors["42001"], "no call ever used an expired token")
		// The emulator hands back the same token with its remaining lifetime: the client
		// must not refresh on every call now.
		hammer(t, ctx, 5, f.client)
		require.Equal(t, 2, f.rec.count("gettoken"))
	})

	t.Run("BadSecretIsReported", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		c := f.newClient(t, func(cfg *wecom.Config) { cfg.Secret = "wrong-secret" })
		_, err := c.GetUser(ctxT(t), "u000001")
		require.ErrorIs(t, err, wecom.ErrBadCredentials)
		require.Equal(t, 40001, errcodeOf(err))
		require.Equal(t, 0, f.rec.count("user/get"))
	})
}

// pgClient returns a client for f's emulator with its own pool on url: a separate
// "process" sharing tokens through Postgres.
func pgClient(t *testing.T, f *fixture, url, secret string) *wecom.Client {
	t.Helper()
	pool, err := db.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return f.newClient(t, func(cfg *wecom.Config) {
		cfg.Store = wecom.NewPGTokenStore(pool)
		cfg.Secret = secret
	})
}

func TestPGTokenStore(t *testing.T) {
	t.Parallel()

	t.Run("ProcessesShareOneTokenPerExpiry", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		url := pgtest.NewDatabase(t)
		a, b := pgClient(t, f, url, testSecret), pgClient(t, f, url, testSecret)
		ctx := ctxT(t)
		hammer(t, ctx, 1, a)
		hammer(t, ctx, 1, b)
		require.Equal(t, 1, f.rec.count("gettoken"), "b took a's token from Postgres")
		for i := range 3 {
			f.emu.ExpireTokens(i%2 == 1)
			hammer(t, ctx, 20, a, b)
			require.Equal(t, 2+i, f.rec.count("gettoken"), "one gettoken per expiry across both processes")
		}
	})

	t.Run("StoresTheSecretHashNeverTheSecret", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		url := pgtest.NewDatabase(t)
		c := pgClient(t, f, url, testSecret)
		hammer(t, ctxT(t), 1, c)
		pool, err := pgxpool.New(ctxT(t), url)
		require.NoError(t, err)
		defer pool.Close()
		var row string
		var hash []byte
		require.NoError(t, pool.QueryRow(ctxT(t), `SELECT row_to_json(t)::text, secret_sha256 FROM wecom.access_tokens t`).Scan(&row, &hash))
		sum := sha256.Sum256([]byte(testSecret))
		require.Equal(t, sum[:], hash)
		require.NotContains(t, row, testSecret)
	})

	t.Run("SecretsOfOneCorpHaveSeparateTokens", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		url := pgtest.NewDatabase(t)
		contact, app := pgClient(t, f, url, testSecret), pgClient(t, f, url, testApp)
		ctx := ctxT(t)
		hammer(t, ctx, 1, contact)
		_, err := app.LinkedPermissions(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, f.rec.count("gettoken"))
		_, err = contact.ListIDsPage(ctx, "", 1)
		require.NoError(t, err, "the contacts token was not replaced by the app's")
	})

	t.Run("FailedRefreshIsReportedToEveryWaitingProcess", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		url := pgtest.NewDatabase(t)
		release := make(chan struct{})
		var first atomic.Bool
		f.rec.setIntercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if r.URL.Path == "/cgi-bin/gettoken" && !first.Swap(true) {
				<-release
			}
			return false
		})
		const procs = 5
		clients := make([]*wecom.Client, procs)
		for i := range clients {
			clients[i] = pgClient(t, f, url, "revoked-secret")
		}
		ctx := ctxT(t)
		errs := make(chan error, procs)
		for _, c := range clients {
			go func() {
				_, err := c.GetUser(ctx, "u000001")
				errs <- err
			}()
		}
		// Wait until the other four processes are blocked on the leader's lock.
		probe, err := pgxpool.New(ctx, url)
		require.NoError(t, err)
		defer probe.Close()
		require.Eventually(t, func() bool {
			var n int
			err := probe.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
			return err == nil && n == procs-1
		}, 10*time.Second, 5*time.Millisecond)
		close(release)
		for range procs {
			err := <-errs
			require.ErrorIs(t, err, wecom.ErrBadCredentials)
			require.Equal(t, 40001, errcodeOf(err))
		}
		require.Equal(t, 1, f.rec.count("gettoken"), "the waiters got the leader's failure instead of calling gettoken")
	})
}
