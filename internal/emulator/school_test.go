package emulator

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSchoolDepartmentAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.SeedUsers = 5 })
	create := func(body map[string]any) map[string]any {
		return e.contact(t, "POST", "/cgi-bin/school/department/create", body)
	}

	var grade, class int
	t.Run("CreateGradeAndClassWithAdmins", func(t *testing.T) {
		// The official create example (API-FACTS §8), with a grade parent for the class.
		r := create(map[string]any{"name": "一年级", "parentid": 1, "type": 2, "register_year": 2018, "standard_grade": 1, "order": 1,
			"department_admins": []any{map[string]any{"userid": "u000001", "type": 2}}})
		requireCode(t, r, 0, "created")
		grade = int(r["id"].(float64))
		r = create(map[string]any{"name": "一班", "parentid": grade, "type": 1, "id": 50,
			"department_admins": []any{map[string]any{"userid": "u000002", "type": 3, "subject": "语文"}, map[string]any{"userid": "u000003", "type": 4, "subject": "数学"}}})
		requireCode(t, r, 0, "created")
		class = int(r["id"].(float64))
		require.Equal(t, 50, class)
	})

	t.Run("ListShowsTreeFromRoot", func(t *testing.T) {
		r := e.contact(t, "GET", "/cgi-bin/school/department/list", nil)
		requireCode(t, r, 0)
		deps := r["departments"].([]any)
		require.Len(t, deps, 3)
		root := deps[0].(map[string]any)
		require.EqualValues(t, 1, root["id"])
		require.EqualValues(t, 0, root["parentid"])
		require.EqualValues(t, SchoolRoot, root["type"])
		g := deps[1].(map[string]any)
		require.EqualValues(t, 2018, g["register_year"])
		require.EqualValues(t, 1, g["standard_grade"])
		c := deps[2].(map[string]any)
		require.Len(t, c["department_admins"], 2)
		for _, k := range []string{"is_graduated", "open_group_chat", "group_chat_id", "order"} {
			require.Contains(t, c, k)
		}
	})

	t.Run("CreateRules", func(t *testing.T) {
		requireCode(t, create(map[string]any{"name": "x", "parentid": 1, "type": 9}), CodeSchoolDeptType)
		requireCode(t, create(map[string]any{"name": "孤班", "parentid": 1, "type": 1}), CodeSchoolParentType)
		requireCode(t, create(map[string]any{"name": "校区", "parentid": grade, "type": 4}), CodeSchoolParentType)
		requireCode(t, create(map[string]any{"name": "x", "parentid": 999, "type": 2}), CodeParentNotFound)
		requireCode(t, create(map[string]any{"name": "a/b", "parentid": 1, "type": 3}), CodeDeptNameChars)
		requireCode(t, create(map[string]any{"name": "二班", "parentid": grade, "type": 1, "department_admins": []any{map[string]any{"userid": "u000001", "type": 1}}}), CodeInvalidParameter)
		requireCode(t, create(map[string]any{"name": "二班", "parentid": grade, "type": 1, "department_admins": []any{map[string]any{"userid": "ghost", "type": 3}}}), CodeUserNotFound)
	})

	t.Run("UpdateAdminsAndNewID", func(t *testing.T) {
		r := e.contact(t, "POST", "/cgi-bin/school/department/update", map[string]any{"id": class, "name": "一(1)班", "new_id": 51,
			"department_admins": []any{map[string]any{"op": 1, "userid": "u000003", "type": 4}, map[string]any{"op": 0, "userid": "u000002", "type": 3, "subject": "英语"}}})
		requireCode(t, r, 0, "updated")
		l := e.contact(t, "GET", "/cgi-bin/school/department/list?id=51", nil)
		c := l["departments"].([]any)[0].(map[string]any)
		require.Equal(t, "一(1)班", c["name"])
		require.Equal(t, []any{map[string]any{"userid": "u000002", "type": 3.0, "subject": "英语"}}, c["department_admins"])
		requireCode(t, e.contact(t, "GET", "/cgi-bin/school/department/list?id=50", nil), CodeDeptNotFound)
		class = 51
		requireCode(t, e.contact(t, "POST", "/cgi-bin/school/department/update", map[string]any{"id": class, "parentid": 1}), CodeSchoolParentType)
	})

	t.Run("GraduateOnlyClasses", func(t *testing.T) {
		requireCode(t, e.contact(t, "POST", "/cgi-bin/school/department/graduate", map[string]any{"department_id": grade}), CodeSchoolDeptType)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/school/department/graduate", map[string]any{"department_id": class}), 0, "ok")
		l := e.contact(t, "GET", "/cgi-bin/school/department/list?id=51", nil)
		require.EqualValues(t, 1, l["departments"].([]any)[0].(map[string]any)["is_graduated"])
	})

	t.Run("DeleteRules", func(t *testing.T) {
		requireCode(t, e.contact(t, "GET", "/cgi-bin/school/department/delete?id=1", nil), CodeDeleteRoot)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/school/department/delete?id="+jsonNumber(grade), nil), CodeDeptHasChildren)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/school/department/delete?id=51", nil), 0, "deleted")
		requireCode(t, e.contact(t, "GET", "/cgi-bin/school/department/delete?id=51", nil), CodeDeptNotFound)
	})

	t.Run("UpgradeInfo", func(t *testing.T) {
		r := e.contact(t, "POST", "/cgi-bin/school/set_upgrade_info", map[string]any{"upgrade_time": 1594090969, "upgrade_switch": 1})
		requireCode(t, r, 0)
		require.Greater(t, r["next_upgrade_time"], float64(e.srv.Now().Unix()))
	})
}
