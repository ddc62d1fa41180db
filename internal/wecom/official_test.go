package wecom_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/wecom"
)

// The official JSON examples (API-FACTS §3–§6, as the documentation prints them), served
// verbatim by a fake WeCom and read through the client's public calls.
var officialAnswers = map[string]string{
	"gettoken": `{"errcode":0,"errmsg":"ok","access_token":"accesstoken000001","expires_in":7200}`,
	"user/get": `{"errcode":0,"errmsg":"ok","userid":"zhangsan","name":"张三","department":[1,2],"order":[1,2],
		"position":"后台工程师","mobile":"13800000000","gender":"1","email":"zhangsan@gzdev.com","biz_mail":"zhangsan@qyycs2.wecom.work",
		"is_leader_in_dept":[1,0],"direct_leader":["lisi"],"avatar":"http://wx.qlogo.cn/mmopen/ajNVdqHZLLA3WJ6DSZUfiakYe37PKnQhBIeOQBO4czqrnZDS79FH5Wm5m4X69TBicnHFlhiafvDwklOpZeXYQQ2icg/0",
		"thumb_avatar":"http://wx.qlogo.cn/mmopen/ajNVdqHZLLA3WJ6DSZUfiakYe37PKnQhBIeOQBO4czqrnZDS79FH5Wm5m4X69TBicnHFlhiafvDwklOpZeXYQQ2icg/100",
		"telephone":"020-123456","alias":"jackzhang","address":"广州市海珠区新港中路","open_userid":"xxxxxx","main_department":1,
		"extattr":{"attrs":[{"type":0,"name":"文本名称","text":{"value":"文本"}},{"type":1,"name":"网页名称","web":{"url":"http://www.test.com","title":"标题"}}]},
		"status":1,"qr_code":"https://open.work.weixin.qq.com/wwopen/userQRCode?vcode=xxx","external_position":"产品经理",
		"external_profile":{"external_corp_name":"企业简称","wechat_channels":{"nickname":"视频号名称","status":1},
		"external_attr":[{"type":0,"name":"文本名称","text":{"value":"文本"}},{"type":1,"name":"网页名称","web":{"url":"http://www.test.com","title":"标题"}},
		{"type":2,"name":"测试app","miniprogram":{"appid":"wx8bd80126147dFAKE","pagepath":"/index","title":"my miniprogram"}}]}}`,
	"user/simplelist": `{"errcode":0,"errmsg":"ok","userlist":[{"userid":"zhangsan","name":"张三","department":[1,2],"open_userid":"xxxxxx"}]}`,
	"user/list_id": `{"errcode":0,"errmsg":"ok","next_cursor":"xxxxxx",
		"dept_user":[{"userid":"zhangsan","department":1},{"userid":"zhangsan","department":2},{"userid":"lisi","department":2}]}`,
	"user/convert_to_openid": `{"errcode":0,"errmsg":"ok","openid":"oDjGHs-1yCnGrRovBj2yHij5JAAA"}`,
	"batch/invite":           `{"errcode":0,"errmsg":"ok","invaliduser":["UserID1","UserID2"],"invalidparty":[1,2],"invalidtag":[1,2]}`,
	"user/get_active_stat":   `{"errcode":0,"errmsg":"ok","active_cnt":100}`,
	"department/create":      `{"errcode":0,"errmsg":"created","id":2}`,
	"department/list": `{"errcode":0,"errmsg":"ok","department":[{"id":2,"name":"广州研发中心","name_en":"RDGZ","department_leader":["zhangsan","lisi"],"parentid":1,"order":10},
		{"id":3,"name":"邮箱产品部","name_en":"mail","department_leader":["lisi","wangwu"],"parentid":2,"order":40}]}`,
	"department/simplelist": `{"errcode":0,"errmsg":"ok","department_id":[{"id":2,"parentid":1,"order":10},{"id":3,"parentid":2,"order":40}]}`,
	"department/get":        `{"errcode":0,"errmsg":"ok","department":{"id":2,"name":"广州研发中心","name_en":"RDGZ","department_leader":["zhangsan","lisi"],"parentid":1,"order":10}}`,
	"tag/create":            `{"errcode":0,"errmsg":"created","tagid":12}`,
	"tag/get":               `{"errcode":0,"errmsg":"ok","tagname":"乒乓球协会","userlist":[{"userid":"zhangsan","name":"李四"}],"partylist":[2]}`,
	"tag/list":              `{"errcode":0,"errmsg":"ok","taglist":[{"tagid":1,"tagname":"a"},{"tagid":2,"tagname":"b"}]}`,
	"tag/addtagusers":       `{"errcode":0,"errmsg":"ok","invalidlist":"usr1|usr2|usr","invalidparty":[2,4]}`,
	"tag/deltagusers":       `{"errcode":0,"errmsg":"deleted","invalidlist":"usr1|usr2|usr","invalidparty":[2,4]}`,
	"media/upload":          `{"errcode":0,"errmsg":"","type":"image","media_id":"1G6nrLmr5EC3MMb_-zK1dDdzmd0p7cNliYu9V5w7o8K0","created_at":"1380000000"}`,
	"batch/syncuser":        `{"errcode":0,"errmsg":"ok","jobid":"xxxxx"}`,
	"batch/getresult": `{"errcode":0,"errmsg":"ok","status":3,"type":"replace_user","total":3,"percentage":100,
		"result":[{"userid":"lisi","errcode":0,"errmsg":"ok"},{"userid":"wangwu","errcode":60104,"errmsg":"mobile existed"}]}`,
	"export/user": `{"errcode":0,"errmsg":"ok","jobid":"jobid_xxxxxxxxx"}`,
	"export/get_result": `{"errcode":0,"errmsg":"ok","status":2,
		"data_list":[{"url":"https://xxxxx","size":10240,"md5":"xxxxxxxxx"},{"url":"https://xxxxx","size":20480,"md5":"xxxxxxxx"}]}`,
	"linkedcorp/agent/get_perm_list": `{"errcode":0,"errmsg":"ok","userids":["CORPID/USERID"],"department_ids":["LINKEDID/DEPARTMENTID"]}`,
	"linkedcorp/user/get": `{"errcode":0,"errmsg":"ok","user_info":{"userid":"CORPID/USERID","name":"xxx","department":["LINKEDID/1","LINKEDID/2"],
		"mobile":"+86 12345678901","telephone":"10086","email":"xxx@xxx.com","position":"后台开发","corpid":"xxxxxx",
		"extattr":{"attrs":[{"name":"自定义属性(文本)","value":"xxxx","type":0,"text":{"value":"xxx"}},
		{"name":"自定义属性(网页)","type":1,"web":{"url":"https://work.weixin.qq.com/","title":"官网"}}]}}}`,
	"linkedcorp/department/list": `{"errcode":0,"errmsg":"ok","department_list":[{"department_id":"1","department_name":"测试部门1","parentid":"0","order":100000000},
		{"department_id":"2","department_name":"测试部门2","parentid":"1","order":100000000}]}`,
	"school/department/create": `{"errcode":0,"errmsg":"created","id":2}`,
	"school/department/list": `{"errcode":0,"errmsg":"ok","departments":[{"name":"一年级","parentid":1,"id":2,"type":2,"register_year":2018,
		"standard_grade":1,"order":1,"department_admins":[{"userid":"zhangsan","type":1},{"userid":"lisi","type":2}],"is_graduated":0}]}`,
}

