package jobs_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/jobs"
)

func ptr[T any](v T) *T { return &v }

// editBehindBack changes the emulator's directory with the contacts-sync secret (so no
// callback reaches anyone): one member created, one renamed, one deleted.
func editBehindBack(t *testing.T, e *env) (created, renamed, deleted string) {
	t.Helper()
	ctx := context.Background()
	ids, _, err := e.emu.Directory().ListIDs("", 1000)
	require.NoError(t, err)
	var distinct []string
	for _, x := range ids {
		if len(distinct) == 0 || distinct[len(distinct)-1] != x.UserID {
			distinct = append(distinct, x.UserID)
		}
	}
	require.GreaterOrEqual(t, len(distinct), 3)
	renamed, deleted = distinct[0], distinct[len(distinct)-1]
	_, err = e.emu.Directory().CreateUser(emulator.UserInput{UserID: "drift_new", Name: ptr("新成员"), Mobile: ptr("13900000001"), Department: &[]int{1}})
	require.NoError(t, err)
	_, err = e.emu.Directory().UpdateUser(emulator.UserInput{UserID: renamed, Name: ptr("改名了")})
	require.NoError(t, err)
	_, err = e.emu.Directory().DeleteUsers(deleted)
	require.NoError(t, err)
	_ = ctx
	return "drift_new", renamed, deleted
}

func summaryOf(t *testing.T, info *jobs.JobInfo) jobs.ExportSummary {
	t.Helper()
	var s jobs.ExportSummary
	require.NoError(t, json.Unmarshal(info.Summary, &s))
	return s
}

