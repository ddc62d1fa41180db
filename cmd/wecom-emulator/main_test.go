package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/crypto"
)

// startRun runs the binary through run with a fake environment and returns its address
// (parsed from the ready line), a cancel func and the channel run's error arrives on.
func startRun(t *testing.T, args []string, env map[string]string) (string, context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, args, func(k string) string { return env[k] }, pw, io.Discard)
		pw.Close()
		done <- err
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case line := <-lines:
		m := regexp.MustCompile(`^wecom-emulator ready addr=(\S+) corp_id=(\S+)`).FindStringSubmatch(line)
		require.NotNil(t, m, "ready line %q", line)
		return m[1], cancel, done
	case err := <-done:
		cancel()
		t.Fatalf("run returned before ready: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("no ready line within 20s")
	}
	return "", cancel, done
}

func getJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	return m
}

func TestRun(t *testing.T) {
	t.Parallel()

	t.Run("ServesSeededOrgAndShutsDownCleanly", func(t *testing.T) {
		t.Parallel()
		state := filepath.Join(t.TempDir(), "state.json")
		addr, cancel, done := startRun(t, []string{"-addr", "127.0.0.1:0", "-corp-id", "wwe2e", "-contact-secret", "cs",
			"-console-secret", "con", "-seed-users", "100", "-state", state, "-rate-limit", "0"}, nil)
		base := "http://" + addr
		tok := getJSON(t, base+"/cgi-bin/gettoken?corpid=wwe2e&corpsecret=cs")
		require.EqualValues(t, 0, tok["errcode"])
		u := getJSON(t, base+"/cgi-bin/user/get?userid=u000042&access_token="+tok["access_token"].(string))
		require.EqualValues(t, 0, u["errcode"], u)
		stats := getJSON(t, base+"/admin/stats")
		require.EqualValues(t, 100, stats["users"])
		cancel()
		require.NoError(t, <-done)
		require.FileExists(t, state)

		// A restart keeps the directory from the state file.
		addr, cancel, done = startRun(t, []string{"-addr", "127.0.0.1:0", "-state", state}, map[string]string{
			"WECOM_EMULATOR_CORP_ID": "wwe2e", "WECOM_EMULATOR_CONTACT_SECRET": "cs"})
		require.EqualValues(t, 100, getJSON(t, "http://"+addr+"/admin/stats")["users"])
		cancel()
		require.NoError(t, <-done)
	})

	t.Run("VerifiesCallbackURLAndCallsBackConsoleEdits", func(t *testing.T) {
		t.Parallel()
		key := crypto.NewKey()
		c, err := crypto.New("tok", key, "wwcb")
		require.NoError(t, err)
		events := make(chan []byte, 10)
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			if r.Method == http.MethodGet {
				plain, err := c.VerifyURL(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), q.Get("echostr"))
				if err != nil {
					w.WriteHeader(http.StatusForbidden)
					return
				}
				_, _ = w.Write(plain)
				return
			}
			body, _ := io.ReadAll(r.Body)
			plain, err := c.DecryptMsg(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), body)
			if err != nil {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			events <- plain
		}))
		t.Cleanup(recv.Close)
		addr, cancel, done := startRun(t, []string{"-addr", "127.0.0.1:0", "-minimal"}, map[string]string{
			"WECOM_EMULATOR_CORP_ID": "wwcb", "WECOM_EMULATOR_CONTACT_SECRET": "cs", "WECOM_EMULATOR_CONSOLE_SECRET": "con",
			"WECOM_EMULATOR_CALLBACK_URL": recv.URL, "WECOM_EMULATOR_CALLBACK_TOKEN": "tok", "WECOM_EMULATOR_CALLBACK_AES_KEY": key})
		base := "http://" + addr
		deadline := time.Now().Add(10 * time.Second)
		for getJSON(t, base+"/admin/stats")["callback_verification"] != "ok" {
			require.True(t, time.Now().Before(deadline), "callback URL not verified")
			time.Sleep(10 * time.Millisecond)
		}
		tok := getJSON(t, base+"/cgi-bin/gettoken?corpid=wwcb&corpsecret=con")["access_token"].(string)
		resp, err := http.Post(base+"/cgi-bin/department/create?access_token="+tok, "application/json",
			strings.NewReader(`{"name":"回调部","parentid":1,"id":7}`))
		require.NoError(t, err)
		resp.Body.Close()
		select {
		case ev := <-events:
			require.Contains(t, string(ev), "<ChangeType><![CDATA[create_party]]></ChangeType><Id>7</Id><ParentId><![CDATA[1]]></ParentId></xml>")
		case <-time.After(10 * time.Second):
			t.Fatal("no callback")
		}
		cancel()
		require.NoError(t, <-done)
	})

	t.Run("RejectsMissingCorpID", func(t *testing.T) {
		t.Parallel()
		err := run(context.Background(), []string{"-contact-secret", "x"}, func(string) string { return "" }, io.Discard, io.Discard)
		require.ErrorContains(t, err, "-corp-id")
	})

	t.Run("RejectsBadEnvironmentValue", func(t *testing.T) {
		t.Parallel()
		err := run(context.Background(), nil, func(k string) string {
			if k == "WECOM_EMULATOR_SEED_USERS" {
				return "many"
			}
			return ""
		}, io.Discard, io.Discard)
		require.ErrorContains(t, err, "WECOM_EMULATOR_SEED_USERS")
	})
}
