package emulator

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLinkedCorpAPI(t *testing.T) {
	t.Parallel()
	e := setup(t)
	app := e.tok[SecretApp]

	t.Run("PermListNamesLinkedMembersAndRoot", func(t *testing.T) {
		r := e.do(t, "POST", "/cgi-bin/linkedcorp/agent/get_perm_list", app, nil)
		requireCode(t, r, 0, "ok")
		require.Contains(t, r["userids"], "wwlinked/u000001")
		require.Equal(t, []any{"wwlinked/1"}, r["department_ids"])
	})

	t.Run("UserGet", func(t *testing.T) {
		r := e.do(t, "POST", "/cgi-bin/linkedcorp/user/get", app, map[string]any{"userid": "wwlinked/u000001"})
		requireCode(t, r, 0)
		info := r["user_info"].(map[string]any)
		require.Equal(t, "u000001", info["userid"])
		require.Equal(t, "wwlinked", info["corpid"])
		require.Equal(t, []any{"wwlinked/1"}, info["department"])
		for _, k := range []string{"name", "mobile", "telephone", "email", "position", "extattr"} {
			require.Contains(t, info, k)
		}
		attr := info["extattr"].(map[string]any)["attrs"].([]any)[0].(map[string]any)
		require.Equal(t, "工号", attr["name"])
		require.NotEmpty(t, attr["value"])
		requireCode(t, e.do(t, "POST", "/cgi-bin/linkedcorp/user/get", app, map[string]any{"userid": "wwlinked/ghost"}), CodeUserNotFound)
		requireCode(t, e.do(t, "POST", "/cgi-bin/linkedcorp/user/get", app, map[string]any{"userid": "nocorp"}), CodeInvalidUserID)
	})

	t.Run("SimpleListAndListFetchChild", func(t *testing.T) {
		direct := e.do(t, "POST", "/cgi-bin/linkedcorp/user/simplelist", app, map[string]any{"department_id": "wwlinked/1"})
		requireCode(t, direct, 0)
		all := e.do(t, "POST", "/cgi-bin/linkedcorp/user/simplelist", app, map[string]any{"department_id": "wwlinked/1", "fetch_child": true})
		require.Len(t, all["userlist"], 12)
		require.Less(t, len(direct["userlist"].([]any)), 12)
		first := all["userlist"].([]any)[0].(map[string]any)
		require.ElementsMatch(t, []string{"userid", "name", "department", "corpid"}, keys(first))
		full := e.do(t, "POST", "/cgi-bin/linkedcorp/user/list", app, map[string]any{"department_id": "wwlinked/1", "fetch_child": 1})
		require.Len(t, full["userlist"], 12)
		require.Contains(t, full["userlist"].([]any)[0], "mobile")
		requireCode(t, e.do(t, "POST", "/cgi-bin/linkedcorp/user/list", app, map[string]any{"department_id": "wwlinked/999"}), CodeDeptNotFound)
	})

	t.Run("DepartmentListUsesStringIDs", func(t *testing.T) {
		r := e.do(t, "POST", "/cgi-bin/linkedcorp/department/list", app, map[string]any{"department_id": "wwlinked/1"})
		requireCode(t, r, 0)
		root := r["department_list"].([]any)[0].(map[string]any)
		require.Equal(t, "1", root["department_id"])
		require.Equal(t, "0", root["parentid"])
		require.NotEmpty(t, root["department_name"])
		require.IsType(t, 0.0, root["order"])
	})

	t.Run("ContactSecretIsRefused", func(t *testing.T) {
		requireCode(t, e.contact(t, "POST", "/cgi-bin/linkedcorp/agent/get_perm_list", nil), CodeNoPermission)
	})
}
