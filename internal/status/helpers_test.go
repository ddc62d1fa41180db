package status_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/callback"
	"github.com/wecomsync/wecomsync/internal/mirror"
	"github.com/wecomsync/wecomsync/internal/status"
	"github.com/wecomsync/wecomsync/internal/testutil/natstest"
	"github.com/wecomsync/wecomsync/internal/testutil/pgtest"
	"github.com/wecomsync/wecomsync/internal/worker"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	corpA = "wwcorpA"
	corpB = "wwcorpB"
	corpC = "wwcorpC" // configured, nothing in the mirror or the stream
	// Secrets that must never reach the page: a dead letter's payload and a job's
	// resumable state (an export's AES key lives there).
	payloadSecret = "PAYLOAD-SECRET-b1c2"
	stateSecret   = "EXPORT-KEY-SECRET-9f8e"
)

// bundle is the handler under test and its collaborators.
type bundle struct {
	pool    *pgxpool.Pool
	js      jetstream.JetStream
	store   *mirror.Store
	handler *status.Handler
	srv     *httptest.Server
	now     time.Time
}

// setup starts a real Postgres database and an in-process JetStream with WECOM_EVENTS,
// and the status handler over them on an httptest server, configured with corps (the
// corps found in the database are listed too).
func setup(t testing.TB, corps ...string) *bundle {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.New(t)
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	_, err := js.CreateStream(ctx, callback.StreamConfig(callback.DefaultStreamOptions))
	require.NoError(t, err)
	b := &bundle{pool: pool, js: js, store: mirror.NewStore(pool, nil, slog.New(slog.DiscardHandler), mirror.Options{}),
		now: time.Now().UTC().Add(time.Minute)}
	b.handler = status.New(status.Config{DB: pool, Streams: js, Corps: corps,
		Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil)), Now: func() time.Time { return b.now }})
	b.srv = httptest.NewServer(b.handler)
	t.Cleanup(b.srv.Close)
	return b
}

// seeded are the figures the standard seed produces that the test reads back from the
// database.
type seeded struct {
	reconcileID, runningID, failedID int64
	deadID                           int64
}

