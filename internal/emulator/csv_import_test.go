package emulator

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

const fullMemberHeader = "姓名,帐号,手机号,邮箱,所在部门,职位,性别,是否部门内领导,排序,别名,地址,座机,禁用,禁用项说明：(0-启用;1-禁用)"

func requireAPICode(t *testing.T, err error, code int) {
	t.Helper()
	var ae *APIError
	require.True(t, errors.As(err, &ae), "want *APIError %d, got %v", code, err)
	require.Equal(t, code, ae.Code, "%v", err)
}

func TestParseMemberCSV(t *testing.T) {
	t.Parallel()

	t.Run("ParsesTheOfficialTemplateWithBOM", func(t *testing.T) {
		rows, err := parseMemberCSV([]byte("\xef\xbb\xbf" + memberCSV(fullMemberHeader,
			"张三,zhangsan,13800000001,zs@example.com,1;2,工程师,男,1;0,10;20,小张,广州,020-1234,0,",
			"李四,lisi,,ls@example.com,3,,女,,,,,,1,")))
		require.NoError(t, err)
		require.Len(t, rows, 2)
		zs := rows[0]
		require.Nil(t, zs.err)
		require.Equal(t, "zhangsan", zs.in.UserID)
		require.Equal(t, "张三", *zs.in.Name)
		require.Equal(t, "13800000001", *zs.in.Mobile)
		require.Equal(t, []int{1, 2}, *zs.in.Department)
		require.Equal(t, []int{1, 0}, *zs.in.IsLeaderInDept)
		require.Equal(t, []uint32{10, 20}, *zs.in.Order)
		require.Equal(t, FlexString("1"), *zs.in.Gender)
		require.Equal(t, "小张", *zs.in.Alias)
		require.Equal(t, "020-1234", *zs.in.Telephone)
		require.EqualValues(t, 1, *zs.in.Enable)
		require.Empty(t, zs.attrs, "the 禁用项说明 column is ignored")
		ls := rows[1]
		require.Equal(t, FlexString("2"), *ls.in.Gender)
		require.EqualValues(t, 0, *ls.in.Enable, "禁用=1 disables")
		require.Equal(t, "", *ls.in.Mobile, "an empty cell clears")
		require.Nil(t, ls.in.IsLeaderInDept, "an empty 是否部门内领导 is not given")
		require.Nil(t, ls.in.Order)
	})
	t.Run("ParsesWithoutBOM", func(t *testing.T) {
		rows, err := parseMemberCSV([]byte(memberCSV("姓名,帐号,手机号,所在部门", "张三,zhangsan,13800000001,1")))
		require.NoError(t, err)
		require.Len(t, rows, 1)
	})
	t.Run("MinimalColumnSetsGiveOnlyThoseFields", func(t *testing.T) {
		rows, err := parseMemberCSV([]byte(memberCSV("帐号,姓名,邮箱,所在部门", "zs,张三,zs@example.com,1")))
		require.NoError(t, err)
		in := rows[0].in
		require.NotNil(t, in.Email)
		require.Nil(t, in.Mobile)
		require.Nil(t, in.Position)
		require.Nil(t, in.Alias)
		require.Nil(t, in.Gender)
	})
	t.Run("ExtraColumnsAreTextAttributes", func(t *testing.T) {
		rows, err := parseMemberCSV([]byte(memberCSV("姓名,帐号,手机号,所在部门,工号", "张三,zs,13800000001,1,E001")))
		require.NoError(t, err)
		require.Equal(t, []ExtAttrItem{{Type: 0, Name: "工号", Text: &ExtText{Value: "E001"}}}, rows[0].attrs)
	})
	t.Run("OneOrderForSeveralDepartments", func(t *testing.T) {
		rows, err := parseMemberCSV([]byte(memberCSV("姓名,帐号,手机号,所在部门,排序", "张三,zs,13800000001,2;3,5")))
		require.NoError(t, err)
		require.Equal(t, []uint32{5, 5}, *rows[0].in.Order)
	})
	t.Run("BadCellsFailTheirRowOnly", func(t *testing.T) {
		rows, err := parseMemberCSV([]byte(memberCSV("姓名,帐号,手机号,所在部门,性别,禁用",
			"a,a1,13800000001,1,未知,",
			"b,b1,13800000002,x,,",
			"c,c1,13800000003,1,,2",
			"d,,13800000004,1,,",
			"e,e1,13800000005,1,男,0")))
		require.NoError(t, err)
		require.Len(t, rows, 5)
		require.Equal(t, CodeInvalidParameter, rows[0].err.Code)
		require.Equal(t, CodeInvalidDeptList, rows[1].err.Code)
		require.Equal(t, CodeInvalidParameter, rows[2].err.Code)
		require.Equal(t, CodeMissingUserID, rows[3].err.Code)
		require.Nil(t, rows[4].err)
	})
	t.Run("RejectsBadFiles", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			file string
			code int
		}{
			{"Empty", "", CodeInvalidImportFile},
			{"OnlyBOM", "\xef\xbb\xbf", CodeInvalidImportFile},
			{"HeaderOnly", "姓名,帐号,手机号,所在部门\n", CodeInvalidImportFile},
			{"NotUTF8", "\xd0\xd5\xc3\xfb,\xd5\xca\xba\xc5\nx,y\n", CodeInvalidImportFile},
			{"NoName", memberCSV("帐号,手机号,所在部门", "zs,13800000001,1"), CodeInvalidImportFile},
			{"NoUserID", memberCSV("姓名,手机号,所在部门", "张三,13800000001,1"), CodeInvalidImportFile},
			{"NoDepartment", memberCSV("姓名,帐号,手机号", "张三,zs,13800000001"), CodeInvalidImportFile},
			{"NoMobileNorEmail", memberCSV("姓名,帐号,所在部门", "张三,zs,1"), CodeInvalidImportFile},
			{"DuplicateColumn", memberCSV("姓名,帐号,手机号,所在部门,姓名", "张三,zs,13800000001,1,x"), CodeInvalidImportFile},
			{"DuplicateUserIDAnyCase", memberCSV("姓名,帐号,手机号,所在部门", "张三,zs,13800000001,1", "李四,ZS,13800000002,1"), CodeDupUserID},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := parseMemberCSV([]byte(tc.file))
				requireAPICode(t, err, tc.code)
			})
		}
	})
}

