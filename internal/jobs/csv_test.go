package jobs_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/jobs"
)

func TestParseUsersCSV(t *testing.T) {
	t.Parallel()

	t.Run("ReadsTheOfficialTemplateWithBOM", func(t *testing.T) {
		t.Parallel()
		data := "\ufeff姓名,帐号,手机号,邮箱,所在部门,职位,性别,是否部门内领导,排序,别名,地址,座机,禁用,禁用项说明：(0-启用;1-禁用)\n" +
			"张三,zhangsan,13800000001,zs@example.com,1;2,工程师,男,1;0,10;20,三,北京,010-1,0,\n"
		f, probs, err := jobs.ParseUsersCSV([]byte(data))
		require.NoError(t, err)
		require.Empty(t, probs)
		require.Len(t, f.Rows, 1)
		r := f.Rows[0]
		require.Equal(t, 2, r.Line)
		require.Equal(t, "zhangsan", r.UserID)
		require.Equal(t, []int64{1, 2}, r.Departments)
		require.Equal(t, "1", r.Gender)
		require.Equal(t, []int{1, 0}, r.IsLeader)
		require.Equal(t, []uint32{10, 20}, r.Order)
		require.NotNil(t, r.Disabled)
		require.False(t, *r.Disabled)
		require.Equal(t, jobs.UserColumns, f.Columns)
	})

	t.Run("ReadsEnglishColumnsInAnyOrder", func(t *testing.T) {
		t.Parallel()
		data := "department,userid,name,email\n3,lisi,李四,lisi@example.com\n"
		f, probs, err := jobs.ParseUsersCSV([]byte(data))
		require.NoError(t, err)
		require.Empty(t, probs)
		require.Equal(t, []string{jobs.ColName, jobs.ColUserID, jobs.ColEmail, jobs.ColDepartment}, f.Columns)
		require.Equal(t, "lisi", f.Rows[0].UserID)
		require.Equal(t, []int64{3}, f.Rows[0].Departments)
	})

	t.Run("ReportsCellProblemsWithLines", func(t *testing.T) {
		t.Parallel()
		data := "userid,name,mobile,department,gender,disabled,order,unknowncol\n" +
			"a,A,13800000001,x,男,0,1\n" +
			"\n" + // blank lines are skipped but counted
			"b,B,13800000002,1,other,maybe,-1\n"
		_, probs, err := jobs.ParseUsersCSV([]byte(data))
		require.NoError(t, err)
		var got []string
		for _, p := range probs {
			got = append(got, p.String())
		}
		require.Equal(t, []string{
			"line 1: unknowncol: unknown column (extension attributes are not supported by this importer)",
			`line 2: department: department "x" is not a department id`,
			`line 4: gender: gender "other" must be 男/女, 1/2 or male/female`,
			`line 4: disabled: disabled "maybe" must be 0 or 1`,
			`line 4: order: order "-1" must be a number from 0 to 4294967295`,
		}, got)
	})

	t.Run("ReportsMissingRequiredColumns", func(t *testing.T) {
		t.Parallel()
		_, probs, err := jobs.ParseUsersCSV([]byte("姓名,职位\n张三,工程师\n"))
		require.NoError(t, err)
		var cols []string
		for _, p := range probs {
			require.Equal(t, 1, p.Line)
			cols = append(cols, p.Column)
		}
		require.Equal(t, []string{"userid", "department", "mobile/email"}, cols)
	})

	t.Run("RejectsNonUTF8", func(t *testing.T) {
		t.Parallel()
		_, _, err := jobs.ParseUsersCSV([]byte("userid,name\n\xff\xfe,x\n"))
		require.ErrorContains(t, err, "UTF-8")
	})

	t.Run("WritesTheOfficialTemplateBack", func(t *testing.T) {
		t.Parallel()
		f, probs, err := jobs.ParseUsersCSV([]byte("userid,name,mobile,department,gender\nzs,张三,13800000001,1;2,female\n"))
		require.NoError(t, err)
		require.Empty(t, probs)
		var buf bytes.Buffer
		require.NoError(t, jobs.WriteUsersCSV(&buf, f.Columns, f.Rows))
		require.Equal(t, "姓名,帐号,手机号,所在部门,性别\n张三,zs,13800000001,1;2,2\n", buf.String())
	})
}

