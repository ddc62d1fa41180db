package emulator

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeClock is a settable clock for token expiry and rate windows.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestGetToken(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	e := setup(t, func(c *Config) { c.Now = clock.Now })

	t.Run("IssuesTokenWith7200sAndReturnsSameWithinValidity", func(t *testing.T) {
		r := e.do(t, "GET", "/cgi-bin/gettoken?corpid="+testCorp+"&corpsecret="+testContact, "", nil)
		requireCode(t, r, 0, "ok")
		require.Equal(t, e.tok[SecretContact], r["access_token"])
		require.EqualValues(t, 7200, r["expires_in"])
	})
	t.Run("SecretsGetDifferentTokens", func(t *testing.T) {
		require.NotEqual(t, e.tok[SecretContact], e.tok[SecretConsole])
		require.NotEqual(t, e.tok[SecretContact], e.tok[SecretApp])
	})
	t.Run("RejectsBadCredentials", func(t *testing.T) {
		for _, tc := range []struct {
			query string
			code  int
		}{
			{"corpid=" + testCorp, CodeMissingSecret},
			{"corpsecret=x", CodeMissingCorpID},
			{"", CodeMissingSecret},
			{"corpid=nope&corpsecret=" + testContact, CodeInvalidCorpID},
			{"corpid=" + testCorp + "&corpsecret=wrong", CodeInvalidSecret},
		} {
			requireCode(t, e.do(t, "GET", "/cgi-bin/gettoken?"+tc.query, "", nil), tc.code)
		}
	})
	t.Run("TokenOnlyFromQueryString", func(t *testing.T) {
		req, err := http.NewRequest("GET", e.ts.URL+"/cgi-bin/user/get?userid=u000001", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+e.tok[SecretContact])
		req.Header.Set("access_token", e.tok[SecretContact])
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		requireCode(t, e.do(t, "GET", "/cgi-bin/user/get?userid=u000001", "", nil), CodeMissingToken)
		requireCode(t, e.do(t, "POST", "/cgi-bin/user/list_id", "", map[string]any{"access_token": e.tok[SecretContact]}), CodeMissingToken)
	})
	t.Run("UnknownTokenIs40014", func(t *testing.T) {
		requireCode(t, e.do(t, "GET", "/cgi-bin/user/get?userid=u000001", "bogus", nil), CodeInvalidToken, "invalid access_token")
	})
}

func TestTokenExpiry(t *testing.T) {
	t.Parallel()

	t.Run("ExpiresAfterTTL", func(t *testing.T) {
		t.Parallel()
		clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
		e := setup(t, func(c *Config) { c.Now = clock.Now })
		tok := e.tok[SecretContact]
		clock.Add(7199 * time.Second)
		requireCode(t, e.do(t, "GET", "/cgi-bin/user/get?userid=u000001", tok, nil), 0)
		clock.Add(time.Second)
		requireCode(t, e.do(t, "GET", "/cgi-bin/user/get?userid=u000001", tok, nil), CodeTokenExpired, "access_token expired")
		r := e.do(t, "GET", "/cgi-bin/gettoken?corpid="+testCorp+"&corpsecret="+testContact, "", nil)
		require.NotEqual(t, tok, r["access_token"])
	})
	t.Run("AdminExpiresAllTokens", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		status, _ := e.raw(t, "POST", "/admin/tokens/expire", "", nil)
		require.Equal(t, http.StatusOK, status)
		for _, tok := range e.tok {
			requireCode(t, e.do(t, "GET", "/cgi-bin/user/get?userid=u000001", tok, nil), CodeTokenExpired)
		}
		r := e.do(t, "GET", "/cgi-bin/gettoken?corpid="+testCorp+"&corpsecret="+testContact, "", nil)
		require.NotEqual(t, e.tok[SecretContact], r["access_token"])
		requireCode(t, e.do(t, "GET", "/cgi-bin/user/get?userid=u000001", r["access_token"].(string), nil), 0)
	})
	t.Run("AdminInvalidatesAllTokens", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.raw(t, "POST", "/admin/tokens/expire?mode=invalidate", "", nil)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/get?userid=u000001", nil), CodeInvalidToken)
	})
}