func TestExport(t *testing.T) {
	t.Parallel()

	t.Run("UsersExportFillsTheMirrorThenMergesInsertsUpdatesAndDeletes", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}})
		ctx := context.Background()
		e.exportAll(t)
		require.Equal(t, e.emu.Directory().UserCount(), e.mirrorUsers(t))
		require.Equal(t, e.emu.Directory().UserCount(), e.count(t,
			`SELECT count(*) FROM wecom.changes WHERE corp_id = $1 AND entity = 'user' AND op = 'created' AND source = 'export'`, testCorp))

		created, renamed, deleted := editBehindBack(t, e)
		id, err := e.runner.EnqueueExport(ctx, testCorp, jobs.ExportUsers, 0)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, e.wait(t, e.runner, id).State)
		info, err := e.runner.Show(ctx, id)
		require.NoError(t, err)
		s := summaryOf(t, info)
		require.Equal(t, 1, s.Users.Created)
		require.Equal(t, 1, s.Users.Updated)
		require.Equal(t, 1, s.Users.Deleted)
		require.Equal(t, e.emu.Directory().UserCount(), e.mirrorUsers(t))

		var name string
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT name FROM wecom.users WHERE corp_id = $1 AND userid = $2`, testCorp, renamed).Scan(&name))
		require.Equal(t, "改名了", name)
		for _, c := range []struct{ key, op string }{{created, "created"}, {renamed, "updated"}, {deleted, "deleted"}} {
			require.Equal(t, 1, e.count(t, `SELECT count(*) FROM wecom.changes WHERE corp_id = $1 AND entity = 'user'
				AND key = $2 AND op = $3 AND source = 'export'`, testCorp, c.key, c.op), c)
		}
		// The export key and files are gone once the job is done.
		require.Equal(t, 0, e.count(t, `SELECT count(*) FROM wecom.job_runs WHERE river_job_id = $1 AND state <> '{}'`, id))
	})

	t.Run("SimpleUsersExportKeepsFieldsItDoesNotCarry", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}})
		ctx := context.Background()
		e.exportAll(t)
		var mobilesBefore int
		mobilesBefore = e.count(t, `SELECT count(*) FROM wecom.users WHERE corp_id = $1 AND mobile <> ''`, testCorp)
		require.Positive(t, mobilesBefore)
		_, renamed, _ := editBehindBack(t, e)
		id, err := e.runner.EnqueueExport(ctx, testCorp, jobs.ExportSimpleUsers, 0)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, e.wait(t, e.runner, id).State)
		info, err := e.runner.Show(ctx, id)
		require.NoError(t, err)
		s := summaryOf(t, info)
		require.Equal(t, 1, s.Users.Created)
		require.Equal(t, 1, s.Users.Updated)
		require.Equal(t, 1, s.Users.Deleted)
		// Mobiles are not in a simple_user export: the mirror keeps them.
		require.Equal(t, mobilesBefore-1, e.count(t, `SELECT count(*) FROM wecom.users WHERE corp_id = $1 AND mobile <> ''
			AND userid <> 'drift_new'`, testCorp))
		require.Equal(t, 1, e.count(t, `SELECT count(*) FROM wecom.users WHERE corp_id = $1 AND userid = $2 AND name = '改名了'`, testCorp, renamed))
	})

	t.Run("DepartmentsExportMergesDepartmentsAndKeepsMembers", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}})
		ctx := context.Background()
		e.exportAll(t)
		users := e.mirrorUsers(t)
		memberships := e.count(t, `SELECT count(*) FROM wecom.user_departments WHERE corp_id = $1`, testCorp)
		_, err := e.emu.Directory().Update(func(tx *emulator.Tx) error {
			_, err := tx.CreateDepartment(emulator.DepartmentInput{Name: ptr("新部门"), ParentID: ptr(emulator.FlexInt(1))})
			return err
		})
		require.NoError(t, err)
		id, err := e.runner.EnqueueExport(ctx, testCorp, jobs.ExportDepartments, 0)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, e.wait(t, e.runner, id).State)
		info, err := e.runner.Show(ctx, id)
		require.NoError(t, err)
		s := summaryOf(t, info)
		require.Equal(t, 1, s.Departments.Created)
		require.Zero(t, s.Users.Created+s.Users.Updated+s.Users.Deleted)
		require.Equal(t, users, e.mirrorUsers(t))
		require.Equal(t, memberships, e.count(t, `SELECT count(*) FROM wecom.user_departments WHERE corp_id = $1`, testCorp))
		require.Equal(t, 1, e.count(t, `SELECT count(*) FROM wecom.departments WHERE corp_id = $1 AND name = '新部门'`, testCorp))
	})

	t.Run("TagExportReplacesOneTag", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}})
		ctx := context.Background()
		e.exportAll(t)
		tags := e.emu.Directory().Tags()
		require.NotEmpty(t, tags, "the seeded org has tags")
		tag := tags[0]
		id, err := e.runner.EnqueueExport(ctx, testCorp, jobs.ExportTag, tag.TagID)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, e.wait(t, e.runner, id).State)
		full, _ := e.emu.Directory().Tag(tag.TagID)
		require.Equal(t, 1, e.count(t, `SELECT count(*) FROM wecom.tags WHERE corp_id = $1 AND tag_id = $2 AND name = $3`, testCorp, tag.TagID, full.TagName))
		require.Equal(t, len(full.Users), e.count(t, `SELECT count(*) FROM wecom.tag_users WHERE corp_id = $1 AND tag_id = $2`, testCorp, tag.TagID))
		require.Equal(t, 1, e.count(t, `SELECT count(*) FROM wecom.changes WHERE corp_id = $1 AND entity = 'tag' AND source = 'export'`, testCorp))
		// Other tags are untouched (not in the mirror before, not created by this export).
		require.Equal(t, 1, e.count(t, `SELECT count(*) FROM wecom.tags WHERE corp_id = $1`, testCorp))
	})
}

func TestReconcile(t *testing.T) {
	t.Parallel()

	t.Run("HealsDriftOnBothSidesAndCountsIt", func(t *testing.T) {
		t.Parallel()
		reg := prometheus.NewRegistry()
		e := setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}, noStart: true})
		e.cfg.Registerer = reg
		e.runner = e.start(t, e.cfg)
		ctx := context.Background()
		e.exportAll(t)
		// Drift in WeCom, with no callbacks...
		_, renamed, deleted := editBehindBack(t, e)
		// ...and in the mirror behind its back.
		var victim, tampered string
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT min(userid), max(userid) FROM wecom.users WHERE corp_id = $1
			AND userid NOT IN ($2, $3)`, testCorp, renamed, deleted).Scan(&victim, &tampered))
		_, err := e.pool.Exec(ctx, `DELETE FROM wecom.users WHERE corp_id = $1 AND userid = $2`, testCorp, victim)
		require.NoError(t, err)
		_, err = e.pool.Exec(ctx, `UPDATE wecom.users SET position = 'tampered' WHERE corp_id = $1 AND userid = $2`, testCorp, tampered)
		require.NoError(t, err)

		id, err := e.runner.EnqueueReconcile(ctx, testCorp)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, e.wait(t, e.runner, id).State)
		info, err := e.runner.Show(ctx, id)
		require.NoError(t, err)
		s := summaryOf(t, info)
		require.Equal(t, 2, s.Users.Created, "the new member and the one deleted from the mirror")
		require.Equal(t, 2, s.Users.Updated, "the renamed and the tampered member")
		require.Equal(t, 1, s.Users.Deleted)
		require.Positive(t, s.Tags.Created, "tags come from tag/list + tag/get")
		require.Equal(t, e.emu.Directory().UserCount(), e.mirrorUsers(t))
		require.Equal(t, 0, e.count(t, `SELECT count(*) FROM wecom.users WHERE corp_id = $1 AND userid = $2`, testCorp, deleted))
		require.Equal(t, 0, e.count(t, `SELECT count(*) FROM wecom.users WHERE corp_id = $1 AND position = 'tampered'`, testCorp))
		m, err := jobs.NewMetrics(reg)
		require.NoError(t, err)
		require.Equal(t, 2.0, testutil.ToFloat64(m.Drift.WithLabelValues(testCorp, "user", "created")))
		require.Equal(t, 1.0, testutil.ToFloat64(m.Drift.WithLabelValues(testCorp, "user", "deleted")))

		// A second reconcile finds nothing.
		id, err = e.runner.EnqueueReconcile(ctx, testCorp)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, e.wait(t, e.runner, id).State)
		info, err = e.runner.Show(ctx, id)
		require.NoError(t, err)
		s = summaryOf(t, info)
		require.Zero(t, s.Users.Created+s.Users.Updated+s.Users.Deleted+s.Departments.Created+s.Departments.Updated+s.Departments.Deleted)
	})

	t.Run("FallsBackToListAPIsWhenExportsAreRefused", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}, newIP: true})
		ctx := context.Background()
		id, err := e.runner.EnqueueReconcile(ctx, testCorp)
		require.NoError(t, err)
		row := e.wait(t, e.runner, id)
		require.Equal(t, rivertype.JobStateCompleted, row.State, "%v", row.Errors)
		info, err := e.runner.Show(ctx, id)
		require.NoError(t, err)
		require.True(t, summaryOf(t, info).Fallback)
		require.Equal(t, e.emu.Directory().UserCount(), e.mirrorUsers(t))
		require.Equal(t, e.emu.Directory().UserCount(), e.count(t,
			`SELECT count(*) FROM wecom.changes WHERE corp_id = $1 AND entity = 'user' AND source = 'reconcile'`, testCorp))
	})

	t.Run("OneAtATimePerCorp", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOpts{noStart: true})
		r, err := jobs.New(e.cfg)
		require.NoError(t, err)
		ctx := context.Background()
		a, err := r.EnqueueReconcile(ctx, testCorp)
		require.NoError(t, err)
		b, err := r.EnqueueReconcile(ctx, testCorp)
		require.NoError(t, err)
		require.Equal(t, a, b, "a queued reconcile absorbs the second")
		c, err := r.EnqueueReconcile(ctx, "wwother")
		require.NoError(t, err)
		require.NotEqual(t, a, c)
	})
}
