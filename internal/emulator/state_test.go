package emulator

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSeed(t *testing.T) {
	t.Parallel()

	t.Run("BuildsRealisticUniqueOrg", func(t *testing.T) {
		t.Parallel()
		d := NewDirectory("wwseed", "根")
		d.Seed(5000, 7)
		st := d.Snapshot()
		require.Len(t, st.Users, 5000)
		require.Greater(t, len(st.Departments), 100)
		mobiles, emails := map[string]bool{}, map[string]bool{}
		depts := map[int]Department{}
		for _, dep := range st.Departments {
			depts[dep.ID] = dep
		}
		maxDepth := 0
		for id := range depts {
			n := 0
			for cur := id; cur != 0; cur = depts[cur].ParentID {
				n++
			}
			maxDepth = max(maxDepth, n)
		}
		require.GreaterOrEqual(t, maxDepth, 4)
		require.LessOrEqual(t, maxDepth, maxDeptDepth)
		for _, u := range st.Users {
			require.False(t, mobiles[u.Mobile], "duplicate mobile %s", u.Mobile)
			require.False(t, emails[u.Email], "duplicate email %s", u.Email)
			mobiles[u.Mobile], emails[u.Email] = true, true
			require.True(t, validUserID(u.UserID))
			require.True(t, validMobile(u.Mobile))
			require.NotEmpty(t, u.Name)
			require.Len(t, u.IsLeaderInDept, len(u.Departments))
			for _, id := range u.Departments {
				require.Contains(t, depts, id)
			}
		}
		require.NotEmpty(t, st.Tags)
		require.NotEmpty(t, st.Tags[0].Users)
	})

	t.Run("SameSeedSameOrg", func(t *testing.T) {
		t.Parallel()
		a, b := NewDirectory("c", "r"), NewDirectory("c", "r")
		a.Seed(300, 3)
		b.Seed(300, 3)
		require.Equal(t, a.Snapshot(), b.Snapshot())
	})
}

func TestState(t *testing.T) {
	t.Parallel()

	t.Run("AdminStateIsStableSortedJSON", func(t *testing.T) {
		t.Parallel()
		e := setup(t, func(c *Config) { c.SeedUsers = 30 })
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/create", newUser("Zed", "13300000001")), 0)
		status, out := e.raw(t, "GET", "/admin/state", "", nil)
		require.Equal(t, http.StatusOK, status)
		var st State
		require.NoError(t, json.Unmarshal(out, &st))
		require.Equal(t, testCorp, st.CorpID)
		require.Len(t, st.Users, 31)
		require.Equal(t, "Zed", st.Users[30].UserID, "sorted by lowercase userid")
		require.Equal(t, 1, st.Departments[0].ID)
		for i := 1; i < len(st.Departments); i++ {
			require.Less(t, st.Departments[i-1].ID, st.Departments[i].ID)
		}
		require.Equal(t, e.srv.Directory().Snapshot(), st)
		_, out = e.raw(t, "GET", "/admin/state?corp=linked", "", nil)
		var linked State
		require.NoError(t, json.Unmarshal(out, &linked))
		require.Equal(t, "wwlinked", linked.CorpID)
	})

	t.Run("StateFileRoundTrip", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "state.json")
		cfg := Config{CorpID: testCorp, ContactSecret: testContact, SeedUsers: 40, StatePath: path}
		srv, err := New(cfg)
		require.NoError(t, err)
		_, err = srv.Directory().CreateUser(UserInput{UserID: "kept", Name: ptr("留下"), Department: &[]int{1}, Email: ptr("kept@example.com")})
		require.NoError(t, err)
		_, err = srv.Directory().Update(func(tx *Tx) error {
			id, err := tx.CreateTag("持久", 0)
			if err != nil {
				return err
			}
			_, err = tx.AddTagMembers(id, []string{"kept"}, []int{1})
			return err
		})
		require.NoError(t, err)
		want := srv.Directory().Snapshot()
		require.NoError(t, srv.Close(context.Background()))

		cfg.SeedUsers = 5 // ignored: the state file wins
		again, err := New(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = again.Close(context.Background()) })
		require.Equal(t, want, again.Directory().Snapshot())
	})

	t.Run("StateFileForAnotherCorpIsRejected", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "state.json")
		d := NewDirectory("other", "r")
		require.NoError(t, d.SaveFile(path))
		_, err := New(Config{CorpID: testCorp, ContactSecret: testContact, StatePath: path})
		require.ErrorContains(t, err, "is for corp other")
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		msg  string
	}{
		{"NoCorp", Config{ContactSecret: "s"}, "corp id must be set"},
		{"NoSecret", Config{CorpID: "c"}, "contact secret must be set"},
		{"SameSecrets", Config{CorpID: "c", ContactSecret: "s", ConsoleSecret: "s"}, "must differ"},
		{"PartialCallback", Config{CorpID: "c", ContactSecret: "s", CallbackURL: "http://x"}, "must be set together"},
		{"BadKey", Config{CorpID: "c", ContactSecret: "s", CallbackURL: "http://x", CallbackToken: "t", CallbackAESKey: "short"}, "43 characters"},
		{"BadFault", Config{CorpID: "c", ContactSecret: "s", Faults: Faults{ErrorRate: -1}}, "between 0 and 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			require.ErrorContains(t, err, tc.msg)
		})
	}
}
