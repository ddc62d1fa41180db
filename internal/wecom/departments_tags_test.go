package wecom_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/wecom"
)

func TestDepartments(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := f.client

	t.Run("CRUD", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		id, err := c.CreateDepartment(ctx, wecom.DepartmentCreate{Name: "广州研发中心", NameEn: "RDGZ", ParentID: 1, Order: wecom.Ptr[uint32](10)})
		require.NoError(t, err)
		require.Greater(t, id, 1)
		_, err = c.CreateDepartment(ctx, wecom.DepartmentCreate{Name: "广州研发中心", ParentID: 1})
		require.ErrorIs(t, err, wecom.ErrExists)
		require.Equal(t, 60008, errcodeOf(err))

		require.NoError(t, c.UpdateDepartment(ctx, wecom.DepartmentUpdate{ID: id, Name: wecom.Ptr("深圳研发中心")}))
		d, err := c.GetDepartment(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "深圳研发中心", d.Name)
		require.Equal(t, "RDGZ", d.NameEn)
		require.Equal(t, 1, d.ParentID)

		require.NoError(t, c.DeleteDepartment(ctx, id))
		_, err = c.GetDepartment(ctx, id)
		require.ErrorIs(t, err, wecom.ErrNotFound)
		require.Equal(t, 60003, errcodeOf(err))
	})

	t.Run("DeleteRootRefused", func(t *testing.T) {
		t.Parallel()
		err := c.DeleteDepartment(ctxT(t), 1)
		require.Equal(t, 60007, errcodeOf(err))
	})

	t.Run("ListAndSimpleListAgree", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		full, err := c.ListDepartments(ctx, 0)
		require.NoError(t, err)
		simple, err := c.SimpleListDepartments(ctx, 0)
		require.NoError(t, err)
		require.Len(t, simple, len(full))
		for i := range full {
			require.Equal(t, full[i].ID, simple[i].ID)
			require.Equal(t, full[i].ParentID, simple[i].ParentID)
		}
		_, err = c.SimpleListDepartments(ctx, 424242)
		require.ErrorIs(t, err, wecom.ErrNotFound)
	})
}

func TestNewIPRuleIsNoPermission(t *testing.T) {
	t.Parallel()
	f := setup(t, withEmulator(func(e *emulator.Config) { e.ContactNewIP = true }))
	ctx := ctxT(t)
	_, err := f.client.ListDepartments(ctx, 0)
	require.ErrorIs(t, err, wecom.ErrNoPermission)
	require.Equal(t, 48009, errcodeOf(err))
	_, err = f.client.SimpleListUsers(ctx, 1, false)
	require.ErrorIs(t, err, wecom.ErrNoPermission)
	// The replacements still work.
	_, err = f.client.SimpleListDepartments(ctx, 0)
	require.NoError(t, err)
	_, err = f.client.ListIDsPage(ctx, "", 10)
	require.NoError(t, err)
}

func TestTags(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := f.client

	t.Run("CRUDAndPartialMembers", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		id, err := c.CreateTag(ctx, "乒乓球协会", 0)
		require.NoError(t, err)
		require.Positive(t, id)
		_, err = c.CreateTag(ctx, "乒乓球协会", 0)
		require.ErrorIs(t, err, wecom.ErrExists)
		require.Equal(t, 40071, errcodeOf(err))

		res, err := c.AddTagUsers(ctx, id, []string{"u000001", "u000002", "ghost1", "ghost2"}, []int{1, 98765})
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"ghost1", "ghost2"}, res.InvalidList)
		require.Equal(t, []int{98765}, res.InvalidParty)

		tag, err := c.GetTag(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "乒乓球协会", tag.TagName)
		require.Len(t, tag.UserList, 2)
		require.Equal(t, []int{1}, tag.PartyList)

		_, err = c.AddTagUsers(ctx, id, []string{"ghost3"}, nil)
		require.Equal(t, 40070, errcodeOf(err), "all invalid")

		res, err = c.DelTagUsers(ctx, id, []string{"u000001"}, nil)
		require.NoError(t, err)
		require.Empty(t, res.InvalidList)

		require.NoError(t, c.UpdateTag(ctx, id, "羽毛球协会"))
		tags, err := c.ListTags(ctx)
		require.NoError(t, err)
		require.Contains(t, tags, wecom.TagSummary{TagID: id, TagName: "羽毛球协会"})

		require.NoError(t, c.DeleteTag(ctx, id))
		_, err = c.GetTag(ctx, id)
		require.ErrorIs(t, err, wecom.ErrNotFound)
		require.Equal(t, 40068, errcodeOf(err))
	})

	t.Run("CreateWithID", func(t *testing.T) {
		t.Parallel()
		id, err := c.CreateTag(ctxT(t), "指定ID", 777)
		require.NoError(t, err)
		require.Equal(t, 777, id)
	})
}

