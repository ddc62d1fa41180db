package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
)

// TestRunJobCommands drives the job commands through run(): a reconcile healing what
// callbacks missed, an import with a validation failure, a dry run and a real import,
// and `worker jobs` list/show/cancel/retry.
func TestRunJobCommands(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{seedUsers: 20})
	env := map[string]string{"WORKER_JOBS_DIR": t.TempDir()}

	require.NoError(t, w.emu.SetFaults(emulator.Faults{CallbackDropRate: 1}))
	w.must(t, "user/create", map[string]any{"userid": "silent", "name": "静默", "department": []int{1}, "email": "s@x.example"})
	out, err := w.cmd(t, env, "reconcile")
	require.NoError(t, err)
	require.Contains(t, out, "reconcile corp="+corpID+" state=completed phase=done")
	require.Contains(t, out, `"users": {"created": 21`)
	w.requireConverged(t)

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	require.NoError(t, os.WriteFile(bad, []byte("姓名,帐号,手机号,所在部门\n,x y,1,9999\n"), 0o600))
	_, err = w.cmd(t, env, "import", "users", "--file", bad, "--mode", "sync")
	require.ErrorContains(t, err, "import file has 4 problem(s)")

	good := filepath.Join(dir, "good.csv")
	require.NoError(t, os.WriteFile(good, []byte("userid,name,email,department\ncsv_user,表格,csv@x.example,1\n"), 0o600))
	out, err = w.cmd(t, env, "import", "users", "--file", good, "--mode", "sync", "--dry-run")
	require.NoError(t, err)
	require.Contains(t, out, "create 1, update 0, unchanged 0, delete 0")
	out, err = w.cmd(t, env, "import", "users", "--file", good, "--mode", "replace")
	require.ErrorContains(t, err, "replace would delete 21 of 21 members")
	out, err = w.cmd(t, env, "import", "users", "--file", good, "--mode", "sync")
	require.NoError(t, err)
	require.Contains(t, out, "import_users corp="+corpID+" state=completed")
	id := regexp.MustCompile(`queued job (\d+)`).FindStringSubmatch(out)[1]
	out, err = w.cmd(t, env, "jobs", "show", id)
	require.NoError(t, err)
	require.Contains(t, out, "results: 1 rows, 0 failed")
	_, ok := w.emu.Directory().User("csv_user")
	require.True(t, ok)

	out, err = w.cmd(t, env, "jobs", "list")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^\d+ +reconcile +`+corpID+` +available`, out, "the import queued a reconcile for `worker run`")
	rid := regexp.MustCompile(`(?m)^(\d+) +reconcile +` + corpID + ` +available`).FindStringSubmatch(out)[1]
	out, err = w.cmd(t, env, "jobs", "cancel", rid)
	require.NoError(t, err)
	require.Contains(t, out, "state=cancelled")
	out, err = w.cmd(t, env, "jobs", "retry", rid)
	require.NoError(t, err)
	require.Contains(t, out, "state=available")

	// `worker run` works the queued reconcile.
	p := w.startWorker(t, env)
	eventually := func() bool {
		out, err := w.cmd(t, env, "jobs", "show", rid)
		require.NoError(t, err)
		return regexp.MustCompile(`state=completed`).MatchString(out)
	}
	for !eventually() {
		select {
		case err := <-p.done:
			t.Fatalf("worker exited: %v", err)
		case <-time.After(20 * time.Millisecond): // polling interval
		}
	}
	p.stop(t)
}
