package jobs_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
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

// mergeTimer records when a job's merge (decrypt + parse + COPY + set-based merge) starts.
type mergeTimer struct {
	mu    sync.Mutex
	start time.Time
}

func (m *mergeTimer) hook(_ context.Context, _ int64, point string) error {
	if point == "merging" {
		m.mu.Lock()
		m.start = time.Now()
		m.mu.Unlock()
	}
	return nil
}

func (m *mergeTimer) since() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return time.Since(m.start)
}

// benchExport runs one users export of the emulator's org end to end (submit → mirror
// merged) and returns the whole and the ingest-stage durations.
func benchExport(b *testing.B, e *env, r *jobs.Runner, mt *mergeTimer) (total, ingest time.Duration) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	id, err := r.EnqueueExport(ctx, testCorp, jobs.ExportUsers, 0)
	require.NoError(b, err)
	row := e.wait(b, r, id)
	require.Equal(b, rivertype.JobStateCompleted, row.State, "%v", row.Errors)
	return time.Since(start), mt.since()
}

// bareCopy copies n member rows shaped like the merge's staging rows with pgx CopyFrom
// into a temporary table: the floor the ingest stage is compared with.
func bareCopy(b *testing.B, e *env, n int) time.Duration {
	b.Helper()
	ctx := context.Background()
	rows, err := e.pool.Query(ctx, `SELECT userid, name, alias, position, mobile, email, biz_mail, gender, status,
		main_department, avatar, telephone, address, open_userid, extattr, unknown_fields, raw FROM wecom.users WHERE corp_id = $1`, testCorp)
	require.NoError(b, err)
	var data [][]any
	for rows.Next() {
		v, err := rows.Values()
		require.NoError(b, err)
		data = append(data, v)
	}
	require.NoError(b, rows.Err())
	require.Len(b, data, n)
	tx, err := e.pool.Begin(ctx)
	require.NoError(b, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = tx.Exec(ctx, `CREATE TEMP TABLE bare (userid text PRIMARY KEY, name text, alias text, position text, mobile text,
		email text, biz_mail text, gender smallint, status smallint, main_department bigint, avatar text, telephone text,
		address text, open_userid text, extattr jsonb, unknown text[], raw jsonb) ON COMMIT DROP`)
	require.NoError(b, err)
	start := time.Now()
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"bare"}, []string{"userid", "name", "alias", "position", "mobile", "email",
		"biz_mail", "gender", "status", "main_department", "avatar", "telephone", "address", "open_userid", "extattr",
		"unknown", "raw"}, pgx.CopyFromRows(data))
	require.NoError(b, err)
	d := time.Since(start)
	require.NoError(b, tx.Commit(ctx))
	return d
}

// BenchmarkExportIngest100k: a 100,000-member org exported, downloaded (10 blocks),
// decrypted, parsed, staged and merged into an empty mirror, then again into a full one
// (no changes); the ingest stage is compared with a bare CopyFrom of the same rows.
func BenchmarkExportIngest100k(b *testing.B) {
	const n = 100_000
	mt := &mergeTimer{}
	e := setup(b, envOpts{seed: n, blockSize: 10_000, jobs: emulator.JobsConfig{Immediate: true}, hook: mt.hook})
	for i := 0; i < b.N; i++ {
		_, err := e.pool.Exec(context.Background(), `DELETE FROM wecom.users; DELETE FROM wecom.user_departments;
			DELETE FROM wecom.departments; DELETE FROM wecom.changes`)
		require.NoError(b, err)
		b.ResetTimer()
		total, ingest := benchExport(b, e, e.runner, mt)
		b.StopTimer()
		again, ingestAgain := benchExport(b, e, e.runner, mt)
		bare := bareCopy(b, e, n)
		b.ReportMetric(total.Seconds(), "s_end_to_end")
		b.ReportMetric(float64(n)/ingest.Seconds(), "rows/s_ingest")
		b.ReportMetric(float64(n)/bare.Seconds(), "rows/s_bare_copy")
		b.ReportMetric(bare.Seconds()/ingest.Seconds(), "ingest/bare_ratio")
		b.ReportMetric(again.Seconds(), "s_end_to_end_unchanged")
		b.ReportMetric(float64(n)/ingestAgain.Seconds(), "rows/s_ingest_unchanged")
	}
}

