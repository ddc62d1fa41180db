package worker

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/mirror"
	"github.com/wecomsync/wecomsync/internal/wecom"
)

// newEmulatorWeCom returns an emulator seeded with users members and a WeCom reading it
// with secret (the contacts-sync secret unless told otherwise).
func newEmulatorWeCom(t *testing.T, cfg emulator.Config, secret string) (*emulator.Server, *WeCom) {
	t.Helper()
	cfg.CorpID, cfg.ContactSecret, cfg.AppSecret = corpA, "contact", "app"
	emu, err := emulator.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = emu.Close(ctx)
	})
	c, err := wecom.New(wecom.Config{BaseURL: srv.URL, CorpID: corpA, Secret: secret, MaxAttempts: 2,
		RetryBaseDelay: time.Millisecond, RetryMaxDelay: time.Millisecond})
	require.NoError(t, err)
	return emu, NewWeCom(map[string]DirectoryClient{corpA: c}, 4)
}

func TestWeComLookup(t *testing.T) {
	t.Parallel()

	t.Run("ReturnsTheFullRecord", func(t *testing.T) {
		t.Parallel()
		emu, w := newEmulatorWeCom(t, emulator.Config{SeedUsers: 5}, "contact")
		want := emu.Directory().Snapshot().Users[0]
		u, err := w.User(context.Background(), corpA, want.UserID)
		require.NoError(t, err)
		require.Equal(t, want.Name, u.Name)
		require.Equal(t, want.Mobile, u.Mobile)
		require.Equal(t, int64(want.MainDepartment), u.MainDepartment)
		require.Len(t, u.Departments, len(want.Departments))
		require.Empty(t, u.Unknown)
		require.NotEmpty(t, u.Raw)
		d, err := w.Department(context.Background(), corpA, 1)
		require.NoError(t, err)
		require.Equal(t, int64(1), d.ID)
		require.NotEmpty(t, d.Name)
	})

	t.Run("GoneIsNotFound", func(t *testing.T) {
		t.Parallel()
		_, w := newEmulatorWeCom(t, emulator.Config{}, "contact")
		_, err := w.User(context.Background(), corpA, "nobody")
		require.ErrorIs(t, err, mirror.ErrNotFound)
		_, err = w.Department(context.Background(), corpA, 424242)
		require.ErrorIs(t, err, mirror.ErrNotFound)
	})

	t.Run("NewIPRuleIsNotPermitted", func(t *testing.T) {
		t.Parallel()
		// 48009: the contacts-sync secret may no longer read department details from a
		// new IP (2022-08-15).
		_, w := newEmulatorWeCom(t, emulator.Config{ContactNewIP: true}, "contact")
		_, err := w.Department(context.Background(), corpA, 1)
		require.ErrorIs(t, err, mirror.ErrLookupNotPermitted)
		require.NotErrorIs(t, err, mirror.ErrNotFound)
	})

	t.Run("UnconfiguredCorpIsNotPermitted", func(t *testing.T) {
		t.Parallel()
		_, w := newEmulatorWeCom(t, emulator.Config{}, "contact")
		_, err := w.User(context.Background(), "wwother", "x")
		require.ErrorIs(t, err, mirror.ErrLookupNotPermitted)
	})

	t.Run("TransientErrorsAreNeither", func(t *testing.T) {
		t.Parallel()
		emu, w := newEmulatorWeCom(t, emulator.Config{SeedUsers: 1}, "contact")
		require.NoError(t, emu.SetFaults(emulator.Faults{ErrorRate: 1}))
		_, err := w.User(context.Background(), corpA, "whoever")
		require.Error(t, err)
		require.NotErrorIs(t, err, mirror.ErrNotFound)
		require.NotErrorIs(t, err, mirror.ErrLookupNotPermitted)
	})
}

func TestWeComSource(t *testing.T) {
	t.Parallel()

	collect := func(t *testing.T, src mirror.SyncSource) ([]*mirror.Department, []*mirror.User, []*mirror.Tag) {
		t.Helper()
		ctx := context.Background()
		var ds []*mirror.Department
		for d, err := range src.Departments(ctx) {
			require.NoError(t, err)
			ds = append(ds, d)
		}
		var us []*mirror.User
		for u, err := range src.Users(ctx) {
			require.NoError(t, err)
			us = append(us, u)
		}
		var ts []*mirror.Tag
		for tg, err := range src.Tags(ctx) {
			require.NoError(t, err)
			ts = append(ts, tg)
		}
		return ds, us, ts
	}

	t.Run("ReadsTheWholeDirectory", func(t *testing.T) {
		t.Parallel()
		emu, w := newEmulatorWeCom(t, emulator.Config{SeedUsers: 120}, "contact")
		st := emu.Directory().Snapshot()
		src, err := w.Source(corpA)
		require.NoError(t, err)
		ds, us, ts := collect(t, src)
		require.Len(t, ds, len(st.Departments))
		require.Len(t, us, len(st.Users))
		require.Len(t, ts, len(st.Tags))
		for i, u := range us {
			// In list_id order, every record complete.
			require.Empty(t, u.Unknown, u.UserID)
			require.NotEmpty(t, u.Name, u.UserID)
			if i > 0 {
				require.NotEqual(t, us[i-1].UserID, u.UserID)
			}
		}
		for _, d := range ds {
			require.NotEmpty(t, d.Name)
		}
		for i, tg := range ts {
			require.Equal(t, int64(st.Tags[i].TagID), tg.ID)
			require.Equal(t, st.Tags[i].TagName, tg.Name)
			require.Equal(t, len(st.Tags[i].Users), len(tg.UserIDs))
		}
	})

	t.Run("KeepsWhatTheListsGiveWhenDetailsAreRefused", func(t *testing.T) {
		t.Parallel()
		emu, w := newEmulatorWeCom(t, emulator.Config{SeedUsers: 30, ContactNewIP: true}, "contact")
		src, err := w.Source(corpA)
		require.NoError(t, err)
		ds, _, _ := collect(t, src)
		require.Len(t, ds, len(emu.Directory().Snapshot().Departments))
		for _, d := range ds {
			require.True(t, slices.Contains(d.Unknown, mirror.FieldName), "department %d name unknown", d.ID)
			require.Empty(t, d.Name)
		}
	})

	t.Run("StopsAtTheFirstError", func(t *testing.T) {
		t.Parallel()
		// An app secret may not call user/list_id (48002): the sync must fail, not
		// delete every member.
		_, w := newEmulatorWeCom(t, emulator.Config{SeedUsers: 5}, "app")
		src, err := w.Source(corpA)
		require.NoError(t, err)
		n := 0
		var last error
		for _, err := range src.Users(context.Background()) {
			n++
			last = err
		}
		require.Equal(t, 1, n)
		require.ErrorIs(t, last, wecom.ErrNoPermission)
	})
}

func TestFanOutKeepsKeyOrderAndStopsEarly(t *testing.T) {
	t.Parallel()
	keys := make([]int, 100)
	for i := range keys {
		keys[i] = i
	}
	var got []int
	for v, err := range fanOut(context.Background(), keys, 7, func(_ context.Context, k int) (int, error) { return k * 2, nil }) {
		require.NoError(t, err)
		got = append(got, v)
		if len(got) == 50 {
			break
		}
	}
	require.Len(t, got, 50)
	for i, v := range got {
		require.Equal(t, 2*i, v)
	}
}
