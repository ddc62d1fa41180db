package emulator

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUserAPI(t *testing.T) {
	t.Parallel()
	e := setup(t)

	t.Run("CreateGetUpdateDeleteWithOfficialShapes", func(t *testing.T) {
		// Request from the official user/create example (API-FACTS §3.2).
		r := e.contact(t, "POST", "/cgi-bin/user/create", map[string]any{
			"userid": "zhangsan", "name": "张三", "alias": "jackzhang", "mobile": "+86 13800000000",
			"department": []int{1, 2}, "order": []int{10, 40}, "position": "产品经理", "gender": "1",
			"email": "zhangsan@gzdev.com", "biz_mail": "zhangsan@qyycs2.wecom.work", "is_leader_in_dept": []int{1, 0},
			"direct_leader": []string{"u000001"}, "enable": 1, "telephone": "020-123456", "address": "广州市海珠区新港中路",
			"main_department": 2,
			"extattr": map[string]any{"attrs": []any{
				map[string]any{"type": 0, "name": "文本名称", "text": map[string]any{"value": "文本"}},
				map[string]any{"type": 1, "name": "网页名称", "web": map[string]any{"url": "http://www.test.com", "title": "标题"}},
			}},
		})
		requireCode(t, r, 0, "created")
		g := e.contact(t, "GET", "/cgi-bin/user/get?userid=zhangsan", nil)
		requireCode(t, g, 0, "ok")
		require.Equal(t, "张三", g["name"])
		require.Equal(t, []any{1.0, 2.0}, g["department"])
		require.Equal(t, []any{10.0, 40.0}, g["order"])
		require.Equal(t, []any{1.0, 0.0}, g["is_leader_in_dept"])
		require.Equal(t, []any{"u000001"}, g["direct_leader"])
		require.EqualValues(t, 2, g["main_department"])
		require.Equal(t, "1", g["gender"])
		require.Equal(t, "+86 13800000000", g["mobile"])
		require.EqualValues(t, 4, g["status"], "a new member is not activated yet")
		require.NotEmpty(t, g["open_userid"])
		attrs := g["extattr"].(map[string]any)["attrs"].([]any)
		require.Len(t, attrs, 2)
		require.Equal(t, "标题", attrs[1].(map[string]any)["web"].(map[string]any)["title"])
		for _, k := range []string{"avatar", "thumb_avatar", "telephone", "alias", "address", "biz_mail", "qr_code", "external_profile", "position"} {
			require.Contains(t, g, k)
		}

		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/update", map[string]any{"userid": "zhangsan", "position": "总监"}), 0, "updated")
		g = e.contact(t, "GET", "/cgi-bin/user/get?userid=zhangsan", nil)
		require.Equal(t, "总监", g["position"])
		require.Equal(t, "张三", g["name"], "unspecified fields are unchanged")

		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/update", map[string]any{"userid": "zhangsan", "new_userid": "zhangsan001"}), 0, "updated")
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/get?userid=zhangsan", nil), CodeUserNotFound)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/get?userid=ZHANGSAN001", nil), 0)

		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/delete?userid=zhangsan001", nil), 0, "deleted")
		gone := e.contact(t, "GET", "/cgi-bin/user/get?userid=zhangsan001", nil)
		requireCode(t, gone, CodeUserNotFound, "userid not found")
		require.Equal(t, []any{}, gone["department"], "error answers keep the list fields, empty")
		require.Equal(t, []any{}, gone["direct_leader"])
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/delete?userid=zhangsan001", nil), CodeUserNotFound)
	})

	t.Run("BatchDeleteIsAllOrNothing", func(t *testing.T) {
		for _, id := range []string{"bd1", "bd2"} {
			requireCode(t, e.contact(t, "POST", "/cgi-bin/user/create", newUser(id, "1390000"+map[string]string{"bd1": "0001", "bd2": "0002"}[id])), 0)
		}
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/batchdelete", map[string]any{"useridlist": []string{"bd1", "nobody"}}), CodeUserNotFound)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/get?userid=bd1", nil), 0)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/batchdelete", map[string]any{"useridlist": []string{"bd1", "bd2"}}), 0, "deleted")
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/get?userid=bd2", nil), CodeUserNotFound)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/batchdelete", map[string]any{"useridlist": []string{}}), CodeInvalidUserListSize)
	})

	t.Run("SimpleListAndListWithFetchChild", func(t *testing.T) {
		direct := e.contact(t, "GET", "/cgi-bin/user/simplelist?department_id=1", nil)
		requireCode(t, direct, 0)
		all := e.contact(t, "GET", "/cgi-bin/user/simplelist?department_id=1&fetch_child=1", nil)
		require.Greater(t, len(all["userlist"].([]any)), len(direct["userlist"].([]any)))
		first := all["userlist"].([]any)[0].(map[string]any)
		require.ElementsMatch(t, []string{"userid", "name", "department", "open_userid"}, keys(first))
		full := e.contact(t, "GET", "/cgi-bin/user/list?department_id=1&fetch_child=1", nil)
		require.Len(t, full["userlist"], len(all["userlist"].([]any)))
		require.Contains(t, full["userlist"].([]any)[0], "mobile")
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/list?department_id=99999", nil), CodeDeptNotFound)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/list", nil), CodeInvalidDeptID)
	})

	t.Run("ListIDPagesOneRowPerUserDepartment", func(t *testing.T) {
		want := 0
		for _, u := range e.srv.Directory().Snapshot().Users {
			want += len(u.Departments)
		}
		seen := map[string]bool{}
		cursor := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, 100)
			r := e.contact(t, "POST", "/cgi-bin/user/list_id", map[string]any{"cursor": cursor, "limit": 7})
			requireCode(t, r, 0)
			rows := r["dept_user"].([]any)
			require.LessOrEqual(t, len(rows), 7)
			for _, row := range rows {
				m := row.(map[string]any)
				k := m["userid"].(string) + "/" + jsonNumber(int(m["department"].(float64)))
				require.False(t, seen[k], "duplicate row %s", k)
				seen[k] = true
			}
			cursor = r["next_cursor"].(string)
			if cursor == "" {
				break
			}
		}
		require.Len(t, seen, want)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/list_id", map[string]any{"limit": 10001}), CodeInvalidParameter)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/list_id", map[string]any{"limit": 0}), CodeInvalidParameter)
		requireCode(t, e.do(t, "POST", "/cgi-bin/user/list_id", e.tok[SecretApp], map[string]any{}), CodeNoPermission)
		requireCode(t, e.console(t, "POST", "/cgi-bin/user/list_id", map[string]any{}), CodeNoPermission)
	})

	t.Run("OpenIDConversionRoundTrips", func(t *testing.T) {
		r := e.contact(t, "POST", "/cgi-bin/user/convert_to_openid", map[string]any{"userid": "u000001"})
		requireCode(t, r, 0)
		back := e.contact(t, "POST", "/cgi-bin/user/convert_to_userid", map[string]any{"openid": r["openid"]})
		require.Equal(t, "u000001", back["userid"])
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/convert_to_openid", map[string]any{"userid": "nobody"}), CodeUserNotFound)
	})

	t.Run("AuthSuccActivatesMember", func(t *testing.T) {
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/create", newUser("auth1", "13911110000")), 0)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/authsucc?userid=auth1", nil), 0, "ok")
		require.EqualValues(t, 1, e.contact(t, "GET", "/cgi-bin/user/get?userid=auth1", nil)["status"])
	})

	t.Run("InviteReportsInvalidEntries", func(t *testing.T) {
		r := e.contact(t, "POST", "/cgi-bin/batch/invite", map[string]any{"user": []string{"u000001", "ghost"}, "party": []int{1, 9999}, "tag": []int{1, 777}})
		requireCode(t, r, 0)
		require.Equal(t, []any{"ghost"}, r["invaliduser"])
		require.Equal(t, []any{9999.0}, r["invalidparty"])
		require.Equal(t, []any{777.0}, r["invalidtag"])
		requireCode(t, e.contact(t, "POST", "/cgi-bin/batch/invite", map[string]any{"user": []string{"ghost"}}), 81013)
	})

	t.Run("JoinQRCodeNeedsContactSecret", func(t *testing.T) {
		r := e.contact(t, "GET", "/cgi-bin/corp/get_join_qrcode?size_type=2", nil)
		requireCode(t, r, 0)
		require.NotEmpty(t, r["join_qrcode"])
		requireCode(t, e.do(t, "GET", "/cgi-bin/corp/get_join_qrcode", e.tok[SecretApp], nil), CodeNoPermission)
	})

	t.Run("ActiveStatAndUserIDLookups", func(t *testing.T) {
		r := e.contact(t, "POST", "/cgi-bin/user/get_active_stat", map[string]any{"date": e.srv.Now().Format("2006-01-02")})
		requireCode(t, r, 0)
		require.Contains(t, r, "active_cnt")
		u, _ := e.srv.Directory().User("u000002")
		require.Equal(t, "u000002", e.contact(t, "POST", "/cgi-bin/user/getuserid", map[string]any{"mobile": u.Mobile})["userid"])
		require.Equal(t, "u000002", e.contact(t, "POST", "/cgi-bin/user/get_userid_by_email", map[string]any{"email": u.Email, "email_type": 2})["userid"])
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/getuserid", map[string]any{"mobile": "19999999999"}), 46004)
	})
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestUserValidation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	requireCode(t, e.contact(t, "POST", "/cgi-bin/user/create", newUser("Existing", "13700000001")), 0)

	long := strings.Repeat("长", 65)
	for _, tc := range []struct {
		name   string
		body   map[string]any
		code   int
		errmsg string
	}{
		{"MissingUserID", map[string]any{"name": "x", "department": []int{1}, "mobile": "13700000009"}, CodeMissingUserID, ""},
		{"UserIDBadCharacter", map[string]any{"userid": "a b", "name": "x", "department": []int{1}, "mobile": "13700000009"}, CodeInvalidUserID, ""},
		{"UserIDBadFirstCharacter", map[string]any{"userid": "_abc", "name": "x", "department": []int{1}, "mobile": "13700000009"}, CodeInvalidUserID, ""},
		{"UserIDTooLong", map[string]any{"userid": strings.Repeat("a", 65), "name": "x", "department": []int{1}, "mobile": "13700000009"}, CodeInvalidUserID, ""},
		{"UserIDExistsCaseInsensitive", map[string]any{"userid": "existing", "name": "x", "department": []int{1}, "mobile": "13700000009"}, CodeUserIDExists, "userid existed"},
		{"MobileExists", map[string]any{"userid": "m1", "name": "x", "department": []int{1}, "mobile": "13700000001"}, CodeMobileExists, "mobile existed:Existing"},
		{"MobileInvalid", map[string]any{"userid": "m1", "name": "x", "department": []int{1}, "mobile": "abc"}, CodeInvalidMobile, ""},
		{"EmailExists", map[string]any{"userid": "m1", "name": "x", "department": []int{1}, "email": "u000001@example.com"}, CodeEmailExists, "email existed:u000001"},
		{"EmailInvalid", map[string]any{"userid": "m1", "name": "x", "department": []int{1}, "email": "nope"}, CodeInvalidEmail, ""},
		{"MobileAndEmailEmpty", map[string]any{"userid": "m1", "name": "x", "department": []int{1}}, CodeMobileEmailEmpty, ""},
		{"NameMissing", map[string]any{"userid": "m1", "department": []int{1}, "mobile": "13700000009"}, CodeInvalidName, ""},
		{"NameTooLong", map[string]any{"userid": "m1", "name": long, "department": []int{1}, "mobile": "13700000009"}, CodeInvalidName, ""},
		{"DepartmentUnknown", map[string]any{"userid": "m1", "name": "x", "department": []int{424242}, "mobile": "13700000009"}, CodeInvalidDeptList, ""},
		{"DepartmentEmpty", map[string]any{"userid": "m1", "name": "x", "department": []int{}, "mobile": "13700000009"}, CodeInvalidDeptList, ""},
		{"LeaderFlagsLengthMismatch", map[string]any{"userid": "m1", "name": "x", "department": []int{1}, "is_leader_in_dept": []int{1, 0}, "mobile": "13700000009"}, CodeLeaderCountMismatch, ""},
		{"PositionTooLong", map[string]any{"userid": "m1", "name": "x", "department": []int{1}, "position": strings.Repeat("p", 129), "mobile": "13700000009"}, CodeInvalidPosition, ""},
		{"DirectLeaderUnknown", map[string]any{"userid": "m1", "name": "x", "department": []int{1}, "direct_leader": []string{"ghost"}, "mobile": "13700000009"}, CodeUserNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.contact(t, "POST", "/cgi-bin/user/create", tc.body)
			if tc.errmsg != "" {
				requireCode(t, r, tc.code, tc.errmsg)
			} else {
				requireCode(t, r, tc.code)
			}
		})
	}

	t.Run("UpdateUnknownUserIs60111", func(t *testing.T) {
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/update", map[string]any{"userid": "ghost", "name": "x"}), CodeUserNotFound, "userid not found")
	})
	t.Run("UpdateToTakenMobileIs60104", func(t *testing.T) {
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/update", map[string]any{"userid": "u000002", "mobile": "13700000001"}), CodeMobileExists, "mobile existed:Existing")
	})
	t.Run("RenameToTakenUserIDIs60102", func(t *testing.T) {
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/update", map[string]any{"userid": "u000002", "new_userid": "EXISTING"}), CodeUserIDExists)
	})
	t.Run("MalformedJSONIs47001", func(t *testing.T) {
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/create", `{"userid":`), CodeDataFormat)
	})
	t.Run("AppSecretCannotWrite", func(t *testing.T) {
		requireCode(t, e.do(t, "POST", "/cgi-bin/user/create", e.tok[SecretApp], newUser("m2", "13700000008")), CodeNoPermission)
	})
	t.Run("PostEndpointCalledWithGETActsAsEmptyBody", func(t *testing.T) {
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/create", nil), CodeMissingUserID)
	})
	t.Run("UnknownPathIs404WithEmptyBody", func(t *testing.T) {
		status, body := e.raw(t, "GET", "/cgi-bin/user/nope", e.tok[SecretContact], nil)
		require.Equal(t, http.StatusNotFound, status)
		require.Empty(t, body)
	})
}

