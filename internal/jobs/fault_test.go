package jobs_test

import (
	"context"
	"errors"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/jobs"
	"github.com/wecomsync/wecomsync/internal/mirror"
)

// partJobID returns the WeCom job id of the export part kind of job id.
func (e *env) partJobID(t *testing.T, id int64, kind string) string {
	t.Helper()
	var jid string
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT p->>'jobid' FROM wecom.job_runs,
		jsonb_array_elements(state->'parts') p WHERE river_job_id = $1 AND p->>'kind' = $2`, id, kind).Scan(&jid))
	return jid
}

// killer stops a runner from inside one of its jobs, as a crash would: the job's context
// is cancelled and the attempt ends unfinished.
type killer struct {
	runner atomic.Pointer[jobs.Runner]
	fired  atomic.Bool
}

func (k *killer) kill(ctx context.Context) error {
	if k.fired.Swap(true) {
		return nil
	}
	go func() { _ = k.runner.Load().Kill(context.Background()) }()
	<-ctx.Done()
	return ctx.Err()
}

func TestFaults(t *testing.T) {
	t.Parallel()

	t.Run("KilledMidDownloadResumesOnAnotherWorker", func(t *testing.T) {
		t.Parallel()
		k := &killer{}
		e := setup(t, envOpts{seed: 25_000, blockSize: 10_000, jobs: emulator.JobsConfig{Immediate: true}, noStart: true,
			hook: func(ctx context.Context, _ int64, point string) error {
				if point == "downloaded user 0" {
					return k.kill(ctx)
				}
				return nil
			}})
		ctx := context.Background()
		first, err := jobs.New(e.cfg)
		require.NoError(t, err)
		k.runner.Store(first)
		require.NoError(t, first.Start(ctx))
		id, err := first.EnqueueExport(ctx, testCorp, jobs.ExportUsers, 0)
		require.NoError(t, err)
		<-first.River().Stopped()
		require.Equal(t, int64(1), e.downloads.Load(), "one block downloaded before the crash")
		require.Zero(t, e.mirrorUsers(t))

		cfg := e.cfg
		cfg.Hook = nil
		second := e.start(t, cfg)
		row := e.wait(t, second, id)
		require.Equal(t, rivertype.JobStateCompleted, row.State, "%v", row.Errors)
		require.Equal(t, int64(4), e.downloads.Load(), "block 0 was not downloaded again: 3 member blocks + 1 department block")
		require.Equal(t, 25_000, e.mirrorUsers(t))
		require.Equal(t, 25_000, e.count(t, `SELECT count(*) FROM wecom.changes WHERE corp_id = $1 AND entity = 'user'`, testCorp))
		entries, err := os.ReadDir(cfg.WorkDir)
		require.NoError(t, err)
		require.Empty(t, entries, "work files removed")
	})

	t.Run("KilledMidMergeLeavesNothingHalfApplied", func(t *testing.T) {
		t.Parallel()
		k := &killer{}
		e := setup(t, envOpts{seed: 3000, jobs: emulator.JobsConfig{Immediate: true}, noStart: true})
		ctx := context.Background()
		cfg := e.cfg
		cfg.Mirror = &killingMirror{Store: e.store, k: k, after: 1000}
		first, err := jobs.New(cfg)
		require.NoError(t, err)
		k.runner.Store(first)
		require.NoError(t, first.Start(ctx))
		id, err := first.EnqueueExport(ctx, testCorp, jobs.ExportUsers, 0)
		require.NoError(t, err)
		<-first.River().Stopped()
		require.True(t, k.fired.Load())
		require.Zero(t, e.mirrorUsers(t), "the merge transaction was rolled back")
		require.Zero(t, e.count(t, `SELECT count(*) FROM wecom.changes`))

		second := e.start(t, e.cfg)
		row := e.wait(t, second, id)
		require.Equal(t, rivertype.JobStateCompleted, row.State, "%v", row.Errors)
		require.Equal(t, 3000, e.mirrorUsers(t))
		require.Equal(t, 3000, e.count(t, `SELECT count(*) FROM wecom.changes WHERE corp_id = $1 AND entity = 'user'`, testCorp))
		require.Zero(t, e.count(t, `SELECT count(*) FROM (SELECT entity, key FROM wecom.changes GROUP BY 1, 2 HAVING count(*) > 1) d`))
	})

	t.Run("CorruptBlockFailsTheJobAndLeavesTheMirror", func(t *testing.T) {
		t.Parallel()
		var e *env
		var jobID int64
		e = setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}, noStart: true})
		ctx := context.Background()
		cfg := e.cfg
		cfg.Hook = func(ctx context.Context, id int64, point string) error {
			if id == jobID && point == "downloaded user 0" {
				return e.emu.CorruptExportBlock(e.partJobID(t, id, "department"), 0)
			}
			return nil
		}
		e.runner = e.start(t, cfg)
		e.exportAll(t)
		editBehindBack(t, e)
		changes := e.count(t, `SELECT count(*) FROM wecom.changes`)
		id, err := e.runner.EnqueueExport(ctx, testCorp, jobs.ExportUsers, 0)
		require.NoError(t, err)
		jobID = id
		require.Equal(t, rivertype.JobStateCancelled, e.wait(t, e.runner, id).State)
		info, err := e.runner.Show(ctx, id)
		require.NoError(t, err)
		require.Contains(t, info.Error, "export block 0 of department export")
		require.Contains(t, info.Error, "is corrupt")
		require.Equal(t, changes, e.count(t, `SELECT count(*) FROM wecom.changes`))
	})

	t.Run("BadPaddingFailsTheJobAndLeavesTheMirror", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}, noStart: true})
		ctx := context.Background()
		cfg := e.cfg
		cfg.Hook = func(ctx context.Context, id int64, point string) error {
			if point != "downloaded user 0" {
				return nil
			}
			// Damage the verified file on disk: its last plaintext block no longer unpads.
			p := filepath.Join(cfg.WorkDir, "job-"+itoa(id), "user-0.enc")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)-17] ^= 0x80
			return os.WriteFile(p, b, 0o600)
		}
		e.runner = e.start(t, cfg)
		id, err := e.runner.EnqueueExport(ctx, testCorp, jobs.ExportUsers, 0)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCancelled, e.wait(t, e.runner, id).State)
		info, err := e.runner.Show(ctx, id)
		require.NoError(t, err)
		require.Contains(t, info.Error, "cannot be decrypted or parsed")
		require.Zero(t, e.mirrorUsers(t))
	})

	t.Run("ExpiredURLsAreRefreshedOrExportedAgain", func(t *testing.T) {
		t.Parallel()
		var e *env
		var fired atomic.Bool
		e = setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}, noStart: true})
		cfg := e.cfg
		cfg.Hook = func(ctx context.Context, id int64, point string) error {
			if point == "downloaded user 0" && !fired.Swap(true) {
				e.emu.ExpireExportURLs("")
			}
			return nil
		}
		e.runner = e.start(t, cfg)
		e.exportAll(t)
		require.True(t, fired.Load())
		require.Equal(t, e.emu.Directory().UserCount(), e.mirrorUsers(t))
	})

	t.Run("SurvivesBusyRateLimitedAndSlowWeCom", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}})
		require.NoError(t, e.emu.SetFaults(emulator.Faults{ErrorRate: 0.3, FreqLimitRate: 0.2, LatencyMS: 20}))
		e.exportAll(t)
		require.NoError(t, e.emu.SetFaults(emulator.Faults{}))
		require.Equal(t, e.emu.Directory().UserCount(), e.mirrorUsers(t))
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// killingMirror kills the runner after the merge has staged `after` members: the
// merge's transaction is open and half-filled when the worker dies.
type killingMirror struct {
	*mirror.Store
	k     *killer
	after int
}

func (m *killingMirror) Sync(ctx context.Context, corpID string, src mirror.SyncSource) (mirror.SyncReport, error) {
	if m.k.fired.Load() {
		return m.Store.Sync(ctx, corpID, src)
	}
	return m.Store.Sync(ctx, corpID, &killingSource{SyncSource: src, m: m})
}

type killingSource struct {
	mirror.SyncSource
	m *killingMirror
}

func (s *killingSource) SourceName() string { return jobs.SourceExport }

func (s *killingSource) Users(ctx context.Context) iter.Seq2[*mirror.User, error] {
	return func(yield func(*mirror.User, error) bool) {
		n := 0
		for u, err := range s.SyncSource.Users(ctx) {
			if n == s.m.after {
				err := s.m.k.kill(ctx)
				if err == nil {
					err = errors.New("killed")
				}
				yield(nil, err)
				return
			}
			n++
			if !yield(u, err) {
				return
			}
		}
	}
}
