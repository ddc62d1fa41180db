package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/callback"
	"github.com/wecomsync/wecomsync/internal/crypto"
	"github.com/wecomsync/wecomsync/internal/db"
	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/tenant"
	"github.com/wecomsync/wecomsync/internal/testutil/natstest"
	"github.com/wecomsync/wecomsync/internal/testutil/pgtest"
	"github.com/wecomsync/wecomsync/internal/worker"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	corpID        = "wwworkere2e0001"
	contactSecret = "contact-secret"
	consoleSecret = "console-secret"
	cbToken       = "e2eToken"
)

// world is a whole deployment for a test: the WeCom emulator calling back a real callback
// receiver (internal/callback on an httptest server) that stores into an in-process
// JetStream, a migrated Postgres database, and the worker's environment.
type world struct {
	t      *testing.T
	ns     *natstest.Server
	js     jetstream.JetStream
	emu    *emulator.Server
	api    string // the emulator's base URL
	dbURL  string
	pool   *pgxpool.Pool
	env    map[string]string
	token  string // console-secret access token
	client *http.Client
}

type worldOptions struct {
	seedUsers int
	minimal   bool
	faults    emulator.Faults
	// wrapReceiver, when set, wraps the callback receiver's handler (fault injection).
	wrapReceiver func(http.Handler) http.Handler
}

func newWorld(t *testing.T, o worldOptions) *world {
	t.Helper()
	w := &world{t: t, ns: natstest.Start(t), client: &http.Client{Timeout: 30 * time.Second}}
	_, w.js = w.ns.Connect(t)
	ctx := context.Background()
	require.NoError(t, callback.EnsureStream(ctx, w.js, callback.DefaultStreamOptions))

	aesKey := crypto.NewKey()
	h, err := callback.NewHandler([]tenant.Tenant{{Name: tenant.DefaultName, CorpID: corpID, Token: cbToken, AESKey: aesKey}},
		w.js, slog.New(slog.DiscardHandler), callback.NewMetrics(prometheus.NewRegistry()), callback.Options{})
	require.NoError(t, err)
	mux := http.NewServeMux()
	var handler http.Handler = h
	if o.wrapReceiver != nil {
		handler = o.wrapReceiver(handler)
	}
	mux.Handle("/callback", handler)
	receiver := httptest.NewServer(mux)
	t.Cleanup(receiver.Close)

	w.emu, err = emulator.New(emulator.Config{
		Addr: "127.0.0.1:0", CorpID: corpID, ContactSecret: contactSecret, ConsoleSecret: consoleSecret,
		CallbackURL: receiver.URL + "/callback", CallbackToken: cbToken, CallbackAESKey: aesKey,
		CallbackMinimal: o.minimal, CallbackRetryDelay: 20 * time.Millisecond,
		SeedUsers: o.seedUsers, SeedRandom: 7, Faults: o.faults,
		RateLimitPerMinute: -1, ConcurrencyLimit: -1,
	})
	require.NoError(t, err)
	require.NoError(t, w.emu.Start(ctx))
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.emu.Close(cctx)
	})
	w.api = "http://" + w.emu.Addr()

	w.dbURL = pgtest.NewDatabase(t)
	w.pool, err = db.Open(ctx, w.dbURL)
	require.NoError(t, err)
	t.Cleanup(w.pool.Close)
	w.env = map[string]string{
		"DATABASE_URL": w.dbURL, "NATS_URL": w.ns.URL, "WECOM_CORP_ID": corpID,
		"WECOM_CONTACT_SECRET": contactSecret, "WECOM_API_URL": w.api,
		"WORKER_ADMIN_ADDR": "127.0.0.1:0", "LOG_LEVEL": "warn",
		"WORKER_MAX_WAIT": "20ms", "WORKER_ACK_WAIT": "2s", "WORKER_PINNED_TTL": "500ms",
		"WORKER_RETRY_BACKOFF": "50ms,200ms",
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	w.call(t, "gettoken?corpid="+corpID+"&corpsecret="+consoleSecret, nil, &tok)
	w.token = tok.AccessToken
	return w
}