func TestSensitiveFieldRules(t *testing.T) {
	t.Parallel()

	t.Run("RestrictedAppGetsNoSensitiveFields", func(t *testing.T) {
		t.Parallel()
		e := setup(t, func(c *Config) { c.AppSensitiveRestricted = true })
		g := e.do(t, "GET", "/cgi-bin/user/get?userid=u000001", e.tok[SecretApp], nil)
		requireCode(t, g, 0)
		for _, k := range []string{"mobile", "email", "biz_mail", "avatar", "thumb_avatar", "gender", "address", "qr_code"} {
			require.NotContains(t, g, k)
		}
		require.Contains(t, e.contact(t, "GET", "/cgi-bin/user/get?userid=u000001", nil), "mobile")
	})
	t.Run("ContactSecretFromNewIPGets48009", func(t *testing.T) {
		t.Parallel()
		e := setup(t, func(c *Config) { c.ContactNewIP = true })
		for _, p := range []string{"/cgi-bin/user/list?department_id=1", "/cgi-bin/user/simplelist?department_id=1", "/cgi-bin/department/list", "/cgi-bin/department/get?id=1"} {
			requireCode(t, e.contact(t, "GET", p, nil), CodeNewIPForbidden)
		}
		requireCode(t, e.contact(t, "GET", "/cgi-bin/department/simplelist", nil), 0)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/list_id", map[string]any{}), 0)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/get?userid=u000001", nil), 0)
	})
}
