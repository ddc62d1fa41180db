package event_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/event"
)

var receivedAt = time.Date(2026, 11, 21, 3, 4, 5, 120000000, time.FixedZone("CST", 8*3600))

// message parses s and builds its message for tenant "acme", corp "ww1".
func message(t *testing.T, s string) *event.Message {
	t.Helper()
	return event.NewMessage(parse(t, s), []byte(s), "acme", "ww1", receivedAt)
}

// dataOf returns the message's data as a generic map.
func dataOf(t *testing.T, m *event.Message) map[string]any {
	t.Helper()
	var d map[string]any
	require.NoError(t, json.Unmarshal(m.Data, &d))
	return d
}

func keys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

func TestNewMessage(t *testing.T) {
	t.Parallel()

	t.Run("IDIsTheHexSHA256OfTheDecryptedXML", func(t *testing.T) {
		t.Parallel()
		sum := sha256.Sum256([]byte(sampleCreateUser))
		require.Equal(t, hex.EncodeToString(sum[:]), message(t, sampleCreateUser).ID)
		require.NotEqual(t, message(t, sampleCreateUser).ID, message(t, sampleUpdateUser).ID)
	})

	t.Run("EncodesTheEnvelope", func(t *testing.T) {
		t.Parallel()
		m := message(t, sampleCreateUser)
		b, err := m.MarshalJSON()
		require.NoError(t, err)
		var got map[string]any
		require.NoError(t, json.Unmarshal(b, &got))
		require.Equal(t, []string{"change_type", "corp_id", "create_time", "data", "event", "id", "received_at", "tenant", "xml"}, keys(got))
		require.Equal(t, m.ID, got["id"])
		require.Equal(t, "acme", got["tenant"])
		require.Equal(t, "ww1", got["corp_id"])
		require.Equal(t, "change_contact", got["event"])
		require.Equal(t, "create_user", got["change_type"])
		require.Equal(t, float64(1403610513), got["create_time"])
		require.Equal(t, "2026-11-20T19:04:05.120000000Z", got["received_at"], "UTC with sub-second precision")
		require.Equal(t, sampleCreateUser, got["xml"])
		require.IsType(t, map[string]any{}, got["data"])
	})

	t.Run("AlwaysWritesTheFractionOfReceivedAt", func(t *testing.T) {
		t.Parallel()
		m := event.NewMessage(parse(t, sampleDeleteUser), []byte(sampleDeleteUser), "acme", "ww1", time.Unix(1700000000, 0))
		b, err := m.MarshalJSON()
		require.NoError(t, err)
		require.Contains(t, string(b), `"received_at":"2023-11-14T22:13:20.000000000Z"`)
	})

	t.Run("OmitsChangeTypeWhenThereIsNone", func(t *testing.T) {
		t.Parallel()
		b, err := message(t, sampleBatchJobImport).MarshalJSON()
		require.NoError(t, err)
		var got map[string]any
		require.NoError(t, json.Unmarshal(b, &got))
		require.NotContains(t, got, "change_type")
		require.Equal(t, "batch_job_result", got["event"])
	})

	t.Run("EncodesTheCreateUserSampleData", func(t *testing.T) {
		t.Parallel()
		require.JSONEq(t, `{
			"to_user_name":"toUser","from_user_name":"sys","msg_type":"event",
			"user_id":"zhangsan","name":"张三","department":[1,2,3],"main_department":1,
			"is_leader_in_dept":[1,0,0],"direct_leader":["lisi","wangwu"],"position":"产品经理",
			"mobile":"13800000000","gender":1,"email":"zhangsan@gzdev.com",
			"biz_mail":"zhangsan@qyycs2.wecom.work","status":1,
			"avatar":"http://wx.qlogo.cn/mmopen/ajNVdqHZLLA3WJ6DSZUfiakYe37PKnQhBIeOQBO4czqrnZDS79FH5Wm5m4X69TBicnHFlhiafvDwklOpZeXYQQ2icg/0",
			"alias":"zhangsan","telephone":"020-123456","address":"广州市",
			"ext_attr":[
				{"name":"爱好","type":0,"text":{"value":"旅游"}},
				{"name":"卡号","type":1,"web":{"title":"企业微信","url":"https://work.weixin.qq.com"}}
			]}`, string(message(t, sampleCreateUser).Data))
	})

	t.Run("EncodesTheUpdateUserSampleWithNewUserID", func(t *testing.T) {
		t.Parallel()
		d := dataOf(t, message(t, sampleUpdateUser))
		require.Equal(t, "zhangsan", d["user_id"])
		require.Equal(t, "zhangsan001", d["new_user_id"])
		require.NotContains(t, d, "direct_leader")
		require.NotContains(t, d, "biz_mail")
	})

	t.Run("EncodesDepartmentTagAndJobSamples", func(t *testing.T) {
		t.Parallel()
		common := `"to_user_name":"toUser","from_user_name":"sys","msg_type":"event",`
		require.JSONEq(t, `{`+common+`"user_id":"zhangsan"}`, string(message(t, sampleDeleteUser).Data))
		require.JSONEq(t, `{`+common+`"id":2,"name":"张三","parent_id":1,"order":1}`, string(message(t, sampleCreateParty).Data))
		require.JSONEq(t, `{`+common+`"id":2,"name":"张三","parent_id":1}`, string(message(t, sampleUpdateParty).Data))
		require.JSONEq(t, `{`+common+`"id":2}`, string(message(t, sampleDeleteParty).Data))
		require.JSONEq(t, `{`+common+`"tag_id":1,"add_user_items":["zhangsan","lisi"],"del_user_items":["zhangsan1","lisi1"],
			"add_party_items":[1,2],"del_party_items":[3,4]}`, string(message(t, sampleUpdateTag).Data))
		require.JSONEq(t, `{"to_user_name":"wx28dbb14e3720FAKE","from_user_name":"FromUser","msg_type":"event",
			"batch_job":{"job_id":"S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4","job_type":"sync_user","err_code":0,"err_msg":"ok"}}`,
			string(message(t, sampleBatchJobImport).Data))
	})

	t.Run("KeepsOnlyTheFieldsAnUpdateCarried", func(t *testing.T) {
		t.Parallel()
		d := dataOf(t, message(t, contactXML("update_user", "<UserID>u1</UserID><Mobile>138</Mobile><Status>2</Status>")))
		require.Equal(t, []string{"from_user_name", "mobile", "msg_type", "status", "to_user_name", "user_id"}, keys(d))
		require.Equal(t, float64(2), d["status"])
	})

	t.Run("KeepsMinimalPost2022Events", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name, xml, want string
		}{
			{"create_user", contactXML("create_user", "<UserID><![CDATA[u1]]></UserID><Department><![CDATA[1,5]]></Department>"),
				`{"user_id":"u1","department":[1,5]}`},
			{"update_user", contactXML("update_user", "<UserID>u1</UserID><NewUserID>u2</NewUserID><Department>7</Department>"),
				`{"user_id":"u1","new_user_id":"u2","department":[7]}`},
			{"create_party", contactXML("create_party", "<Id>9</Id><ParentId>1</ParentId>"), `{"id":9,"parent_id":1}`},
			{"update_party", contactXML("update_party", "<Id>9</Id><ParentId>3</ParentId>"), `{"id":9,"parent_id":3}`},
		} {
			d := dataOf(t, message(t, tc.xml))
			for _, k := range []string{"to_user_name", "from_user_name", "msg_type"} {
				delete(d, k)
			}
			b, err := json.Marshal(d)
			require.NoError(t, err)
			require.JSONEq(t, tc.want, string(b), tc.name)
		}
	})

	t.Run("KeepsPresentButEmptyFields", func(t *testing.T) {
		t.Parallel()
		d := dataOf(t, message(t, contactXML("update_user",
			"<UserID>u1</UserID><Alias><![CDATA[]]></Alias><Position/><Department></Department><DirectLeader> </DirectLeader><ExtAttr></ExtAttr>")))
		require.Equal(t, "", d["alias"])
		require.Equal(t, "", d["position"])
		require.Equal(t, []any{}, d["department"])
		require.Equal(t, []any{}, d["direct_leader"])
		require.Equal(t, []any{}, d["ext_attr"])
		require.NotContains(t, d, "name")
	})

	t.Run("KeepsValuesThatAreNotNumbersAsRawStrings", func(t *testing.T) {
		t.Parallel()
		m := message(t, contactXML("update_user",
			"<UserID>u1</UserID><Gender>x</Gender><MainDepartment></MainDepartment><Department>1,x</Department>"+
				"<Status>99999999999999999999</Status><IsLeaderInDept> 1 , 0 </IsLeaderInDept>"))
		require.True(t, json.Valid(m.Data))
		d := dataOf(t, m)
		require.Equal(t, "x", d["gender"])
		require.Equal(t, "", d["main_department"])
		require.Equal(t, "1,x", d["department"])
		require.Equal(t, "99999999999999999999", d["status"])
		require.Equal(t, []any{float64(1), float64(0)}, d["is_leader_in_dept"], "spaces around items are fine")
	})

	t.Run("KeepsCreateTimeInDataOnlyWhenItIsNotANumber", func(t *testing.T) {
		t.Parallel()
		require.NotContains(t, dataOf(t, message(t, sampleDeleteUser)), "create_time")
		m := message(t, "<xml><CreateTime>soon</CreateTime><Event>change_contact</Event></xml>")
		require.Zero(t, m.CreateTime)
		require.Equal(t, "soon", dataOf(t, m)["create_time"])
	})

	t.Run("KeepsEveryExtAttrType", func(t *testing.T) {
		t.Parallel()
		m := message(t, contactXML("update_user", `<UserID>u1</UserID><ExtAttr>
			<Item><Name>t</Name><Type>0</Type><Text><Value>v</Value></Text></Item>
			<Item><Name>w</Name><Type>1</Type><Web><Title>T</Title><Url>http://x?a=1&amp;b=2</Url></Web></Item>
			<Item><Name>m</Name><Type>2</Type><Miniprogram><Appid>wx1</Appid><Pagepath>/p</Pagepath><Title>M</Title></Miniprogram></Item>
			<Item><Name>bad</Name><Type>x</Type></Item>
		</ExtAttr>`))
		require.JSONEq(t, `[
			{"name":"t","type":0,"text":{"value":"v"}},
			{"name":"w","type":1,"web":{"title":"T","url":"http://x?a=1&b=2"}},
			{"name":"m","type":2,"miniprogram":{"appid":"wx1","pagepath":"/p","title":"M"}},
			{"name":"bad","type":"x"}
		]`, string(mustMarshal(t, dataOf(t, m)["ext_attr"])))
	})

	t.Run("KeepsEveryElementOfAnUnknownEvent", func(t *testing.T) {
		t.Parallel()
		m := message(t, `<xml><ToUserName>ww1</ToUserName><FromUserName>u9</FromUserName><CreateTime>1</CreateTime>`+
			`<MsgType>event</MsgType><Event><![CDATA[location_select]]></Event><EventKey>k</EventKey><AgentID>1</AgentID>`+
			`<SendLocationInfo><Location_X>23</Location_X><Location_Y>113</Location_Y></SendLocationInfo>`+
			`<Item>a</Item><Item>b</Item></xml>`)
		require.Equal(t, "location_select", m.Event)
		require.Empty(t, m.ChangeType)
		require.Equal(t, "wecom.events.ww1.location_select", m.Subject())
		require.JSONEq(t, `{"to_user_name":"ww1","from_user_name":"u9","msg_type":"event","event_key":"k","agent_id":"1",
			"send_location_info":{"location_x":"23","location_y":"113"},"item":["a","b"]}`, string(m.Data))
	})

	t.Run("KeepsEveryElementOfAnUnknownChangeType", func(t *testing.T) {
		t.Parallel()
		m := message(t, contactXML("merge_user", "<UserID>u1</UserID><Department>1,2</Department><NewField>n</NewField>"))
		require.Equal(t, "wecom.events.ww1.change_contact.merge_user", m.Subject())
		d := dataOf(t, m)
		require.Equal(t, "u1", d["user_id"])
		require.Equal(t, "1,2", d["department"], "fields of unknown change types stay strings")
		require.Equal(t, "n", d["new_field"])
	})

	t.Run("KeepsUnknownElementsOfKnownEvents", func(t *testing.T) {
		t.Parallel()
		d := dataOf(t, message(t, contactXML("create_user", "<UserID>u1</UserID><OpenUserID>o1</OpenUserID><UserId>dup</UserId>")))
		require.Equal(t, "o1", d["open_user_id"])
		require.Equal(t, "u1", d["user_id"], "a variant spelling of a known field does not override it")
	})

	t.Run("KeepsVariantSpellingsOfMessageFieldsInData", func(t *testing.T) {
		t.Parallel()
		m := message(t, "<xml><Event>change_contact</Event><event>x</event><create_time>1</create_time><Change_Type>y</Change_Type></xml>")
		require.Equal(t, map[string]any{"event": "x", "create_time": "1", "change_type": "y"}, dataOf(t, m))
	})

	t.Run("TakesTheFirstOfRepeatedKnownFields", func(t *testing.T) {
		t.Parallel()
		d := dataOf(t, message(t, contactXML("update_user", "<UserID>u1</UserID><Name>a</Name><Name>b</Name>")))
		require.Equal(t, "a", d["name"])
	})

	t.Run("StaysValidJSONForAnyText", func(t *testing.T) {
		t.Parallel()
		s := contactXML("update_user", "<UserID>\xff\xfe</UserID><Name>a\"b\\c\x01\u2028</Name><Address>&#9;tab</Address>")
		m := message(t, s)
		b, err := m.MarshalJSON()
		require.NoError(t, err)
		require.True(t, json.Valid(b))
		d := dataOf(t, m)
		require.Equal(t, "\ufffd\ufffd", d["user_id"])
		require.Equal(t, "a\"b\\c\x01\u2028", d["name"])
		require.Equal(t, "\ttab", d["address"])
	})

	t.Run("ReusesNothingWhenRawDiffersFromTheParsedXML", func(t *testing.T) {
		t.Parallel()
		e := parse(t, sampleDeleteUser)
		m := event.NewMessage(e, []byte(sampleDeleteParty), "acme", "ww1", receivedAt)
		require.Equal(t, sampleDeleteParty, m.XML)
	})

	t.Run("AcceptsANilEvent", func(t *testing.T) {
		t.Parallel()
		m := event.NewMessage(nil, []byte("junk"), "acme", "ww1", receivedAt)
		require.JSONEq(t, `{}`, string(m.Data))
		require.Equal(t, "wecom.events.ww1.unknown", m.Subject())
		b, err := m.MarshalJSON()
		require.NoError(t, err)
		require.True(t, json.Valid(b))
	})

	t.Run("MarshalJSONAgreesWithEncodingJSON", func(t *testing.T) {
		t.Parallel()
		for _, s := range allSamples {
			m := message(t, s)
			ours, err := m.MarshalJSON()
			require.NoError(t, err)
			std, err := json.Marshal(m)
			require.NoError(t, err)
			require.JSONEq(t, string(std), string(ours))
			value, err := json.Marshal(*m)
			require.NoError(t, err)
			require.JSONEq(t, string(std), string(value), "a Message value marshals the same way")
		}
	})

	t.Run("RoundTripsThroughJSON", func(t *testing.T) {
		t.Parallel()
		for _, s := range allSamples {
			m := message(t, s)
			b, err := json.Marshal(m)
			require.NoError(t, err)
			var got event.Message
			require.NoError(t, json.Unmarshal(b, &got))
			require.Equal(t, m.ID, got.ID)
			require.Equal(t, m.ReceivedAt, got.ReceivedAt)
			require.JSONEq(t, string(m.Data), string(got.Data))

			b, err = m.MarshalJSON()
			require.NoError(t, err)
			got = event.Message{}
			require.NoError(t, json.Unmarshal(b, &got))
			require.Equal(t, *m, got)
		}
	})

	t.Run("RejectsAReceivedAtThatRFC3339CannotHold", func(t *testing.T) {
		t.Parallel()
		m := event.NewMessage(parse(t, sampleDeleteUser), []byte(sampleDeleteUser), "acme", "ww1", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
		_, err := m.MarshalJSON()
		require.ErrorContains(t, err, "year 10000")
	})
}

