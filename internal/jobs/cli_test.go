package jobs_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/jobs"
)

func (e *env) cli(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	c := &jobs.CLI{Config: e.cfg, Corps: []string{testCorp}, Interval: 10 * time.Millisecond,
		Getenv: func(k string) string {
			if k == "WORKER_IMPORT_MAX_DELETE_SHARE" {
				return "0.05"
			}
			return ""
		}}
	var out, errOut bytes.Buffer
	err := c.Run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestCLI(t *testing.T) {
	t.Parallel()
	e := setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}, noStart: true})
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(data), 0o600))
		return p
	}

	out, _, err := e.cli(t, "export", "users")
	require.NoError(t, err)
	require.Contains(t, out, "queued job 1\n")
	require.Contains(t, out, "state=completed phase=done")
	require.Contains(t, out, `"users": {"created": 60`)

	// Validation problems: every one, with lines, and a non-zero exit.
	bad := write("bad.csv", "\ufeff姓名,帐号,手机号,所在部门\n好,good,13912340000,1\n,-bad,139,999\n")
	_, errOut, err := e.cli(t, "import", "users", "--file", bad, "--mode", "sync")
	require.ErrorIs(t, err, jobs.ErrInvalidFile)
	require.Contains(t, errOut, "bad.csv: line 3: userid:")
	require.Contains(t, errOut, "bad.csv: line 3: name:")
	require.Contains(t, errOut, "bad.csv: line 3: department:")
	require.Contains(t, errOut, "bad.csv: line 3: mobile:")

	// Dry run: the plan only.
	good := write("good.csv", "userid,name,mobile,department\ncli_user,命令行,13912340001,1\n")
	out, _, err = e.cli(t, "import", "users", "--file", good, "--mode", "sync", "--dry-run")
	require.NoError(t, err)
	require.Contains(t, out, "create 1, update 0, unchanged 0, delete 0")
	require.Contains(t, out, "  + cli_user (命令行)")
	require.NotContains(t, out, "queued")

	// Replace guarded by WORKER_IMPORT_MAX_DELETE_SHARE (5% of 60 = 3).
	out, _, err = e.cli(t, "import", "users", "--file", good, "--mode", "replace", "--dry-run")
	require.ErrorContains(t, err, "replace would delete 60 of 60 members")
	require.Contains(t, out, "delete 60")

	// The import, followed to the end, with its per-row results.
	out, _, err = e.cli(t, "import", "users", "--file", good, "--mode", "sync")
	require.NoError(t, err)
	require.Contains(t, out, "state=completed")
	id := strings.Fields(out[strings.Index(out, "queued job "):])[2]
	out, _, err = e.cli(t, "jobs", "show", id)
	require.NoError(t, err)
	require.Contains(t, out, "results: 1 rows, 0 failed")

	out, _, err = e.cli(t, "jobs", "list")
	require.NoError(t, err)
	require.Contains(t, out, "import_users")
	require.Contains(t, out, "export")
	require.Contains(t, out, "reconcile", "the import queued a reconcile")

	// Cancel and retry a detached job.
	out, _, err = e.cli(t, "reconcile", "--detach")
	require.NoError(t, err)
	rid := strings.TrimSpace(strings.TrimPrefix(out, "queued job "))
	_, err = strconv.Atoi(rid)
	require.NoError(t, err)
	out, _, err = e.cli(t, "jobs", "cancel", rid)
	require.NoError(t, err)
	require.Contains(t, out, "state=cancelled")
	out, _, err = e.cli(t, "jobs", "retry", rid)
	require.NoError(t, err)
	require.Contains(t, out, "state=available")

	_, _, err = e.cli(t, "jobs", "show", "99999")
	require.ErrorIs(t, err, jobs.ErrJobNotFound)
	_, _, err = e.cli(t, "export", "tag")
	require.ErrorContains(t, err, "tag id")
}