func (w *world) getenv(k string) string { return w.env[k] }

// call invokes an emulator API (path relative to /cgi-bin/, with its query) with the
// console token (an administrator's edit, called back) and decodes the answer into out.
// It returns the errcode.
func (w *world) call(t *testing.T, path string, body any, out any) int {
	t.Helper()
	u := w.api + "/cgi-bin/" + path
	if w.token != "" {
		u += map[bool]string{true: "&", false: "?"}[strings.Contains(path, "?")] + "access_token=" + url.QueryEscape(w.token)
	}
	var resp *http.Response
	var err error
	if body == nil {
		resp, err = w.client.Get(u)
	} else {
		b, merr := json.Marshal(body)
		require.NoError(t, merr)
		resp, err = w.client.Post(u, "application/json", bytes.NewReader(b))
	}
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var base struct {
		ErrCode int `json:"errcode"`
	}
	require.NoError(t, json.Unmarshal(raw, &base), string(raw))
	if out != nil {
		require.NoError(t, json.Unmarshal(raw, out))
	}
	return base.ErrCode
}

// must is call requiring errcode 0.
func (w *world) must(t *testing.T, path string, body any) {
	t.Helper()
	require.Zero(t, w.call(t, path, body, nil), "%s %v", path, body)
}

// proc is a `worker run` started through run().
type proc struct {
	admin  string
	cancel context.CancelFunc
	done   chan error
}

// startWorker runs `worker run` with the world's environment plus extra and waits for
// its ready line.
func (w *world) startWorker(t *testing.T, extra map[string]string) *proc {
	t.Helper()
	env := maps(w.env, extra)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	p := &proc{cancel: cancel, done: make(chan error, 1)}
	go func() {
		p.done <- run(ctx, []string{"worker", "run"}, func(k string) string { return env[k] }, pw, testLog{t})
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err, "worker run exited before printing its ready line")
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "worker ready admin=")
	require.True(t, ok, "unexpected ready line %q", line)
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	p.admin = "http://" + addr
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

// stop cancels the worker and requires a clean return.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cancel()
	select {
	case err := <-p.done:
		require.NoError(t, err, "worker run returns cleanly on cancel")
		p.done <- nil // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("worker run did not return within 30s of cancel")
	}
}

// testLog forwards the worker's JSON log lines of warnings and errors to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("worker: %s", bytes.TrimSpace(p))
	return len(p), nil
}

// cmd runs a one-shot subcommand and returns its stdout.
func (w *world) cmd(t *testing.T, extra map[string]string, args ...string) (string, error) {
	t.Helper()
	env := maps(w.env, extra)
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"worker"}, args...), func(k string) string { return env[k] }, &out, io.Discard)
	return out.String(), err
}

func maps(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// waitDrained waits until the emulator delivered every callback and the lane consumer
// has delivered and settled everything in the stream.
func (w *world) waitDrained(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { return w.emu.CallbackStats().Pending == 0 }, 120*time.Second, 10*time.Millisecond,
		"the emulator did not deliver its callbacks")
	cons, err := w.js.Consumer(context.Background(), callback.StreamName, worker.DefaultLane.Name)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, 120*time.Second, 20*time.Millisecond, "the lane did not drain")
}

// dir is a directory in a comparable shape, built from the emulator's /admin/state or
// from the mirror's tables.
type dir struct {
	Users       map[string]dirUser
	Departments map[int64]dirDept
	// Tags maps tag id to its sorted members ("u:<userid>" and "d:<id>"); tags without
	// members are left out (tag creation and deletion are not called back).
	Tags map[int64][]string
}

type dirUser struct {
	Name, Alias, Position, Mobile, Email string
	Gender, Status                       int
	MainDepartment                       int64
	// Departments are "<id>/leader=<bool>" sorted.
	Departments []string
}

type dirDept struct {
	Name     string
	ParentID int64
}

