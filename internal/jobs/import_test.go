package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/jobs"
	"github.com/wecomsync/wecomsync/internal/mirror"
	"github.com/wecomsync/wecomsync/internal/wecom"
)

// mirrorRows returns every mirror member as an import row.
func (e *env) mirrorRows(t *testing.T) []jobs.UserRow {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT u.userid, u.name, coalesce(u.mobile, ''), coalesce(u.email, ''),
		ARRAY(SELECT d.department_id FROM wecom.user_departments d WHERE d.corp_id = u.corp_id AND d.userid = u.userid ORDER BY 1)
		FROM wecom.users u WHERE u.corp_id = $1 ORDER BY u.userid`, testCorp)
	require.NoError(t, err)
	var out []jobs.UserRow
	var r jobs.UserRow
	_, err = pgx.ForEachRow(rows, []any{&r.UserID, &r.Name, &r.Mobile, &r.Email, &r.Departments}, func() error {
		out = append(out, r)
		return nil
	})
	require.NoError(t, err)
	return out
}

func importSummary(t *testing.T, info *jobs.JobInfo) jobs.ImportSummary {
	t.Helper()
	var s jobs.ImportSummary
	require.NoError(t, json.Unmarshal(info.Summary, &s))
	return s
}

func TestImport(t *testing.T) {
	t.Parallel()

	t.Run("SyncCreatesAndUpdatesStoresRowResultsAndRefreshesTheMirror", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}})
		ctx := context.Background()
		e.exportAll(t)
		existing := e.mirrorRows(t)[0]
		// A member WeCom has but the mirror does not know yet: its mobile makes a row fail in WeCom.
		_, err := e.emu.Directory().CreateUser(emulator.UserInput{UserID: "hidden", Name: ptr("隐"), Mobile: ptr("13955550000"), Department: &[]int{1}})
		require.NoError(t, err)

		rows := []jobs.UserRow{
			{UserID: "new_one", Name: "新一", Mobile: "13955550001", Departments: []int64{1}, Position: "工程师"},
			{UserID: "new_two", Name: "新二", Email: "two@example.com", Departments: []int64{1}},
			{UserID: existing.UserID, Name: "改名", Mobile: existing.Mobile, Email: existing.Email, Departments: existing.Departments},
			{UserID: "clash", Name: "冲突", Mobile: "13955550000", Departments: []int64{1}},
		}
		plan, err := jobs.PlanUsers(ctx, jobs.NewMirrorView(e.pool), testCorp, jobs.ModeSync,
			&jobs.UserFile{Columns: jobs.UserColumns, Rows: rows}, 10)
		require.NoError(t, err)
		require.Equal(t, 3, plan.Create)
		require.Equal(t, 1, plan.Update)
		require.Zero(t, plan.Delete)
		require.Contains(t, plan.Updates[0], `name "`)

		id, err := e.runner.ImportUsers(ctx, testCorp, rows, jobs.ImportOptions{Mode: jobs.ModeSync})
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, e.wait(t, e.runner, id).State)
		info, err := e.runner.Show(ctx, id)
		require.NoError(t, err)
		s := importSummary(t, info)
		require.Equal(t, 4, s.Total)
		require.Equal(t, 3, s.OK)
		require.Equal(t, 1, s.Failed)
		require.Len(t, info.Results, 4)
		for _, r := range info.Results {
			if r.UserID == "clash" {
				require.Equal(t, 60104, r.ErrCode, "mobile taken")
			} else {
				require.Zero(t, r.ErrCode, r.UserID)
			}
		}
		require.Zero(t, e.count(t, `SELECT count(*) FROM wecom.import_files WHERE river_job_id = $1`, id))

		// The queued reconciliation brings the mirror up to date.
		require.NotZero(t, s.ReconcileJobID)
		require.Equal(t, rivertype.JobStateCompleted, e.wait(t, e.runner, s.ReconcileJobID).State)
		require.Equal(t, 1, e.count(t, `SELECT count(*) FROM wecom.users WHERE corp_id = $1 AND userid = 'new_one' AND position = '工程师'`, testCorp))
		require.Equal(t, 1, e.count(t, `SELECT count(*) FROM wecom.users WHERE corp_id = $1 AND userid = $2 AND name = '改名'`, testCorp, existing.UserID))
		require.Equal(t, e.emu.Directory().UserCount(), e.mirrorUsers(t))
	})

	t.Run("ReplaceDeletesWithinTheGuard", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}})
		ctx := context.Background()
		e.exportAll(t)
		all := e.mirrorRows(t)
		require.Equal(t, 60, len(all))
		keep := all[:len(all)-10] // deleting 10 of 60 is 16%
		f := &jobs.UserFile{Columns: []string{jobs.ColUserID, jobs.ColName, jobs.ColMobile, jobs.ColEmail, jobs.ColDepartment}, Rows: keep}

		_, err := e.runner.ImportUsers(ctx, testCorp, keep, jobs.ImportOptions{Mode: jobs.ModeReplace, Columns: f.Columns})
		require.ErrorContains(t, err, "replace would delete 10 of 60 members")
		require.ErrorContains(t, err, "--allow-deletes 10")
		_, err = e.runner.ImportUsers(ctx, testCorp, keep, jobs.ImportOptions{Mode: jobs.ModeReplace, Columns: f.Columns,
			Guard: &jobs.DeletionGuard{MaxShare: 0.1, AllowDeletes: 9}})
		require.ErrorContains(t, err, "more than --allow-deletes 9")

		plan, err := jobs.PlanUsers(ctx, jobs.NewMirrorView(e.pool), testCorp, jobs.ModeReplace, f, 3)
		require.NoError(t, err)
		require.Equal(t, 10, plan.Delete)
		require.Len(t, plan.Deletes, 3)
		require.Equal(t, 50, plan.Same)

		id, err := e.runner.ImportUsers(ctx, testCorp, keep, jobs.ImportOptions{Mode: jobs.ModeReplace, Columns: f.Columns,
			Guard: &jobs.DeletionGuard{MaxShare: 0.1, AllowDeletes: 10}})
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, e.wait(t, e.runner, id).State)
		info, err := e.runner.Show(ctx, id)
		require.NoError(t, err)
		s := importSummary(t, info)
		require.Equal(t, rivertype.JobStateCompleted, e.wait(t, e.runner, s.ReconcileJobID).State)
		require.Equal(t, 50, e.emu.Directory().UserCount())
		require.Equal(t, 50, e.mirrorUsers(t))
	})

	t.Run("DepartmentsImport", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}})
		ctx := context.Background()
		e.exportAll(t)
		rows, err := e.pool.Query(ctx, `SELECT 0, id, name, coalesce(parent_id, 0), 0::bigint FROM wecom.departments WHERE corp_id = $1 ORDER BY id`, testCorp)
		require.NoError(t, err)
		depts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[jobs.DepartmentRow])
		require.NoError(t, err)
		for i := range depts {
			depts[i].Line = i + 2
		}
		depts = append(depts, jobs.DepartmentRow{Line: len(depts) + 2, ID: 9001, Name: "导入部门", ParentID: 1})
		require.Empty(t, jobs.ValidateDepartments(depts))
		plan, err := jobs.PlanDepartments(ctx, jobs.NewMirrorView(e.pool), testCorp, depts, 5)
		require.NoError(t, err)
		require.Equal(t, 1, plan.Create)
		id, err := e.runner.EnqueueDepartments(ctx, testCorp, depts)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, e.wait(t, e.runner, id).State)
		info, err := e.runner.Show(ctx, id)
		require.NoError(t, err)
		require.Len(t, info.Results, len(depts))
		s := importSummary(t, info)
		require.Equal(t, rivertype.JobStateCompleted, e.wait(t, e.runner, s.ReconcileJobID).State)
		require.Equal(t, 1, e.count(t, `SELECT count(*) FROM wecom.departments WHERE corp_id = $1 AND id = 9001 AND name = '导入部门'`, testCorp))
	})

	t.Run("QueuesBehindARunningImportAndWakesOnTheEvent", func(t *testing.T) {
		t.Parallel()
		// Jobs last an hour unless finished by the test.
		e := setup(t, envOpts{jobs: emulator.JobsConfig{MinDuration: time.Hour, TickInterval: time.Hour}, noStart: true})
		ctx := context.Background()
		cfg := e.cfg
		cfg.PollMin, cfg.PollMax = 5*time.Millisecond, 20*time.Millisecond
		e.runner = e.start(t, cfg)
		exp, err := e.runner.EnqueueExport(ctx, testCorp, jobs.ExportUsers, 0)
		require.NoError(t, err)
		eventually(t, "the mirror to be filled", func() bool {
			e.emu.FinishJobs()
			row, err := e.runner.River().JobGet(ctx, exp)
			require.NoError(t, err)
			return row.State == rivertype.JobStateCompleted
		})

		// Someone else's import is running in WeCom.
		var csv bytes.Buffer
		var m wecom.Media
		require.NoError(t, jobs.WriteUsersCSV(&csv, nil, []jobs.UserRow{{UserID: "other", Name: "别人", Mobile: "13966660000", Departments: []int64{1}}}))
		m, err = e.client.UploadMedia(ctx, wecom.MediaFile, "other.csv", &csv)
		require.NoError(t, err)
		_, err = e.client.SyncUsers(ctx, wecom.ImportJob{MediaID: m.MediaID})
		require.NoError(t, err)

		id, err := e.runner.ImportUsers(ctx, testCorp, []jobs.UserRow{{UserID: "mine", Name: "我", Mobile: "13966660001", Departments: []int64{1}}},
			jobs.ImportOptions{Mode: jobs.ModeSync})
		require.NoError(t, err)
		phase := func() string {
			info, err := e.runner.Show(ctx, id)
			require.NoError(t, err)
			return info.Phase
		}
		eventually(t, "the import to wait for the running one", func() bool { return phase() == "waiting for another import" })
		info, err := e.runner.Show(ctx, id)
		require.NoError(t, err)
		require.Empty(t, info.Errors, "snoozed, not failed")
		require.False(t, info.Finished())

		e.emu.FinishJobs() // the other import ends
		eventually(t, "the import to be submitted", func() bool { p := phase(); return p == "submitted" || p == "running" })
		e.emu.FinishJobs()
		// The batch_job_result event (as the mirror records it) wakes the job at once.
		var wid string
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT state->>'wecom_job_id' FROM wecom.job_runs WHERE river_job_id = $1`, id).Scan(&wid))
		require.NoError(t, e.runner.WakeOnJobEvent(ctx, mirror.JobEvent{CorpID: testCorp, JobID: wid}))
		require.Equal(t, rivertype.JobStateCompleted, e.wait(t, e.runner, id).State)
		info, err = e.runner.Show(ctx, id)
		require.NoError(t, err)
		require.Equal(t, 1, importSummary(t, info).OK)
		_, ok := e.emu.Directory().User("mine")
		require.True(t, ok)
	})

	t.Run("RefusesAnInvalidFileWithEveryProblem", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}})
		ctx := context.Background()
		e.exportAll(t)
		_, err := e.runner.ImportUsers(ctx, testCorp, []jobs.UserRow{
			{UserID: "ok", Name: "好", Mobile: "13977770000", Departments: []int64{1}},
			{UserID: "-bad", Name: "坏", Mobile: "13977770001", Departments: []int64{424242}},
		}, jobs.ImportOptions{Mode: jobs.ModeSync})
		var ve *jobs.ValidationError
		require.ErrorAs(t, err, &ve)
		require.Len(t, ve.Problems, 2)
		require.True(t, strings.HasPrefix(ve.Problems[0].String(), "line 3: "))
		require.Zero(t, e.count(t, `SELECT count(*) FROM wecom.job_runs WHERE kind LIKE 'import%'`))
	})
}
