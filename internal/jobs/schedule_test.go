package jobs_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/jobs"
)

func TestSchedules(t *testing.T) {
	t.Parallel()

	t.Run("ReadsTheEnvironment", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{
			"WORKER_IMPORT_SCHEDULES": "0 6 * * *|https://hr.example/members.csv|users|replace; 30 5 * * 1-5|/data/parties.csv|departments",
		}
		s, err := jobs.SchedulesFromEnv(func(k string) string { return env[k] }, []string{"wwa", "wwb"})
		require.NoError(t, err)
		require.Equal(t, jobs.DefaultReconcileCron, s.Reconcile)
		require.Equal(t, []jobs.ImportSchedule{
			{Cron: "0 6 * * *", Source: "https://hr.example/members.csv", Target: jobs.TargetUsers, Mode: jobs.ModeReplace},
			{Cron: "30 5 * * 1-5", Source: "/data/parties.csv", Target: jobs.TargetDepartments, Mode: jobs.ModeReplace},
		}, s.Imports)
		require.Equal(t, 4, s.Count(), "a reconcile per corp and two imports")

		env = map[string]string{"WORKER_RECONCILE_CRON": "off"}
		s, err = jobs.SchedulesFromEnv(func(k string) string { return env[k] }, []string{"wwa"})
		require.NoError(t, err)
		require.Zero(t, s.Count())
	})

	t.Run("RejectsBadEntries", func(t *testing.T) {
		t.Parallel()
		for _, bad := range []map[string]string{
			{"WORKER_RECONCILE_CRON": "every night"},
			{"WORKER_IMPORT_SCHEDULES": "0 6 * * *|/x.csv"},
			{"WORKER_IMPORT_SCHEDULES": "0 6 * * *|/x.csv|tags|sync"},
			{"WORKER_IMPORT_SCHEDULES": "0 6 * * *|/x.csv|users|merge"},
			{"WORKER_IMPORT_SCHEDULES": "61 6 * * *|/x.csv|users|sync"},
		} {
			_, err := jobs.SchedulesFromEnv(func(k string) string { return bad[k] }, []string{"wwa"})
			require.Error(t, err, "%v", bad)
		}
	})

	t.Run("PeriodicReconcileRunsInTheRunner", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true},
			schedules: &jobs.Schedules{Corps: []string{testCorp}, Reconcile: "0 3 * * *", ReconcileOnStart: true}})
		ctx := context.Background()
		var id int64
		eventually(t, "the periodic reconcile to be inserted", func() bool {
			list, err := e.runner.List(ctx, 10)
			require.NoError(t, err)
			for _, j := range list {
				if j.Kind == "reconcile" {
					id = j.ID
					return true
				}
			}
			return false
		})
		require.Equal(t, rivertype.JobStateCompleted, e.wait(t, e.runner, id).State)
		require.Equal(t, e.emu.Directory().UserCount(), e.mirrorUsers(t))
	})

	t.Run("ScheduledImportFetchesValidatesAndImports", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}})
		ctx := context.Background()
		e.exportAll(t)
		dir := t.TempDir()
		good := filepath.Join(dir, "members.csv")
		require.NoError(t, os.WriteFile(good, []byte("姓名,帐号,手机号,所在部门\n定时,scheduled_1,13988880000,1\n"), 0o600))
		bad := filepath.Join(dir, "bad.csv")
		require.NoError(t, os.WriteFile(bad, []byte("姓名,帐号,手机号,所在部门\n坏,-x,13988880001,1\n"), 0o600))

		res, err := e.runner.River().Insert(ctx, jobs.ImportArgs{CorpID: testCorp, Target: jobs.TargetUsers, Mode: jobs.ModeSync, Source: good}, nil)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, e.wait(t, e.runner, res.Job.ID).State)
		_, ok := e.emu.Directory().User("scheduled_1")
		require.True(t, ok)

		res, err = e.runner.River().Insert(ctx, jobs.ImportArgs{CorpID: testCorp, Target: jobs.TargetUsers, Mode: jobs.ModeSync, Source: bad}, nil)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCancelled, e.wait(t, e.runner, res.Job.ID).State)
		info, err := e.runner.Show(ctx, res.Job.ID)
		require.NoError(t, err)
		require.Contains(t, info.Error, "line 2: userid")
	})
}
