package wecom_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/wecom"
)

func TestUsers(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := f.client

	t.Run("GetUserReturnsOfficialShape", func(t *testing.T) {
		t.Parallel()
		u, err := c.GetUser(ctxT(t), "u000001")
		require.NoError(t, err)
		require.Equal(t, "u000001", u.UserID)
		require.NotEmpty(t, u.Name)
		require.NotEmpty(t, u.Department)
		require.Len(t, u.Order, len(u.Department))
		require.Contains(t, []string{"1", "2"}, u.Gender.String())
		require.NotNil(t, u.ExtAttr)
		require.Equal(t, "工号", u.ExtAttr.Attrs[0].Name)
	})

	t.Run("GetUserUnknownIsNotFound", func(t *testing.T) {
		t.Parallel()
		_, err := c.GetUser(ctxT(t), "nobody")
		require.ErrorIs(t, err, wecom.ErrNotFound)
		require.Equal(t, 60111, errcodeOf(err))
		var we *wecom.Error
		require.ErrorAs(t, err, &we)
		require.Equal(t, "user/get", we.API)
	})

	t.Run("CreateUpdateDeleteRoundTrip", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		err := c.CreateUser(ctx, wecom.UserCreate{UserID: "zhangsan", Name: "张三", Mobile: "+86 13800000001",
			Department: []int{1}, Position: "工程师", Gender: "1", Email: "zhangsan@example.org"})
		require.NoError(t, err)
		err = c.CreateUser(ctx, wecom.UserCreate{UserID: "zhangsan", Name: "张三", Mobile: "13800000002", Department: []int{1}})
		require.ErrorIs(t, err, wecom.ErrExists)
		require.Equal(t, 60102, errcodeOf(err))

		require.NoError(t, c.UpdateUser(ctx, wecom.UserUpdate{UserID: "zhangsan", Position: wecom.Ptr("经理")}))
		u, err := c.GetUser(ctx, "zhangsan")
		require.NoError(t, err)
		require.Equal(t, "经理", u.Position)
		require.Equal(t, "张三", u.Name, "fields not given are unchanged")

		require.NoError(t, c.DeleteUser(ctx, "zhangsan"))
		require.ErrorIs(t, c.DeleteUser(ctx, "zhangsan"), wecom.ErrNotFound)
	})

	t.Run("UpdateUnknownIsNotFound", func(t *testing.T) {
		t.Parallel()
		err := c.UpdateUser(ctxT(t), wecom.UserUpdate{UserID: "ghost", Name: wecom.Ptr("x")})
		require.ErrorIs(t, err, wecom.ErrNotFound)
	})

	t.Run("BatchDeleteFailsWholeOnUnknown", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		for _, id := range []string{"bd1", "bd2"} {
			require.NoError(t, c.CreateUser(ctx, wecom.UserCreate{UserID: id, Name: id, Email: id + "@example.org", Department: []int{1}}))
		}
		err := c.BatchDeleteUsers(ctx, []string{"bd1", "nobody-here"})
		require.Error(t, err)
		require.NotZero(t, errcodeOf(err))
		require.NoError(t, c.BatchDeleteUsers(ctx, []string{"bd1", "bd2"}))
		_, err = c.GetUser(ctx, "bd2")
		require.ErrorIs(t, err, wecom.ErrNotFound)
	})

	t.Run("SimpleListAndList", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		su, err := c.SimpleListUsers(ctx, 1, true)
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(su), 60)
		full, err := c.ListUsers(ctx, 1, true)
		require.NoError(t, err)
		require.Equal(t, len(su), len(full))
		require.NotEmpty(t, full[0].Mobile)
		_, err = c.SimpleListUsers(ctx, 999999, false)
		require.ErrorIs(t, err, wecom.ErrNotFound)
		require.Equal(t, 60003, errcodeOf(err))
	})

	t.Run("ConvertOpenIDRoundTrip", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		var active string
		for i := 1; i <= 60 && active == ""; i++ {
			id := "u0000" + pad2(i)
			if u, err := c.GetUser(ctx, id); err == nil && u.Status == 1 {
				active = id
			}
		}
		require.NotEmpty(t, active)
		oid, err := c.ConvertToOpenID(ctx, active)
		require.NoError(t, err)
		require.NotEmpty(t, oid)
		uid, err := c.ConvertToUserID(ctx, oid)
		require.NoError(t, err)
		require.Equal(t, active, uid)
		_, err = c.ConvertToOpenID(ctx, "nobody")
		require.ErrorIs(t, err, wecom.ErrNotFound)
	})

	t.Run("AuthSuccInviteQRCodeActiveStat", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		require.NoError(t, c.AuthSucc(ctx, "u000002"))
		require.ErrorIs(t, c.AuthSucc(ctx, "nobody"), wecom.ErrNotFound)

		res, err := c.BatchInvite(ctx, wecom.Invite{User: []string{"u000003", "nobody"}, Party: []int{1, 99999}})
		require.NoError(t, err)
		require.Equal(t, []string{"nobody"}, res.InvalidUser)
		require.Equal(t, []int{99999}, res.InvalidParty)
		_, err = c.BatchInvite(ctx, wecom.Invite{User: []string{"nobody"}})
		require.Equal(t, 81013, errcodeOf(err))

		qr, err := c.JoinQRCode(ctx, 2)
		require.NoError(t, err)
		require.Contains(t, qr, "https://")
		_, err = c.JoinQRCode(ctx, 9)
		require.Equal(t, 40058, errcodeOf(err))

		n, err := c.ActiveStat(ctx, time.Now().AddDate(0, 0, -1).Format("2006-01-02"))
		require.NoError(t, err)
		require.Positive(t, n)
		_, err = c.ActiveStat(ctx, "2001-01-01")
		require.Equal(t, 40058, errcodeOf(err))
	})

	t.Run("GetUserIDByMobileAndEmail", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		u, err := c.GetUser(ctx, "u000004")
		require.NoError(t, err)
		id, err := c.GetUserIDByMobile(ctx, u.Mobile)
		require.NoError(t, err)
		require.Equal(t, "u000004", id)
		_, err = c.GetUserIDByMobile(ctx, "13999999999")
		require.ErrorIs(t, err, wecom.ErrNotFound)
		id, err = c.GetUserIDByEmail(ctx, u.Email, 2)
		require.NoError(t, err)
		require.Equal(t, "u000004", id)
	})

	t.Run("ListIDsNeedsContactSecret", func(t *testing.T) {
		t.Parallel()
		app := f.newClient(t, func(cfg *wecom.Config) { cfg.Secret = testApp })
		_, err := app.ListIDsPage(ctxT(t), "", 10)
		require.ErrorIs(t, err, wecom.ErrNoPermission)
		require.Equal(t, 48002, errcodeOf(err))
		err = app.CreateUser(ctxT(t), wecom.UserCreate{UserID: "x1", Name: "x", Department: []int{1}, Email: "x1@example.org"})
		require.ErrorIs(t, err, wecom.ErrNoPermission)
	})
}