func officialServer(t *testing.T, answers map[string]string) *wecom.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := answers[strings.TrimPrefix(r.URL.Path, "/cgi-bin/")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	cfg := testClientConfig(srv.URL)
	c, err := wecom.New(cfg)
	require.NoError(t, err)
	return c
}

func TestOfficialExamples(t *testing.T) {
	t.Parallel()
	c := officialServer(t, officialAnswers)
	ctx := ctxT(t)

	t.Run("UserGet", func(t *testing.T) {
		u, err := c.GetUser(ctx, "zhangsan")
		require.NoError(t, err)
		require.Equal(t, "张三", u.Name)
		require.Equal(t, []int{1, 2}, u.Department)
		require.Equal(t, []uint32{1, 2}, u.Order)
		require.Equal(t, wecom.FlexString("1"), u.Gender)
		require.Equal(t, []int{1, 0}, u.IsLeaderInDept)
		require.Equal(t, "文本", u.ExtAttr.Attrs[0].Text.Value)
		require.Equal(t, "http://www.test.com", u.ExtAttr.Attrs[1].Web.URL)
		require.Equal(t, "视频号名称", u.ExternalProfile.WechatChannels.Nickname)
		require.Equal(t, "wx8bd80126147dFAKE", u.ExternalProfile.ExternalAttr[2].Miniprogram.AppID)
	})

	t.Run("Users", func(t *testing.T) {
		su, err := c.SimpleListUsers(ctx, 1, false)
		require.NoError(t, err)
		require.Equal(t, []wecom.SimpleUser{{UserID: "zhangsan", Name: "张三", Department: []int{1, 2}, OpenUserID: "xxxxxx"}}, su)
		p, err := c.ListIDsPage(ctx, "", 0)
		require.NoError(t, err)
		require.Equal(t, "xxxxxx", p.NextCursor)
		require.Equal(t, wecom.DeptUser{UserID: "lisi", Department: 2}, p.DeptUser[2])
		oid, err := c.ConvertToOpenID(ctx, "zhangsan")
		require.NoError(t, err)
		require.Equal(t, "oDjGHs-1yCnGrRovBj2yHij5JAAA", oid)
		inv, err := c.BatchInvite(ctx, wecom.Invite{User: []string{"UserID1"}})
		require.NoError(t, err)
		require.Equal(t, wecom.InviteResult{InvalidUser: []string{"UserID1", "UserID2"}, InvalidParty: []int{1, 2}, InvalidTag: []int{1, 2}}, inv)
		n, err := c.ActiveStat(ctx, "2020-03-27")
		require.NoError(t, err)
		require.Equal(t, 100, n)
	})

	t.Run("Departments", func(t *testing.T) {
		id, err := c.CreateDepartment(ctx, wecom.DepartmentCreate{Name: "广州研发中心", ParentID: 1})
		require.NoError(t, err)
		require.Equal(t, 2, id)
		list, err := c.ListDepartments(ctx, 0)
		require.NoError(t, err)
		require.Equal(t, []string{"lisi", "wangwu"}, list[1].DepartmentLeader)
		simple, err := c.SimpleListDepartments(ctx, 0)
		require.NoError(t, err)
		require.Equal(t, []wecom.SimpleDepartment{{ID: 2, ParentID: 1, Order: 10}, {ID: 3, ParentID: 2, Order: 40}}, simple)
		d, err := c.GetDepartment(ctx, 2)
		require.NoError(t, err)
		require.Equal(t, "RDGZ", d.NameEn)
	})

	t.Run("Tags", func(t *testing.T) {
		id, err := c.CreateTag(ctx, "乒乓球协会", 0)
		require.NoError(t, err)
		require.Equal(t, 12, id)
		tag, err := c.GetTag(ctx, 12)
		require.NoError(t, err)
		require.Equal(t, &wecom.Tag{TagName: "乒乓球协会", UserList: []wecom.TagUser{{UserID: "zhangsan", Name: "李四"}}, PartyList: []int{2}}, tag)
		for _, f := range []func() (wecom.TagMembersResult, error){
			func() (wecom.TagMembersResult, error) { return c.AddTagUsers(ctx, 12, []string{"usr1"}, []int{2}) },
			func() (wecom.TagMembersResult, error) { return c.DelTagUsers(ctx, 12, []string{"usr1"}, []int{2}) },
		} {
			res, err := f()
			require.NoError(t, err)
			require.Equal(t, []string{"usr1", "usr2", "usr"}, res.InvalidList)
			require.Equal(t, []int{2, 4}, res.InvalidParty)
		}
	})

	t.Run("Jobs", func(t *testing.T) {
		m, err := c.UploadMedia(ctx, wecom.MediaFile, "a.csv", strings.NewReader("0123456789"))
		require.NoError(t, err)
		require.Equal(t, wecom.Media{Type: "image", MediaID: "1G6nrLmr5EC3MMb_-zK1dDdzmd0p7cNliYu9V5w7o8K0", CreatedAt: "1380000000"}, m)
		job, err := c.SyncUsers(ctx, wecom.ImportJob{MediaID: m.MediaID})
		require.NoError(t, err)
		require.Equal(t, "xxxxx", job)
		res, err := c.BatchGetResult(ctx, job)
		require.NoError(t, err)
		require.True(t, res.Done())
		require.Equal(t, wecom.UserResult{UserID: "wangwu", ErrCode: 60104, ErrMsg: "mobile existed"}, res.UserResults[1])
		ej, err := c.SubmitExport(ctx, wecom.ExportJob{Kind: wecom.ExportUser, EncodingAESKey: "IJUiXNpvGbODwKEBSEsAeOAPAhkqHqNCF6g19t9wfg2", BlockSize: 1000000})
		require.NoError(t, err)
		require.Equal(t, "jobid_xxxxxxxxx", ej)
		er, err := c.ExportGetResult(ctx, ej)
		require.NoError(t, err)
		require.Equal(t, wecom.ExportResult{Status: wecom.ExportDone, DataList: []wecom.ExportBlock{
			{URL: "https://xxxxx", Size: 10240, MD5: "xxxxxxxxx"}, {URL: "https://xxxxx", Size: 20480, MD5: "xxxxxxxx"}}}, er)
	})

	t.Run("MediaCreatedAtAsNumber", func(t *testing.T) {
		c := officialServer(t, map[string]string{"gettoken": officialAnswers["gettoken"],
			"media/upload": `{"errcode":0,"errmsg":"","type":"file","media_id":"m1","created_at":1380000000}`})
		m, err := c.UploadMedia(ctx, wecom.MediaFile, "a.csv", strings.NewReader("0123456789"))
		require.NoError(t, err)
		require.Equal(t, "1380000000", m.CreatedAt.String())
	})

	t.Run("LinkedCorp", func(t *testing.T) {
		perm, err := c.LinkedPermissions(ctx)
		require.NoError(t, err)
		require.Equal(t, wecom.LinkedPermList{UserIDs: []string{"CORPID/USERID"}, DepartmentIDs: []string{"LINKEDID/DEPARTMENTID"}}, perm)
		u, err := c.GetLinkedUser(ctx, "CORPID/USERID")
		require.NoError(t, err)
		require.Equal(t, []string{"LINKEDID/1", "LINKEDID/2"}, u.Department)
		require.Equal(t, "xxxx", u.ExtAttr.Attrs[0].Value)
		deps, err := c.ListLinkedDepartments(ctx, "LINKEDID/1")
		require.NoError(t, err)
		require.Equal(t, wecom.LinkedDepartment{DepartmentID: "2", DepartmentName: "测试部门2", ParentID: "1", Order: 100000000}, deps[1])
	})

	t.Run("School", func(t *testing.T) {
		id, err := c.CreateSchoolDepartment(ctx, wecom.SchoolDepartmentCreate{Name: "一年级", ParentID: 5, ID: 2, Type: 1, RegisterYear: 2018, StandardGrade: 1})
		require.NoError(t, err)
		require.Equal(t, 2, id)
		deps, err := c.ListSchoolDepartments(ctx, 0)
		require.NoError(t, err)
		require.Equal(t, []wecom.SchoolAdmin{{UserID: "zhangsan", Type: 1}, {UserID: "lisi", Type: 2}}, deps[0].DepartmentAdmins)
		require.Equal(t, 2018, deps[0].RegisterYear)
	})

	t.Run("ErrorBodiesWithEmptyListFields", func(t *testing.T) {
		c := officialServer(t, map[string]string{"gettoken": officialAnswers["gettoken"],
			"user/get": `{"errcode":60111,"errmsg":"userid not found, hint: [1651234567_28_4f5e], from ip: 1.2.3.4, more info at https://open.work.weixin.qq.com/devtool/query?e=60111",
				"department":[],"order":[],"is_leader_in_dept":[],"direct_leader":[]}`,
			"user/list_id": `{"errcode":48002,"errmsg":"api forbidden","dept_user":[]}`})
		_, err := c.GetUser(ctx, "x")
		require.ErrorIs(t, err, wecom.ErrNotFound)
		_, err = c.ListIDsPage(ctx, "", 1)
		require.ErrorIs(t, err, wecom.ErrNoPermission)
	})

	t.Run("UnknownPathIs404", func(t *testing.T) {
		_, err := c.JoinQRCode(ctx, 1)
		var se *wecom.HTTPStatusError
		require.ErrorAs(t, err, &se)
		require.Equal(t, 404, se.Status)
	})
}