// BenchmarkExportIngest1M needs WECOMSYNC_BENCH_1M=1 (make bench-1m): a 1,000,000-member
// org served by a separate wecom-emulator process (so its memory is not counted), merged
// end to end; it reports this process's peak RSS (VmHWM).
func BenchmarkExportIngest1M(b *testing.B) {
	if os.Getenv("WECOMSYNC_BENCH_1M") == "" {
		b.Skip("set WECOMSYNC_BENCH_1M=1 to run the 1,000,000-member ingest benchmark")
	}
	const n = 1_000_000
	dir := b.TempDir()
	bin := filepath.Join(dir, "wecom-emulator")
	build := exec.Command("go", "build", "-o", bin, "github.com/wecomsync/wecomsync/cmd/wecom-emulator")
	build.Stderr = os.Stderr
	require.NoError(b, build.Run())
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-corp-id", testCorp, "-contact-secret", testSecret,
		"-seed-users", strconv.Itoa(n), "-job-immediate", "-rate-limit", "0")
	out, err := cmd.StdoutPipe()
	require.NoError(b, err)
	cmd.Stderr = os.Stderr
	require.NoError(b, cmd.Start())
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(b, err)
	addr := strings.TrimPrefix(strings.Fields(line)[2], "addr=")

	mt := &mergeTimer{}
	e := setup(b, envOpts{noStart: true})
	e.waitFor = 20 * time.Minute
	e.url = "http://" + addr
	e.client = e.newClient(b, testSecret)
	e.cfg.Clients = map[string]jobs.WeCom{testCorp: e.client}
	e.cfg.Hook = mt.hook
	e.cfg.ExportBlockSize = wecom.MaxExportBlockSize / 4
	r := e.start(b, e.cfg)
	runtime.GC()
	b.ResetTimer()
	total, ingest := benchExport(b, e, r, mt)
	b.StopTimer()
	b.ReportMetric(total.Seconds(), "s_end_to_end")
	b.ReportMetric(float64(n)/ingest.Seconds(), "rows/s_ingest")
	b.ReportMetric(float64(vmHWM(b))/(1<<20), "MiB_peak_rss")
	require.Equal(b, n, e.mirrorUsers(b))
}

// vmHWM returns the process's peak resident set size in bytes (/proc/self/status).
func vmHWM(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/status")
	require.NoError(b, err)
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			require.NoError(b, err)
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// BenchmarkValidate50k: parsing and validating a 50,000-row member CSV against a mirror
// of 50,000 members (all rows updates of existing members).
func BenchmarkValidate50k(b *testing.B) {
	const n = 50_000
	e := setup(b, envOpts{seed: n, jobs: emulator.JobsConfig{Immediate: true}})
	e.exportAll(b)
	ctx := context.Background()
	var buf bytes.Buffer
	buf.WriteString("userid,name,mobile,email,department,position\n")
	rows, err := e.pool.Query(ctx, `SELECT u.userid, u.name, coalesce(u.mobile, ''), coalesce(u.email, ''),
		(SELECT string_agg(d.department_id::text, ';') FROM wecom.user_departments d WHERE d.corp_id = u.corp_id AND d.userid = u.userid)
		FROM wecom.users u WHERE u.corp_id = $1`, testCorp)
	require.NoError(b, err)
	var id, name, mobile, email, depts string
	_, err = pgx.ForEachRow(rows, []any{&id, &name, &mobile, &email, &depts}, func() error {
		fmt.Fprintf(&buf, "%s,%s,%s,%s,%s,新职位\n", id, name, mobile, email, depts)
		return nil
	})
	require.NoError(b, err)
	data := buf.Bytes()
	view := jobs.NewMirrorView(e.pool)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, probs, err := jobs.ParseUsersCSV(data)
		require.NoError(b, err)
		require.Empty(b, probs)
		probs, err = jobs.ValidateUsers(ctx, view, testCorp, f, jobs.UserCheckOptions{})
		require.NoError(b, err)
		require.Empty(b, probs)
		require.Len(b, f.Rows, n)
	}
}

var _ = mirror.SourceSync