func pad2(i int) string {
	if i < 10 {
		return "0" + string(rune('0'+i))
	}
	return string(rune('0'+i/10)) + string(rune('0'+i%10))
}

func TestListIDsIteratesTheWholeOrg(t *testing.T) {
	t.Parallel()
	f := setup(t, withSeed(2500))
	ctx := ctxT(t)

	// Expected: every (member, department) pair of the seeded directory.
	want := map[wecom.DeptUser]bool{}
	for _, u := range f.emu.Directory().Snapshot().Users {
		for _, d := range u.Departments {
			want[wecom.DeptUser{UserID: u.UserID, Department: d}] = true
		}
	}
	got := map[wecom.DeptUser]bool{}
	for du, err := range f.client.ListIDs(ctx, 300) {
		require.NoError(t, err)
		require.False(t, got[du], "pair %v yielded twice", du)
		got[du] = true
	}
	require.Equal(t, want, got)
	require.Equal(t, (len(want)+299)/300, f.rec.count("user/list_id"), "one call per page of 300")

	t.Run("PagesCarryResumableCursors", func(t *testing.T) {
		var first wecom.ListIDsPage
		for p, err := range f.client.ListIDPages(ctx, "", 1000) {
			require.NoError(t, err)
			first = p
			break
		}
		require.NotEmpty(t, first.NextCursor)
		rest := 0
		for p, err := range f.client.ListIDPages(ctx, first.NextCursor, 1000) {
			require.NoError(t, err)
			rest += len(p.DeptUser)
		}
		require.Equal(t, len(want), len(first.DeptUser)+rest)
	})

	t.Run("BadCursorStopsWithError", func(t *testing.T) {
		n := 0
		for _, err := range f.client.ListIDPages(ctx, "!!not-a-cursor", 10) {
			require.Error(t, err)
			require.Equal(t, 40058, errcodeOf(err))
			n++
		}
		require.Equal(t, 1, n)
	})
}
