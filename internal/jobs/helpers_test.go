package jobs_test

import (
	"context"
	"iter"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/jobs"
	"github.com/wecomsync/wecomsync/internal/mirror"
	"github.com/wecomsync/wecomsync/internal/testutil/pgtest"
	"github.com/wecomsync/wecomsync/internal/wecom"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	testCorp    = "wwjobstest"
	testSecret  = "contact-secret-jobs"
	testConsole = "console-secret-jobs"
)

// env is a migrated database, an in-process emulator over real HTTP, a WeCom client, a
// mirror store and a started job runner.
type env struct {
	pool      *pgxpool.Pool
	emu       *emulator.Server
	url       string
	client    *wecom.Client
	store     *mirror.Store
	runner    *jobs.Runner
	cfg       jobs.Config
	downloads atomic.Int64 // export block requests seen
	waitFor   time.Duration
}

type envOpts struct {
	seed      int
	jobs      emulator.JobsConfig
	newIP     bool
	blockSize int
	hook      func(ctx context.Context, id int64, point string) error
	noStart   bool
	schedules *jobs.Schedules
}

func setup(t testing.TB, o envOpts) *env {
	t.Helper()
	e := &env{pool: pgtest.New(t)}
	if o.seed == 0 {
		o.seed = 60
	}
	emu, err := emulator.New(emulator.Config{CorpID: testCorp, ContactSecret: testSecret, ConsoleSecret: testConsole,
		SeedUsers: o.seed, Jobs: o.jobs, ContactNewIP: o.newIP, SkipCallbackVerify: true})
	require.NoError(t, err)
	e.emu = emu
	h := emu.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "download") {
			e.downloads.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() { _ = emu.Close(context.Background()) })
	e.url = ts.URL
	e.client = e.newClient(t, testSecret)
	e.store = mirror.NewStore(e.pool, nil, slog.New(slog.DiscardHandler), mirror.Options{})
	e.cfg = jobs.Config{Pool: e.pool, Mirror: e.store, Clients: map[string]jobs.WeCom{testCorp: e.client},
		WorkDir: t.TempDir(), PollMin: 5 * time.Millisecond, PollMax: 50 * time.Millisecond,
		ExportBlockSize: o.blockSize, Hook: o.hook, Schedules: o.schedules, Logger: testLogger(t)}
	if o.newIP {
		e.cfg.Fallback = fallbackSource(e)
	}
	if !o.noStart {
		e.runner = e.start(t, e.cfg)
	}
	return e
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("JOBS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

func (e *env) newClient(t testing.TB, secret string) *wecom.Client {
	t.Helper()
	// A generous call timeout: with JobsConfig.Immediate an export is generated inside
	// the submitting call (seconds for a million members).
	c, err := wecom.New(wecom.Config{BaseURL: e.url, CorpID: testCorp, Secret: secret, RetryBaseDelay: time.Millisecond,
		RetryMaxDelay: 10 * time.Millisecond, FreqLimitBlock: 5 * time.Millisecond, CallTimeout: 2 * time.Minute})
	require.NoError(t, err)
	return c
}

// start creates and starts a runner with cfg, stopped when the test ends.
func (e *env) start(t testing.TB, cfg jobs.Config) *jobs.Runner {
	t.Helper()
	r, err := jobs.New(cfg)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.Stop(ctx)
	})
	return r
}

// wait polls the River job until it is finished and returns its final row.
func (e *env) wait(t testing.TB, r *jobs.Runner, id int64) *rivertype.JobRow {
	t.Helper()
	limit := e.waitFor
	if limit == 0 {
		limit = 60 * time.Second
	}
	deadline := time.Now().Add(limit)
	for {
		row, err := r.River().JobGet(context.Background(), id)
		require.NoError(t, err)
		switch row.State {
		case rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
			return row
		}
		if time.Now().After(deadline) {
			info, _ := r.Show(context.Background(), id)
			t.Fatalf("job %d still %s after %s: %+v", id, row.State, limit, info)
		}
		time.Sleep(10 * time.Millisecond) // polling observable state, not synchronisation by sleeping
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// count runs a count query.
func (e *env) count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, e.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// exportAll merges a users export so the mirror matches the emulator.
func (e *env) exportAll(t testing.TB) {
	t.Helper()
	id, err := e.runner.EnqueueExport(context.Background(), testCorp, jobs.ExportUsers, 0)
	require.NoError(t, err)
	row := e.wait(t, e.runner, id)
	require.Equal(t, rivertype.JobStateCompleted, row.State, "%v", row.Errors)
}

// mirrorUsers is the number of members in the mirror.
func (e *env) mirrorUsers(t testing.TB) int {
	return e.count(t, `SELECT count(*) FROM wecom.users WHERE corp_id = $1`, testCorp)
}

// fallbackSource is a list_id-based snapshot like the worker's (department/simplelist,
// user/list_id + user/get), for corps whose exports WeCom refuses.
func fallbackSource(e *env) func(string) (mirror.SyncSource, error) {
	return func(string) (mirror.SyncSource, error) { return &listSource{c: e.client}, nil }
}

type listSource struct{ c *wecom.Client }

func (s *listSource) Departments(ctx context.Context) iter.Seq2[*mirror.Department, error] {
	return func(yield func(*mirror.Department, error) bool) {
		ds, err := s.c.SimpleListDepartments(ctx, 0)
		if err != nil {
			yield(nil, err)
			return
		}
		for _, d := range ds {
			if !yield(&mirror.Department{ID: int64(d.ID), ParentID: int64(d.ParentID), Order: int64(d.Order),
				Unknown: []string{mirror.FieldName, mirror.FieldNameEn}}, nil) {
				return
			}
		}
	}
}

func (s *listSource) Users(ctx context.Context) iter.Seq2[*mirror.User, error] {
	return func(yield func(*mirror.User, error) bool) {
		seen := map[string]bool{}
		for du, err := range s.c.ListIDs(ctx, 1000) {
			if err != nil {
				yield(nil, err)
				return
			}
			if seen[du.UserID] {
				continue
			}
			seen[du.UserID] = true
			u, err := s.c.GetUser(ctx, du.UserID)
			if err != nil {
				yield(nil, err)
				return
			}
			mu := &mirror.User{UserID: u.UserID, Name: u.Name, Position: u.Position, Mobile: u.Mobile, Email: u.Email,
				Status: u.Status, MainDepartment: int64(u.MainDepartment), Alias: u.Alias, Address: u.Address,
				Telephone: u.Telephone, OpenUserID: u.OpenUserID, BizMail: u.BizMail, Avatar: u.Avatar,
				Unknown: []string{mirror.FieldExtAttr, mirror.FieldGender, mirror.FieldOrder, mirror.FieldIsLeader}}
			for _, d := range u.Department {
				mu.Departments = append(mu.Departments, mirror.Membership{DepartmentID: int64(d)})
			}
			if !yield(mu, nil) {
				return
			}
		}
	}
}

func (s *listSource) Tags(context.Context) iter.Seq2[*mirror.Tag, error] { return nil }