func TestValidateUsers(t *testing.T) {
	t.Parallel()
	e := setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}})
	ctx := context.Background()
	e.exportAll(t)
	var owner, ownerMobile, ownerEmail string
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT userid, mobile, email FROM wecom.users WHERE corp_id = $1 AND mobile <> ''
		AND email <> '' ORDER BY userid LIMIT 1`, testCorp).Scan(&owner, &ownerMobile, &ownerEmail))
	view := jobs.NewMirrorView(e.pool)

	t.Run("ReportsEveryProblemClassWithItsLine", func(t *testing.T) {
		t.Parallel()
		long := strings.Repeat("名", 65)
		data := "userid,name,mobile,email,department,is_leader,order\n" +
			"ok_user,好,13911110001,ok@example.com,1,,\n" + // 2 fine
			",无号,13911110002,,1,,\n" + // 3 empty userid
			"_bad,坏,13911110003,,1,,\n" + // 4 first char
			"bad user,坏,13911110004,,1,,\n" + // 5 space
			strings.Repeat("x", 65) + ",长,13911110005,,1,,\n" + // 6 too long
			"OK_USER,重复,13911110006,,1,,\n" + // 7 duplicate (case-insensitive)
			"dupmobile,手机,13911110001,,1,,\n" + // 8 duplicate mobile in file
			"dupemail,邮箱,,OK@example.com,1,,\n" + // 9 duplicate email in file
			"takenmobile,占用,`" + ownerMobile + "`,,1,,\n" + // 10 mobile owned in mirror
			"takenemail,占用,,`" + ownerEmail + "`,1,,\n" + // 11 email owned in mirror
			"nodept,无部门,13911110011,,99999,,\n" + // 12 unknown department
			"nocontact,无联系,,,1,,\n" + // 13 new member without mobile/email
			"noname,,13911110013,,1,,\n" + // 14 empty name
			"longname," + long + ",13911110014,,1,,\n" + // 15 name too long
			"leaders,领导,13911110015,,1,1;0,\n" + // 16 is_leader arity
			"badmail,坏邮箱,,not-an-email,1,,\n" + // 17 invalid email
			"nodepts,空部门,13911110017,,,,\n" // 18 no department
		data = strings.ReplaceAll(data, "`", "")
		f, probs, err := jobs.ParseUsersCSV([]byte(data))
		require.NoError(t, err)
		require.Empty(t, probs)
		probs, err = jobs.ValidateUsers(ctx, view, testCorp, f, jobs.UserCheckOptions{})
		require.NoError(t, err)
		lines := map[int][]string{}
		for _, p := range probs {
			lines[p.Line] = append(lines[p.Line], p.Column)
		}
		require.NotContains(t, lines, 2)
		require.Equal(t, []string{"userid"}, lines[3])
		require.Equal(t, []string{"userid"}, lines[4])
		require.Equal(t, []string{"userid"}, lines[5])
		require.Equal(t, []string{"userid"}, lines[6])
		require.Equal(t, []string{"userid"}, lines[7])
		require.Equal(t, []string{"mobile"}, lines[8])
		require.Equal(t, []string{"email"}, lines[9])
		require.Equal(t, []string{"mobile"}, lines[10])
		require.Equal(t, []string{"email"}, lines[11])
		require.Equal(t, []string{"department"}, lines[12])
		require.Equal(t, []string{"mobile/email"}, lines[13])
		require.Equal(t, []string{"name"}, lines[14])
		require.Equal(t, []string{"name"}, lines[15])
		require.Equal(t, []string{"is_leader"}, lines[16])
		require.Equal(t, []string{"email"}, lines[17])
		require.Equal(t, []string{"department"}, lines[18])
	})

	t.Run("AcceptsAMemberKeepingItsOwnContacts", func(t *testing.T) {
		t.Parallel()
		f := &jobs.UserFile{Columns: jobs.UserColumns, Rows: []jobs.UserRow{{Line: 2, UserID: strings.ToUpper(owner), Name: "x",
			Mobile: ownerMobile, Email: ownerEmail, Departments: []int64{1}}}}
		probs, err := jobs.ValidateUsers(ctx, view, testCorp, f, jobs.UserCheckOptions{})
		require.NoError(t, err)
		require.Empty(t, probs)
	})

	t.Run("KnowsDepartmentsOfTheSameImport", func(t *testing.T) {
		t.Parallel()
		f := &jobs.UserFile{Columns: jobs.UserColumns, Rows: []jobs.UserRow{{Line: 2, UserID: "newbie", Name: "x",
			Mobile: "13922220000", Departments: []int64{777}}}}
		probs, err := jobs.ValidateUsers(ctx, view, testCorp, f, jobs.UserCheckOptions{ExtraDepartments: []int64{777}})
		require.NoError(t, err)
		require.Empty(t, probs)
	})
}

func TestValidateDepartments(t *testing.T) {
	t.Parallel()
	rows, probs, err := jobs.ParseDepartmentsCSV([]byte("部门名称,部门ID,父部门ID,排序\n" +
		"总部,1,0,\n" + // 2 root
		"研发,2,1,10\n" + // 3
		"研发,3,1,\n" + // 4 sibling name clash
		"环A,4,5,\n" + // 5 cycle 4->5->4
		"环B,5,4,\n" + // 6 cycle
		"孤儿,6,42,\n" + // 7 unknown parent
		"坏:名,7,1,\n" + // 8 bad char
		"重复,2,1,\n" + // 9 duplicate id
		",8,1,\n")) // 10 empty name
	require.NoError(t, err)
	require.Empty(t, probs)
	probs = jobs.ValidateDepartments(rows)
	lines := map[int]bool{}
	for _, p := range probs {
		lines[p.Line] = true
	}
	for _, l := range []int{4, 5, 6, 7, 8, 9, 10} {
		require.True(t, lines[l], "line %d: %v", l, probs)
	}
	require.False(t, lines[2] || lines[3], "%v", probs)
}

func TestDeletionGuard(t *testing.T) {
	t.Parallel()
	plan := func(del, members int) *jobs.Plan { return &jobs.Plan{Delete: del, Members: members} }
	def := jobs.DeletionGuard{MaxShare: jobs.DefaultMaxDeleteShare, AllowDeletes: -1}
	require.NoError(t, def.Check(plan(10, 100)), "10% is allowed")
	err := def.Check(plan(11, 100))
	require.ErrorContains(t, err, "--allow-deletes 11")
	require.NoError(t, jobs.DeletionGuard{MaxShare: 0.1, AllowDeletes: 11}.Check(plan(11, 100)))
	require.ErrorContains(t, jobs.DeletionGuard{MaxShare: 0.1, AllowDeletes: 5}.Check(plan(6, 1000)), "more than --allow-deletes 5")
	require.NoError(t, jobs.DeletionGuard{MaxShare: 0.5, AllowDeletes: -1}.Check(plan(50, 100)))
	require.NoError(t, def.Check(plan(0, 0)))
}