func TestSubject(t *testing.T) {
	t.Parallel()

	t.Run("NamesTheSubjectOfEverySample", func(t *testing.T) {
		t.Parallel()
		for s, want := range map[string]string{
			sampleCreateUser:     "wecom.events.ww1.change_contact.create_user",
			sampleUpdateUser:     "wecom.events.ww1.change_contact.update_user",
			sampleDeleteUser:     "wecom.events.ww1.change_contact.delete_user",
			sampleCreateParty:    "wecom.events.ww1.change_contact.create_party",
			sampleUpdateParty:    "wecom.events.ww1.change_contact.update_party",
			sampleDeleteParty:    "wecom.events.ww1.change_contact.delete_party",
			sampleUpdateTag:      "wecom.events.ww1.change_contact.update_tag",
			sampleBatchJobImport: "wecom.events.ww1.batch_job_result",
			sampleBatchJobExport: "wecom.events.ww1.batch_job_result",
		} {
			require.Equal(t, want, parse(t, s).Subject("ww1"))
			require.Equal(t, want, message(t, s).Subject(), "the message names the same subject")
		}
	})

	t.Run("SanitisesTokensFromTheWire", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, "wecom.events.ww_x_y_.change_contact.a_b_c__",
			parse(t, contactXML("a.b c*>\t", "")).Subject("ww.x y*"))
		require.Equal(t, "wecom.events.unknown.change_contact.unknown", parse(t, contactXML("", "")).Subject(""))
		require.Equal(t, "wecom.events.ww1.unknown", parse(t, "<xml><MsgType>text</MsgType></xml>").Subject("ww1"))
		require.Equal(t, "wecom.events.ww1.______", parse(t, "<xml><Event>事件</Event></xml>").Subject("ww1"))
		require.Equal(t, "wecom.events.ww1.unknown", (*event.Event)(nil).Subject("ww1"))
		long := parse(t, "<xml><Event>"+strings.Repeat("e", 500)+"</Event></xml>").Subject("ww1")
		require.Equal(t, "wecom.events.ww1."+strings.Repeat("e", 64), long)
	})

	t.Run("TokenKeepsValidTokensAsIs", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, "wwA-b_9", event.Token("wwA-b_9"))
		require.Equal(t, "unknown", event.Token(""))
		require.Equal(t, "_", event.Token(">"))
		require.Equal(t, "_", event.Token("*"))
	})
}

var allSamples = []string{
	sampleCreateUser, sampleUpdateUser, sampleDeleteUser, sampleCreateParty, sampleUpdateParty,
	sampleDeleteParty, sampleUpdateTag, sampleBatchJobImport, sampleBatchJobExport,
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
