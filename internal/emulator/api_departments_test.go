package emulator

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDepartmentAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.SeedUsers = 0 })

	t.Run("CreateWithAutoIDAndOfficialShapes", func(t *testing.T) {
		r := e.contact(t, "POST", "/cgi-bin/department/create", map[string]any{"name": "广州研发中心", "name_en": "RDGZ", "parentid": 1, "order": 1})
		requireCode(t, r, 0, "created")
		id := int(r["id"].(float64))
		require.Greater(t, id, 1)
		g := e.contact(t, "GET", "/cgi-bin/department/get?id="+jsonNumber(id), nil)
		requireCode(t, g, 0, "ok")
		dep := g["department"].(map[string]any)
		require.Equal(t, "广州研发中心", dep["name"])
		require.Equal(t, "RDGZ", dep["name_en"])
		require.EqualValues(t, 1, dep["parentid"])
		require.EqualValues(t, 1, dep["order"])
		require.Equal(t, []any{}, dep["department_leader"])

		r = e.contact(t, "POST", "/cgi-bin/department/create", map[string]any{"name": "指定ID", "parentid": 1, "id": 500})
		require.EqualValues(t, 500, r["id"])
	})

	t.Run("ListSimpleListGet", func(t *testing.T) {
		l := e.contact(t, "GET", "/cgi-bin/department/list", nil)
		requireCode(t, l, 0)
		first := l["department"].([]any)[0].(map[string]any)
		require.EqualValues(t, 1, first["id"])
		require.EqualValues(t, 0, first["parentid"])
		require.ElementsMatch(t, []string{"id", "name", "parentid", "order", "department_leader"}, keys(first))
		s := e.contact(t, "GET", "/cgi-bin/department/simplelist?id=1", nil)
		require.Len(t, s["department_id"], len(l["department"].([]any)))
		require.ElementsMatch(t, []string{"id", "parentid", "order"}, keys(s["department_id"].([]any)[0].(map[string]any)))
		requireCode(t, e.contact(t, "GET", "/cgi-bin/department/get?id=4242", nil), CodeDeptNotFound)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/department/list?id=4242", nil), CodeDeptNotFound)
	})

	t.Run("LeadersAreDerivedFromMembers", func(t *testing.T) {
		r := e.contact(t, "POST", "/cgi-bin/department/create", map[string]any{"name": "领导部", "parentid": 1})
		id := int(r["id"].(float64))
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/create", map[string]any{"userid": "boss", "name": "老板", "department": []int{id}, "is_leader_in_dept": []int{1}, "mobile": "13500000001"}), 0)
		g := e.contact(t, "GET", "/cgi-bin/department/get?id="+jsonNumber(id), nil)
		require.Equal(t, []any{"boss"}, g["department"].(map[string]any)["department_leader"])
	})

	t.Run("CreateValidation", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			body map[string]any
			code int
		}{
			{"NameMissing", map[string]any{"parentid": 1}, CodeDeptNameLength},
			{"NameTooLong", map[string]any{"name": "一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十一二三", "parentid": 1}, CodeDeptNameLength},
			{"NameForbiddenCharacter", map[string]any{"name": "a:b", "parentid": 1}, CodeDeptNameChars},
			{"SiblingNameTaken", map[string]any{"name": "广州研发中心", "parentid": 1}, CodeDeptExists},
			{"SiblingNameEnTaken", map[string]any{"name": "另一个", "name_en": "RDGZ", "parentid": 1}, CodeDeptExists},
			{"IDTaken", map[string]any{"name": "新的", "parentid": 1, "id": 500}, CodeDeptExists},
			{"ParentUnknown", map[string]any{"name": "孤儿", "parentid": 9999}, CodeParentNotFound},
			{"ParentMissing", map[string]any{"name": "孤儿"}, CodeParentNotFound},
		} {
			t.Run(tc.name, func(t *testing.T) {
				requireCode(t, e.contact(t, "POST", "/cgi-bin/department/create", tc.body), tc.code)
			})
		}
	})

	t.Run("DepthLimitIs15Levels", func(t *testing.T) {
		parent := 1
		for level := 2; level <= 15; level++ {
			r := e.contact(t, "POST", "/cgi-bin/department/create", map[string]any{"name": "层" + jsonNumber(level), "parentid": parent})
			requireCode(t, r, 0)
			parent = int(r["id"].(float64))
		}
		requireCode(t, e.contact(t, "POST", "/cgi-bin/department/create", map[string]any{"name": "层16", "parentid": parent}), CodeDeptTooDeep)
		// Moving a two-level subtree under level 14 would make it 16 deep.
		a := e.contact(t, "POST", "/cgi-bin/department/create", map[string]any{"name": "子树", "parentid": 1})
		aid := int(a["id"].(float64))
		requireCode(t, e.contact(t, "POST", "/cgi-bin/department/create", map[string]any{"name": "子树的子", "parentid": aid}), 0)
		lvl14 := e.srv.Directory().Snapshot()
		var id14 int
		for _, d := range lvl14.Departments {
			if d.Name == "层14" {
				id14 = d.ID
			}
		}
		requireCode(t, e.contact(t, "POST", "/cgi-bin/department/update", map[string]any{"id": aid, "parentid": id14}), CodeDeptTooDeep)
	})

	t.Run("UpdateMovesAndRejectsCycles", func(t *testing.T) {
		a := int(e.contact(t, "POST", "/cgi-bin/department/create", map[string]any{"name": "A", "parentid": 1})["id"].(float64))
		b := int(e.contact(t, "POST", "/cgi-bin/department/create", map[string]any{"name": "B", "parentid": a})["id"].(float64))
		requireCode(t, e.contact(t, "POST", "/cgi-bin/department/update", map[string]any{"id": a, "parentid": b}), CodeDeptCycle)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/department/update", map[string]any{"id": a, "parentid": a}), CodeDeptCycle)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/department/update", map[string]any{"id": b, "parentid": 1, "name": "B2"}), 0, "updated")
		d, _ := e.srv.Directory().Department(b)
		require.Equal(t, 1, d.ParentID)
		require.Equal(t, "B2", d.Name)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/department/update", map[string]any{"id": 77777, "name": "x"}), CodeDeptNotFound)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/department/update", map[string]any{"id": b, "parentid": 77777}), CodeParentNotFound)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/department/update", map[string]any{"id": b, "name": "A"}), CodeDeptExists)
	})

	t.Run("DeleteRules", func(t *testing.T) {
		p := int(e.contact(t, "POST", "/cgi-bin/department/create", map[string]any{"name": "待删", "parentid": 1})["id"].(float64))
		c := int(e.contact(t, "POST", "/cgi-bin/department/create", map[string]any{"name": "待删子", "parentid": p})["id"].(float64))
		requireCode(t, e.contact(t, "GET", "/cgi-bin/department/delete?id=1", nil), CodeDeleteRoot)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/department/delete?id="+jsonNumber(p), nil), CodeDeptHasChildren)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/create", map[string]any{"userid": "member", "name": "成员", "department": []int{c}, "mobile": "13500000099"}), 0)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/department/delete?id="+jsonNumber(c), nil), CodeDeptHasMembers)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/user/delete?userid=member", nil), 0)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/department/delete?id="+jsonNumber(c), nil), 0, "deleted")
		requireCode(t, e.contact(t, "GET", "/cgi-bin/department/delete?id="+jsonNumber(c), nil), CodeDeptNotFound)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/department/delete?id="+jsonNumber(p), nil), 0)
	})
}

func TestTagAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.SeedUsers = 10 })

	var tagID int
	t.Run("CreateListGetUpdate", func(t *testing.T) {
		r := e.contact(t, "POST", "/cgi-bin/tag/create", map[string]any{"tagname": "UI"})
		requireCode(t, r, 0, "created")
		tagID = int(r["tagid"].(float64))
		require.Equal(t, 13, tagID, "default id is max + 1 (12 seeded tags)")
		r = e.contact(t, "POST", "/cgi-bin/tag/create", map[string]any{"tagname": "指定", "tagid": 100})
		require.EqualValues(t, 100, r["tagid"])
		l := e.contact(t, "GET", "/cgi-bin/tag/list", nil)
		require.Len(t, l["taglist"], 14)
		require.ElementsMatch(t, []string{"tagid", "tagname"}, keys(l["taglist"].([]any)[0].(map[string]any)))
		requireCode(t, e.contact(t, "POST", "/cgi-bin/tag/update", map[string]any{"tagid": tagID, "tagname": "UI design"}), 0, "updated")
		g := e.contact(t, "GET", "/cgi-bin/tag/get?tagid="+jsonNumber(tagID), nil)
		requireCode(t, g, 0)
		require.Equal(t, "UI design", g["tagname"])
		require.Equal(t, []any{}, g["userlist"])
		require.Equal(t, []any{}, g["partylist"])
	})

	t.Run("CreateValidation", func(t *testing.T) {
		requireCode(t, e.contact(t, "POST", "/cgi-bin/tag/create", map[string]any{"tagname": "UI design"}), CodeTagNameExists)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/tag/create", map[string]any{"tagname": ""}), CodeTagNameLength)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/tag/create", map[string]any{"tagname": "一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十一二三"}), CodeTagNameLength)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/tag/update", map[string]any{"tagid": 9999, "tagname": "x"}), CodeInvalidTagID)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/tag/get?tagid=9999", nil), CodeInvalidTagID)
	})

	t.Run("AddTagUsersPartialResult", func(t *testing.T) {
		r := e.contact(t, "POST", "/cgi-bin/tag/addtagusers", map[string]any{"tagid": tagID, "userlist": []string{"u000001", "usr1", "usr2"}, "partylist": []int{1, 4444}})
		requireCode(t, r, 0, "ok")
		require.Equal(t, "usr1|usr2", r["invalidlist"])
		require.Equal(t, []any{4444.0}, r["invalidparty"])
		r = e.contact(t, "POST", "/cgi-bin/tag/addtagusers", map[string]any{"tagid": tagID, "userlist": []string{"u000002"}})
		requireCode(t, r, 0, "ok")
		require.NotContains(t, r, "invalidlist")
		require.NotContains(t, r, "invalidparty")
		g := e.contact(t, "GET", "/cgi-bin/tag/get?tagid="+jsonNumber(tagID), nil)
		require.Len(t, g["userlist"], 2)
		require.ElementsMatch(t, []string{"userid", "name"}, keys(g["userlist"].([]any)[0].(map[string]any)))
		require.Equal(t, []any{1.0}, g["partylist"])
	})

	t.Run("AllInvalidIs40070And40031", func(t *testing.T) {
		requireCode(t, e.contact(t, "POST", "/cgi-bin/tag/addtagusers", map[string]any{"tagid": tagID, "userlist": []string{"ghost"}}), CodeTagAllInvalid, "all list invalid ")
		requireCode(t, e.contact(t, "POST", "/cgi-bin/tag/deltagusers", map[string]any{"tagid": tagID, "userlist": []string{"ghost"}, "partylist": []int{999}}), CodeInvalidUserList, "all list invalid")
	})

	t.Run("DelTagUsers", func(t *testing.T) {
		r := e.contact(t, "POST", "/cgi-bin/tag/deltagusers", map[string]any{"tagid": tagID, "userlist": []string{"u000001", "ghost"}, "partylist": []int{1}})
		requireCode(t, r, 0, "deleted")
		require.Equal(t, "ghost", r["invalidlist"])
		tag, _ := e.srv.Directory().Tag(tagID)
		require.Equal(t, []string{"u000002"}, tag.Users)
		require.Empty(t, tag.Parties)
	})

	t.Run("TooManyInOneCallIs81014", func(t *testing.T) {
		many := make([]string, 1001)
		for i := range many {
			many[i] = "u000001"
		}
		requireCode(t, e.contact(t, "POST", "/cgi-bin/tag/addtagusers", map[string]any{"tagid": tagID, "userlist": many}), CodeTagTooManyInCall)
	})

	t.Run("Delete", func(t *testing.T) {
		requireCode(t, e.contact(t, "GET", "/cgi-bin/tag/delete?tagid="+jsonNumber(tagID), nil), 0, "deleted")
		requireCode(t, e.contact(t, "GET", "/cgi-bin/tag/delete?tagid="+jsonNumber(tagID), nil), CodeInvalidTagID)
	})
}
