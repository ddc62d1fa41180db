package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/crypto"
)

// jobClock is a settable server clock for job pacing, media and URL expiry.
type jobClock struct {
	mu  sync.Mutex
	now time.Time
}

func newJobClock() *jobClock { return &jobClock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)} }

func (c *jobClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *jobClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// withJobs sets the jobs config; withClock the server clock; withSeed the org size.
func withJobs(jc JobsConfig) option   { return func(c *Config) { c.Jobs = jc } }
func withClock(clk *jobClock) option  { return func(c *Config) { c.Now = clk.Now } }
func withSeed(n int) option           { return func(c *Config) { c.SeedUsers = n } }
func immediate() option               { return withJobs(JobsConfig{Immediate: true}) }
func withNewIP() option               { return func(c *Config) { c.ContactNewIP = true } }
func slowJobs(clk *jobClock) []option { return []option{withClock(clk), withJobs(slowJobsConfig)} }

// slowJobsConfig makes jobs last 10s of server clock and keeps the ticker out of the way.
var slowJobsConfig = JobsConfig{MinDuration: 10 * time.Second, TickInterval: time.Hour}

// upload posts a file to media/upload with the given type and returns the decoded answer.
func (e *env) upload(t *testing.T, token, typ, filename string, data []byte) map[string]any {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="media";filename="%s"; filelength=%d`, filename, len(data)))
	h.Set("Content-Type", "application/octet-stream")
	pw, err := mw.CreatePart(h)
	require.NoError(t, err)
	_, err = pw.Write(data)
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	return e.post(t, "/cgi-bin/media/upload?type="+typ+"&access_token="+token, mw.FormDataContentType(), body.Bytes())
}

// post sends a raw body and decodes the JSON answer.
func (e *env) post(t *testing.T, path, contentType string, body []byte) map[string]any {
	t.Helper()
	resp, err := http.Post(e.ts.URL+path, contentType, bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", out)
	var m map[string]any
	require.NoError(t, json.Unmarshal(out, &m), "%s", out)
	return m
}

// mediaID uploads a CSV file with the contact token and returns its media_id.
func (e *env) mediaID(t *testing.T, csv string) string {
	t.Helper()
	r := e.upload(t, e.tok[SecretContact], "file", "import.csv", []byte(csv))
	requireCode(t, r, 0)
	return r["media_id"].(string)
}

// submit uploads csv and submits an import job with token; it returns the answer.
func (e *env) submit(t *testing.T, token, api, csv string, extra map[string]any) map[string]any {
	t.Helper()
	body := map[string]any{"media_id": e.mediaID(t, csv)}
	for k, v := range extra {
		body[k] = v
	}
	return e.do(t, "POST", "/cgi-bin/batch/"+api, token, body)
}

// runImport submits an import job with the contact token and returns its final getresult
// (the env must use immediate jobs).
func (e *env) runImport(t *testing.T, api, csv string) map[string]any {
	t.Helper()
	r := e.submit(t, e.tok[SecretContact], api, csv, nil)
	requireCode(t, r, 0, "ok")
	res := e.contact(t, "GET", "/cgi-bin/batch/getresult?jobid="+r["jobid"].(string), nil)
	require.EqualValues(t, 3, res["status"], "%v", res)
	return res
}

// results returns getresult's result items.
func results(t *testing.T, res map[string]any) []map[string]any {
	t.Helper()
	items, ok := res["result"].([]any)
	require.True(t, ok, "result: %v", res)
	out := make([]map[string]any, len(items))
	for i, it := range items {
		out[i] = it.(map[string]any)
	}
	return out
}

// memberCSV renders a member file: header then rows, "\n"-separated.
func memberCSV(header string, rows ...string) string {
	return header + "\n" + strings.Join(rows, "\n") + "\n"
}

// keepRows returns minimal member rows (姓名,帐号,手机号,所在部门) for existing members.
func keepRows(t *testing.T, d *Directory, userids ...string) []string {
	t.Helper()
	var rows []string
	for _, id := range userids {
		u, ok := d.User(id)
		require.True(t, ok, id)
		rows = append(rows, fmt.Sprintf("%s,%s,%s,%d", u.Name, u.UserID, u.Mobile, u.Departments[0]))
	}
	return rows
}

// jobReceiver is a job's own callback URL with its own token and key.
type jobReceiver struct {
	srv    *httptest.Server
	token  string
	key    string
	events chan map[string]string
}

func newJobReceiver(t *testing.T) *jobReceiver {
	t.Helper()
	r := &jobReceiver{token: "jobtoken", key: crypto.NewKey(), events: make(chan map[string]string, 10)}
	c, err := crypto.New(r.token, r.key, testCorp)
	require.NoError(t, err)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		body, _ := io.ReadAll(req.Body)
		plain, err := c.DecryptMsg(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), body)
		if err != nil {
			t.Errorf("job receiver: decrypting: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.events <- parseXMLFields(t, plain)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *jobReceiver) callback() map[string]any {
	return map[string]any{"url": r.srv.URL + "/jobcb", "token": r.token, "encodingaeskey": r.key}
}

func (r *jobReceiver) next(t *testing.T) map[string]string {
	t.Helper()
	select {
	case ev := <-r.events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no job callback within 10s")
		return nil
	}
}

// requireNoCallback asserts that nothing more was delivered to the configured URL once
// the callback queue is idle.
func (e *env) requireNoCallback(t *testing.T) {
	t.Helper()
	e.idle(t)
	select {
	case ev := <-e.recv.events:
		t.Fatalf("unexpected callback: %s", ev["_raw"])
	default:
	}
}

// renewTokens fetches fresh tokens (after the clock moved past their expiry).
func (e *env) renewTokens(t *testing.T) {
	t.Helper()
	for kind, secret := range map[SecretKind]string{SecretContact: testContact, SecretConsole: testConsole, SecretApp: testApp} {
		r := e.do(t, "GET", "/cgi-bin/gettoken?corpid="+testCorp+"&corpsecret="+secret, "", nil)
		requireCode(t, r, 0)
		e.tok[kind] = r["access_token"].(string)
	}
}