// seed fills the mirror, the stream and the job tables with known figures:
//
//   - corp A: 3 users, 2 departments, 1 tag (through mirror.Store.Sync, which also writes
//     6 change rows); the relay cursor moved to the 4th change; stream messages at seqs 1-5 and
//     the lane at seq 3 (a poison event applied through Store.ApplyBatch, so one dead
//     letter); a finished reconcile that healed 3 rows and a running export at 40/100.
//   - corp B: 1 department (its change not relayed); stream messages at seqs 6-7; no lane row; a failed import and
//     a dead letter (inserted) whose reason is markup and whose payload is a secret.
//   - the shared lane (worker.DefaultLane) with nothing delivered, and another
//     application's consumer that is not a lane.
func (b *bundle) seed(t *testing.T) seeded {
	t.Helper()
	ctx := context.Background()
	var out seeded
	_, err := b.store.Sync(ctx, corpA, &source{
		depts: []*mirror.Department{{ID: 1, Name: "HQ"}, {ID: 2, Name: "R&D", ParentID: 1}},
		users: []*mirror.User{
			{UserID: "zhangsan", Name: "张三", Departments: []mirror.Membership{{DepartmentID: 1}}},
			{UserID: "lisi", Name: "李四", Departments: []mirror.Membership{{DepartmentID: 2}}},
			{UserID: "wangwu", Name: "王五", Departments: []mirror.Membership{{DepartmentID: 2}}},
		},
		tags: []*mirror.Tag{{ID: 7, Name: "oncall", UserIDs: []string{"lisi"}}},
	})
	require.NoError(t, err)
	_, err = b.store.Sync(ctx, corpB, &source{depts: []*mirror.Department{{ID: 1, Name: "Root"}}})
	require.NoError(t, err)
	b.exec(t, `UPDATE wecom.relay_cursors SET published_seq =
		(SELECT seq FROM wecom.changes WHERE corp_id = $1 ORDER BY seq OFFSET 3 LIMIT 1) WHERE corp_id = $1`, corpA)

	for i := range 5 {
		b.publish(t, corpA, fmt.Sprintf(`{"n":%d}`, i))
	}
	b.publish(t, corpB, `{"n":5}`)
	b.publish(t, corpB, `{"n":6}`)
	res, err := b.store.ApplyBatch(ctx, corpA, []mirror.Item{{StreamSeq: 3, Raw: []byte("not a bus message"),
		Subject: "wecom.events." + corpA + ".change_contact.create_user"}})
	require.NoError(t, err)
	require.Equal(t, mirror.Poison, res[0].Status)
	out.deadID = res[0].DeadLetterID
	b.exec(t, `INSERT INTO wecom.dead_letters (corp_id, stream_seq, event_id, subject, reason, payload)
		VALUES ($1, 6, 'e6', 'wecom.events.wwcorpB.change_contact.update_user', '<script>alert(1)</script> bad & worse', $2)`,
		corpB, []byte(payloadSecret))

	_, err = worker.EnsureConsumer(ctx, b.js, worker.DefaultLane, worker.DefaultOptions)
	require.NoError(t, err)
	_, err = b.js.CreateOrUpdateConsumer(ctx, callback.StreamName, jetstream.ConsumerConfig{Durable: "analytics", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)

	out.reconcileID, out.runningID, out.failedID = 101, 102, 103
	b.exec(t, `INSERT INTO wecom.job_runs (river_job_id, corp_id, kind, phase, done, total, summary, created_at, updated_at)
		VALUES ($1, $2, 'reconcile', 'done', 0, 0, $3, now() - interval '10 minutes', now() - interval '9 minutes')`,
		out.reconcileID, corpA, `{"source":"reconcile","users":{"created":1,"updated":2,"deleted":0,"unchanged":40},
			"departments":{"created":0,"updated":0,"deleted":0,"unchanged":2},"tags":{"created":0,"updated":0,"deleted":0,"unchanged":1},"seconds":1.5}`)
	b.exec(t, `INSERT INTO wecom.job_runs (river_job_id, corp_id, kind, phase, done, total, state)
		VALUES ($1, $2, 'export_users', 'downloading', 40, 100, $3)`, out.runningID, corpA, `{"parts":[{"kind":"user","key":"`+stateSecret+`"}]}`)
	b.exec(t, `INSERT INTO wecom.job_runs (river_job_id, corp_id, kind, phase, error, updated_at)
		VALUES ($1, $2, 'import_users', 'failed', 'wecom batch/replaceuser: errcode 60011: no privilege <b>', now() - interval '1 minute')`,
		out.failedID, corpB)
	return out
}

func (b *bundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

// publish stores one event of corp in WECOM_EVENTS.
func (b *bundle) publish(t *testing.T, corp, body string) {
	t.Helper()
	_, err := b.js.Publish(context.Background(), "wecom.events."+corp+".change_contact.update_user", []byte(body))
	require.NoError(t, err)
}

// get fetches path from the handler's server.
func (b *bundle) get(t *testing.T, path string) (string, http.Header) {
	t.Helper()
	resp, err := http.Get(b.srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
	return string(body), resp.Header
}

// snapshot fetches and decodes /status.json.
func (b *bundle) snapshot(t *testing.T) *status.Snapshot {
	t.Helper()
	body, hdr := b.get(t, "/status.json")
	require.Equal(t, "application/json", hdr.Get("Content-Type"))
	var s status.Snapshot
	require.NoError(t, json.Unmarshal([]byte(body), &s))
	return &s
}

func corpOf(t *testing.T, s *status.Snapshot, id string) status.Corp {
	t.Helper()
	i := slices.IndexFunc(s.Corps, func(c status.Corp) bool { return c.CorpID == id })
	require.GreaterOrEqual(t, i, 0, "corp %s not in %+v", id, s.Corps)
	return s.Corps[i]
}

// truth is what the database and the stream say, read independently of the package.
type truth struct {
	users, departments, tags int64
	appliedSeq               int64
	appliedAt                time.Time
	publishedSeq, maxSeq     int64
	unpublished              int64
	dead                     int64
}

func (b *bundle) truth(t *testing.T, corp string) truth {
	t.Helper()
	ctx := context.Background()
	var x truth
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM wecom.users WHERE corp_id = $1),
		(SELECT count(*) FROM wecom.departments WHERE corp_id = $1),
		(SELECT count(*) FROM wecom.tags WHERE corp_id = $1),
		coalesce((SELECT last_stream_seq FROM wecom.lanes WHERE corp_id = $1), 0),
		coalesce((SELECT updated_at FROM wecom.lanes WHERE corp_id = $1), 'epoch'),
		coalesce((SELECT published_seq FROM wecom.relay_cursors WHERE corp_id = $1), 0),
		coalesce((SELECT max(seq) FROM wecom.changes WHERE corp_id = $1), 0),
		(SELECT count(*) FROM wecom.changes WHERE corp_id = $1 AND seq >
			coalesce((SELECT published_seq FROM wecom.relay_cursors WHERE corp_id = $1), 0)),
		(SELECT count(*) FROM wecom.dead_letters WHERE corp_id = $1 AND replayed_at IS NULL)`, corp).
		Scan(&x.users, &x.departments, &x.tags, &x.appliedSeq, &x.appliedAt, &x.publishedSeq, &x.maxSeq, &x.unpublished, &x.dead))
	x.appliedAt = x.appliedAt.UTC()
	return x
}

// cell returns the (unescaped) text of the element with id (as html/template or Chromium writes it).
func cell(t *testing.T, page, id string) string {
	t.Helper()
	re := regexp.MustCompile(`<[a-z0-9]+[^>]*\sid="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`)
	m := re.FindStringSubmatch(page)
	require.NotNil(t, m, "no element with id %q in the page", id)
	return strings.TrimSpace(html.UnescapeString(m[1]))
}

// source is a SyncSource over slices.
type source struct {
	depts []*mirror.Department
	users []*mirror.User
	tags  []*mirror.Tag
}

func (s *source) Departments(context.Context) iter.Seq2[*mirror.Department, error] {
	return seq2(s.depts)
}
func (s *source) Users(context.Context) iter.Seq2[*mirror.User, error] { return seq2(s.users) }
func (s *source) Tags(context.Context) iter.Seq2[*mirror.Tag, error]   { return seq2(s.tags) }

func seq2[T any](xs []T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for _, x := range xs {
			if !yield(x, nil) {
				return
			}
		}
	}
}

// requirePageMatches checks the figures of an HTML page (ours or Chromium's DOM) against
// the database.
func requirePageMatches(t *testing.T, b *bundle, html string, ids seeded) {
	t.Helper()
	for _, corp := range []string{corpA, corpB, corpC} {
		x := b.truth(t, corp)
		require.Equal(t, fmt.Sprint(x.users), cell(t, html, "corp-"+corp+"-users"), corp)
		require.Equal(t, fmt.Sprint(x.departments), cell(t, html, "corp-"+corp+"-departments"), corp)
		require.Equal(t, fmt.Sprint(x.tags), cell(t, html, "corp-"+corp+"-tags"), corp)
		require.Equal(t, fmt.Sprint(x.publishedSeq), cell(t, html, "corp-"+corp+"-relay-published"), corp)
		require.Equal(t, fmt.Sprint(x.maxSeq), cell(t, html, "corp-"+corp+"-relay-max"), corp)
		require.Equal(t, fmt.Sprint(x.dead), cell(t, html, "corp-"+corp+"-dead"), corp)
	}
	a := b.truth(t, corpA)
	require.Equal(t, fmt.Sprint(a.appliedSeq), cell(t, html, "corp-"+corpA+"-applied-seq"))
	require.Contains(t, html, a.appliedAt.Format("2006-01-02 15:04:05Z"))
	require.Equal(t, "none yet", cell(t, html, "corp-"+corpB+"-applied-seq"))
	require.Equal(t, "5", cell(t, html, "corp-"+corpA+"-newest-seq"))
	require.Equal(t, "7", cell(t, html, "corp-"+corpB+"-newest-seq"))
	require.Equal(t, "none", cell(t, html, "corp-"+corpC+"-newest-seq"))
	require.Equal(t, "≤ 2 behind", cell(t, html, "corp-"+corpA+"-lag"))
	require.Equal(t, "≤ 7 behind", cell(t, html, "corp-"+corpB+"-lag"))
	require.Equal(t, "up to date", cell(t, html, "corp-"+corpC+"-lag"))
	require.Equal(t, fmt.Sprintf("%d unpublished", a.unpublished), cell(t, html, "corp-"+corpA+"-relay-behind"))
	require.Equal(t, fmt.Sprintf("%d unpublished", b.truth(t, corpB).unpublished), cell(t, html, "corp-"+corpB+"-relay-behind"))
	require.Equal(t, "9m ago", cell(t, html, "corp-"+corpA+"-reconcile-at"))
	require.Equal(t, "3 healed: users +1 ~2 −0", cell(t, html, "corp-"+corpA+"-drift"))
	require.Equal(t, "7", cell(t, html, "lane-wecomsync-mirror-pending"))
	require.NotContains(t, html, `id="lane-analytics"`, "another application's consumer is not a lane")
	require.Equal(t, "7", cell(t, html, "stream-last-seq"))
	require.Equal(t, "downloading", cell(t, html, fmt.Sprintf("job-%d-phase", ids.runningID)))
	require.Equal(t, "40 / 100", cell(t, html, fmt.Sprintf("job-%d-progress", ids.runningID)))
	require.Equal(t, "done", cell(t, html, fmt.Sprintf("job-%d-phase", ids.reconcileID)))
	require.Equal(t, "failed", cell(t, html, fmt.Sprintf("job-%d-phase", ids.failedID)))
	require.Equal(t, "2", cell(t, html, "dead-pending"))
	require.NotEmpty(t, cell(t, html, fmt.Sprintf("dead-%d-reason", ids.deadID)))
	require.NotContains(t, html, payloadSecret)
	require.NotContains(t, html, stateSecret)
}

// tWriter sends log lines to the test's log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
