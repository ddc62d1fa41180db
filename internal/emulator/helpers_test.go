package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/crypto"
)

const (
	testCorp    = "wwtestcorp"
	testContact = "contact-secret"
	testConsole = "console-secret"
	testApp     = "app-secret"
	testToken   = "cbtoken"
)

// testAESKey is a fixed valid EncodingAESKey.
var testAESKey = crypto.NewKey()

// receiver is a callback endpoint that verifies, decrypts and records events.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	c       *crypto.Crypter
	events  chan map[string]string
	mu      sync.Mutex
	failN   int           // answer 500 to the next failN POSTs
	attempt atomic.Int64  // POSTs seen
	gate    chan struct{} // when set, each POST waits for a value (or close) first
	gets    atomic.Int64
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	c, err := crypto.New(testToken, testAESKey, testCorp)
	require.NoError(t, err)
	r := &receiver{t: t, c: c, events: make(chan map[string]string, 1000)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) failNext(n int) {
	r.mu.Lock()
	r.failN = n
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	if req.Method == http.MethodGet {
		r.gets.Add(1)
		plain, err := r.c.VerifyURL(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), q.Get("echostr"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		_, _ = w.Write(plain)
		return
	}
	r.attempt.Add(1)
	r.mu.Lock()
	gate := r.gate
	r.mu.Unlock()
	if gate != nil {
		<-gate
	}
	r.mu.Lock()
	fail := r.failN > 0
	if fail {
		r.failN--
	}
	r.mu.Unlock()
	if fail {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	body, _ := io.ReadAll(req.Body)
	plain, err := r.c.DecryptMsg(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), body)
	if err != nil {
		r.t.Errorf("receiver: decrypting callback: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.events <- parseXMLFields(r.t, plain)
}

// next returns the next delivered event or fails after a deadline.
func (r *receiver) next(t *testing.T) map[string]string {
	t.Helper()
	select {
	case ev := <-r.events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no callback delivered within 10s")
		return nil
	}
}

// parseXMLFields flattens an event XML into element path -> text ("ExtAttr/Item/Name"
// keeps the last one). Top-level fields are keyed by name; "_raw" holds the XML.
func parseXMLFields(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{"_raw": string(b)}
	dec := xml.NewDecoder(bytes.NewReader(b))
	var path []string
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err, "parsing %s", b)
		switch v := tok.(type) {
		case xml.StartElement:
			path = append(path, v.Name.Local)
			text.Reset()
		case xml.CharData:
			text.Write(v)
		case xml.EndElement:
			if len(path) >= 2 {
				out[strings.Join(path[1:], "/")] = strings.TrimSpace(text.String())
			}
			path = path[:len(path)-1]
			text.Reset()
		}
	}
	return out
}

type env struct {
	srv  *Server
	ts   *httptest.Server
	recv *receiver
	tok  map[SecretKind]string
}

type option func(*Config)

// setup starts an emulator on an httptest server with a callback receiver, the three
// secrets and a small seeded org (no rate limit, fast retries).
func setup(t *testing.T, opts ...option) *env {
	t.Helper()
	recv := newReceiver(t)
	cfg := Config{CorpID: testCorp, ContactSecret: testContact, ConsoleSecret: testConsole, AppSecret: testApp,
		CallbackURL: recv.srv.URL + "/cb", CallbackToken: testToken, CallbackAESKey: testAESKey,
		CallbackRetryDelay: -1, SeedUsers: 50, RateLimitPerMinute: -1, LinkedCorpID: "wwlinked"}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, srv.Close(ctx))
	})
	e := &env{srv: srv, ts: ts, recv: recv, tok: map[SecretKind]string{}}
	for kind, secret := range map[SecretKind]string{SecretContact: testContact, SecretConsole: testConsole, SecretApp: testApp} {
		if secret == "" {
			continue
		}
		r := e.do(t, "GET", "/cgi-bin/gettoken?corpid="+testCorp+"&corpsecret="+secret, "", nil)
		require.EqualValues(t, 0, r["errcode"], r)
		e.tok[kind] = r["access_token"].(string)
	}
	return e
}

// do calls the emulator and decodes the JSON answer (HTTP 200 required).
func (e *env) do(t *testing.T, method, path, token string, body any) map[string]any {
	t.Helper()
	status, out := e.raw(t, method, path, token, body)
	require.Equal(t, http.StatusOK, status, "%s %s: %s", method, path, out)
	var m map[string]any
	require.NoError(t, json.Unmarshal(out, &m), "%s", out)
	return m
}

func (e *env) raw(t *testing.T, method, path, token string, body any) (int, []byte) {
	t.Helper()
	u := e.ts.URL + path
	if token != "" {
		u += sep(u) + "access_token=" + token
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		js, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, u, rd)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

func (e *env) contact(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	return e.do(t, method, path, e.tok[SecretContact], body)
}

func (e *env) console(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	return e.do(t, method, path, e.tok[SecretConsole], body)
}

// requireCode asserts errcode (and errmsg when given).
func requireCode(t *testing.T, r map[string]any, code int, errmsg ...string) {
	t.Helper()
	require.EqualValues(t, code, r["errcode"], "answer: %v", r)
	if len(errmsg) > 0 {
		require.Equal(t, errmsg[0], r["errmsg"], "answer: %v", r)
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// idle waits until the callback queue is empty.
func (e *env) idle(t *testing.T) {
	t.Helper()
	waitFor(t, "callback queue to drain", func() bool { return e.srv.CallbackStats().Pending == 0 })
}

func newUser(id, mobile string) map[string]any {
	return map[string]any{"userid": id, "name": "测试" + id, "department": []int{1}, "mobile": mobile}
}

func jsonNumber(n int) string { return strconv.Itoa(n) }