func TestParsePartyCSV(t *testing.T) {
	t.Parallel()

	t.Run("ParsesTheTemplate", func(t *testing.T) {
		rows, err := parsePartyCSV([]byte("\xef\xbb\xbf部门名称,部门ID,父部门ID,排序\n测试组,2,1,2\n子组,3,2,\n根,1,0,0\n"))
		require.NoError(t, err)
		require.Equal(t, []partyRow{
			{id: 2, parent: 1, name: "测试组", order: 2, hasOrder: true},
			{id: 3, parent: 2, name: "子组"},
			{id: 1, parent: 0, name: "根"},
		}, rows)
	})
	t.Run("OrderColumnIsOptional", func(t *testing.T) {
		rows, err := parsePartyCSV([]byte("部门ID,部门名称,父部门ID\n2,测试组,1\n"))
		require.NoError(t, err)
		require.False(t, rows[0].hasOrder)
	})
	t.Run("RejectsBadFiles", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			file string
			code int
		}{
			{"Empty", "", CodeInvalidImportFile},
			{"HeaderOnly", "部门名称,部门ID,父部门ID,排序\n", CodeInvalidImportFile},
			{"NoParentColumn", "部门名称,部门ID\nA,2\n", CodeInvalidImportFile},
			{"NoNameColumn", "部门ID,父部门ID\n2,1\n", CodeInvalidImportFile},
			{"DuplicateID", "部门名称,部门ID,父部门ID\nA,2,1\nB,2,1\n", CodeDupPartyID},
			{"SiblingNameClash", "部门名称,部门ID,父部门ID\nA,2,1\nA,3,1\n", CodeDupSiblingName},
			{"EmptyID", "部门名称,部门ID,父部门ID\nA,,1\n", CodeInvalidTree},
			{"EmptyName", "部门名称,部门ID,父部门ID\n,2,1\n", CodeInvalidTree},
			{"UnknownParent", "部门名称,部门ID,父部门ID\nA,2,9\n", CodeInvalidTree},
			{"Cycle", "部门名称,部门ID,父部门ID\nA,2,3\nB,3,2\n", CodeInvalidTree},
			{"RootWithParent", "部门名称,部门ID,父部门ID\nR,1,2\nA,2,1\n", CodeInvalidTree},
			{"NonRootWithoutParent", "部门名称,部门ID,父部门ID\nA,2,0\n", CodeInvalidTree},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := parsePartyCSV([]byte(tc.file))
				requireAPICode(t, err, tc.code)
			})
		}
	})
}

func TestDeletionGuard(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		del, cur int
		blocked  bool
	}{
		{51, 100, true},    // > 50 and > 20%
		{49, 100, false},   // < 50 and <= 80%
		{50, 100, false},   // 50 counts as the small case: 50% <= 80%
		{60, 300, false},   // > 50 but exactly 20%
		{61, 300, true},    // > 50 and 20.3%
		{40, 50, false},    // exactly 80%
		{41, 50, true},     // 82%
		{50, 50, true},     // everyone
		{1, 1, true},       // 100%
		{0, 10, false},     // nothing to delete
		{400, 2000, false}, // exactly 20%
	} {
		err := deletionGuard(tc.del, tc.cur)
		if tc.blocked {
			requireAPICode(t, err, CodeDeleteProtection)
		} else {
			require.NoError(t, err, "%d of %d", tc.del, tc.cur)
		}
	}
}