func TestLinkedCorp(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// Linked-corp APIs are for self-built apps, not the contacts-sync secret.
	c := f.newClient(t, func(cfg *wecom.Config) { cfg.Secret = testApp })
	ctx := ctxT(t)
	_, err := f.client.LinkedPermissions(ctx)
	require.ErrorIs(t, err, wecom.ErrNoPermission)

	perm, err := c.LinkedPermissions(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, perm.UserIDs)
	require.Equal(t, []string{testLinked + "/1"}, perm.DepartmentIDs)

	u, err := c.GetLinkedUser(ctx, perm.UserIDs[0])
	require.NoError(t, err)
	require.Equal(t, testLinked, u.CorpID)
	require.NotEmpty(t, u.Department)
	require.Contains(t, u.Department[0], testLinked+"/")

	su, err := c.SimpleListLinkedUsers(ctx, testLinked+"/1", true)
	require.NoError(t, err)
	require.Len(t, su, len(perm.UserIDs))
	lu, err := c.ListLinkedUsers(ctx, testLinked+"/1", true)
	require.NoError(t, err)
	require.Len(t, lu, len(su))

	deps, err := c.ListLinkedDepartments(ctx, testLinked+"/1")
	require.NoError(t, err)
	require.Equal(t, "1", deps[0].DepartmentID)
	require.Equal(t, "0", deps[0].ParentID)

	_, err = c.GetLinkedUser(ctx, testLinked+"/nobody")
	require.ErrorIs(t, err, wecom.ErrNotFound)
	_, err = c.ListLinkedDepartments(ctx, "otherCorp/1")
	require.Error(t, err)
	require.NotZero(t, errcodeOf(err))
}

func TestSchoolDepartments(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := f.client
	ctx := ctxT(t)

	grade, err := c.CreateSchoolDepartment(ctx, wecom.SchoolDepartmentCreate{Name: "一年级", ParentID: 1, Type: wecom.SchoolGrade,
		RegisterYear: 2024, StandardGrade: 1, Order: wecom.Ptr[uint32](1)})
	require.NoError(t, err)
	class, err := c.CreateSchoolDepartment(ctx, wecom.SchoolDepartmentCreate{Name: "一班", ParentID: grade, ID: 50, Type: wecom.SchoolClass,
		DepartmentAdmins: []wecom.SchoolAdmin{{UserID: "u000001", Type: 3, Subject: "语文"}}})
	require.NoError(t, err)
	require.Equal(t, 50, class)

	_, err = c.CreateSchoolDepartment(ctx, wecom.SchoolDepartmentCreate{Name: "二班", ParentID: 1, Type: wecom.SchoolClass})
	require.Equal(t, 65015, errcodeOf(err), "a class must be under a grade")

	require.NoError(t, c.UpdateSchoolDepartment(ctx, wecom.SchoolDepartmentUpdate{ID: class, Name: wecom.Ptr("1班"),
		DepartmentAdmins: []wecom.SchoolAdminOp{{Op: 0, UserID: "u000002", Type: 4, Subject: "数学"}}}))
	require.NoError(t, c.GraduateSchoolClass(ctx, class))
	require.Equal(t, 65007, errcodeOf(c.GraduateSchoolClass(ctx, grade)))

	deps, err := c.ListSchoolDepartments(ctx, 0)
	require.NoError(t, err)
	require.Len(t, deps, 3)
	require.Equal(t, wecom.SchoolRoot, deps[0].Type)
	last := deps[2]
	require.Equal(t, "1班", last.Name)
	require.Equal(t, 1, last.IsGraduated)
	require.Len(t, last.DepartmentAdmins, 2)

	next, err := c.SetSchoolUpgradeInfo(ctx, 1594090969, true)
	require.NoError(t, err)
	require.Positive(t, next)

	require.Equal(t, 60006, errcodeOf(c.DeleteSchoolDepartment(ctx, grade)))
	require.NoError(t, c.DeleteSchoolDepartment(ctx, class))
	require.NoError(t, c.DeleteSchoolDepartment(ctx, grade))
	require.ErrorIs(t, c.DeleteSchoolDepartment(ctx, grade), wecom.ErrNotFound)
}
