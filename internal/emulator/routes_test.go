package emulator

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRoutePermissions(t *testing.T) {
	t.Parallel()
	e := setup(t)

	t.Run("AppSecretGets48002OnEveryWrite", func(t *testing.T) {
		for _, p := range []string{"/cgi-bin/user/create", "/cgi-bin/user/update", "/cgi-bin/user/batchdelete",
			"/cgi-bin/department/create", "/cgi-bin/department/update", "/cgi-bin/tag/create", "/cgi-bin/tag/update",
			"/cgi-bin/tag/addtagusers", "/cgi-bin/tag/deltagusers", "/cgi-bin/batch/invite", "/cgi-bin/school/department/create"} {
			requireCode(t, e.do(t, "POST", p, e.tok[SecretApp], map[string]any{}), CodeNoPermission, "api forbidden")
		}
		for _, p := range []string{"/cgi-bin/user/delete?userid=u000001", "/cgi-bin/department/delete?id=2", "/cgi-bin/tag/delete?tagid=1"} {
			requireCode(t, e.do(t, "GET", p, e.tok[SecretApp], nil), CodeNoPermission)
		}
	})

	t.Run("AppSecretReads", func(t *testing.T) {
		for _, p := range []string{"/cgi-bin/user/get?userid=u000001", "/cgi-bin/user/simplelist?department_id=1", "/cgi-bin/user/list?department_id=1",
			"/cgi-bin/department/list", "/cgi-bin/department/simplelist", "/cgi-bin/department/get?id=1", "/cgi-bin/tag/list", "/cgi-bin/tag/get?tagid=1",
			"/cgi-bin/getcallbackip", "/cgi-bin/school/department/list"} {
			requireCode(t, e.do(t, "GET", p, e.tok[SecretApp], nil), 0, "ok")
		}
	})

	t.Run("GetEndpointAcceptsPOSTWithQueryParameters", func(t *testing.T) {
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/get?userid=u000001", nil), 0)
	})

	t.Run("CallbackIPList", func(t *testing.T) {
		r := e.contact(t, "GET", "/cgi-bin/getcallbackip", nil)
		require.NotEmpty(t, r["ip_list"])
	})

	t.Run("HealthAndStats", func(t *testing.T) {
		status, body := e.raw(t, "GET", "/healthz", "", nil)
		require.Equal(t, 200, status)
		require.Equal(t, "ok", string(body))
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/get?userid=ghost", nil), CodeUserNotFound)
		st := e.srv.Stats()
		require.Positive(t, st.APICalls)
		require.Positive(t, st.APIErrors["60111"])
		require.Equal(t, 50, st.Users)
	})
}

func TestPeriodicStateSave(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	srv, err := New(Config{CorpID: testCorp, ContactSecret: testContact, SeedUsers: 3, StatePath: path, StateInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close(t.Context()) })
	waitFor(t, "the state file", func() bool { _, err := os.Stat(path); return err == nil })
	d := NewDirectory(testCorp, "x")
	ok, err := d.LoadFile(path)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 3, d.UserCount())
}