func (w *world) emulatorDir(t *testing.T) dir {
	t.Helper()
	resp, err := w.client.Get(w.api + "/admin/state")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st emulator.State
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	d := dir{Users: map[string]dirUser{}, Departments: map[int64]dirDept{}, Tags: map[int64][]string{}}
	for _, u := range st.Users {
		gender, _ := strconv.Atoi(u.Gender)
		du := dirUser{Name: u.Name, Alias: u.Alias, Position: u.Position, Mobile: u.Mobile, Email: u.Email,
			Gender: gender, Status: u.Status, MainDepartment: int64(u.MainDepartment)}
		for i, dep := range u.Departments {
			leader := i < len(u.IsLeaderInDept) && u.IsLeaderInDept[i] == 1
			du.Departments = append(du.Departments, fmt.Sprintf("%d/leader=%t", dep, leader))
		}
		sort.Strings(du.Departments)
		d.Users[u.UserID] = du
	}
	for _, dep := range st.Departments {
		d.Departments[int64(dep.ID)] = dirDept{Name: dep.Name, ParentID: int64(dep.ParentID)}
	}
	for _, tg := range st.Tags {
		var m []string
		for _, u := range tg.Users {
			m = append(m, "u:"+u)
		}
		for _, p := range tg.Parties {
			m = append(m, "d:"+strconv.Itoa(p))
		}
		if len(m) > 0 {
			sort.Strings(m)
			d.Tags[int64(tg.TagID)] = m
		}
	}
	return d
}

func (w *world) mirrorDir(t *testing.T) dir {
	t.Helper()
	ctx := context.Background()
	d := dir{Users: map[string]dirUser{}, Departments: map[int64]dirDept{}, Tags: map[int64][]string{}}
	rows, err := w.pool.Query(ctx, `SELECT userid, coalesce(name,''), coalesce(alias,''), coalesce(position,''),
		coalesce(mobile,''), coalesce(email,''), coalesce(gender,0), coalesce(status,0), coalesce(main_department,0)
		FROM wecom.users WHERE corp_id = $1`, corpID)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		var u dirUser
		var gender, status int16
		require.NoError(t, rows.Scan(&id, &u.Name, &u.Alias, &u.Position, &u.Mobile, &u.Email, &gender, &status, &u.MainDepartment))
		u.Gender, u.Status = int(gender), int(status)
		d.Users[id] = u
	}
	require.NoError(t, rows.Err())
	rows, err = w.pool.Query(ctx, `SELECT userid, department_id, is_leader FROM wecom.user_departments WHERE corp_id = $1`, corpID)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		var dep int64
		var leader bool
		require.NoError(t, rows.Scan(&id, &dep, &leader))
		u := d.Users[id]
		u.Departments = append(u.Departments, fmt.Sprintf("%d/leader=%t", dep, leader))
		sort.Strings(u.Departments)
		d.Users[id] = u
	}
	require.NoError(t, rows.Err())
	rows, err = w.pool.Query(ctx, `SELECT id, coalesce(name,''), coalesce(parent_id,0) FROM wecom.departments WHERE corp_id = $1`, corpID)
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		var dep dirDept
		require.NoError(t, rows.Scan(&id, &dep.Name, &dep.ParentID))
		d.Departments[id] = dep
	}
	require.NoError(t, rows.Err())
	rows, err = w.pool.Query(ctx, `SELECT tag_id, 'u:' || userid FROM wecom.tag_users WHERE corp_id = $1
		UNION ALL SELECT tag_id, 'd:' || department_id FROM wecom.tag_departments WHERE corp_id = $1`, corpID)
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		var m string
		require.NoError(t, rows.Scan(&id, &m))
		d.Tags[id] = append(d.Tags[id], m)
	}
	require.NoError(t, rows.Err())
	for id := range d.Tags {
		slices.Sort(d.Tags[id])
	}
	return d
}

// requireConverged requires the mirror to equal the emulator's directory.
func (w *world) requireConverged(t *testing.T) {
	t.Helper()
	want, got := w.emulatorDir(t), w.mirrorDir(t)
	require.Equal(t, len(want.Users), len(got.Users), "user count")
	for id, u := range want.Users {
		require.Equal(t, u, got.Users[id], "user %s", id)
	}
	require.Equal(t, want.Departments, got.Departments)
	require.Equal(t, want.Tags, got.Tags)
}

func getStatus(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func getBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
