package event_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/event"
)

// roundTrip marshals m and unmarshals it, as the worker receives it.
func roundTrip(t *testing.T, m *event.Message) *event.Message {
	t.Helper()
	b, err := json.Marshal(m)
	require.NoError(t, err)
	var got event.Message
	require.NoError(t, json.Unmarshal(b, &got))
	return &got
}

func TestMessageAccessors(t *testing.T) {
	t.Parallel()

	t.Run("UserReadsTheCreateUserSample", func(t *testing.T) {
		t.Parallel()
		u, err := roundTrip(t, message(t, sampleCreateUser)).User()
		require.NoError(t, err)
		require.Equal(t, &event.UserChange{
			UserID:         "zhangsan",
			Name:           event.Some("张三"),
			Department:     event.Some([]int64{1, 2, 3}),
			MainDepartment: event.Some[int64](1),
			IsLeaderInDept: event.Some([]int{1, 0, 0}),
			DirectLeader:   event.Some([]string{"lisi", "wangwu"}),
			Position:       event.Some("产品经理"),
			Mobile:         event.Some("13800000000"),
			Gender:         event.Some(1),
			Email:          event.Some("zhangsan@gzdev.com"),
			BizMail:        event.Some("zhangsan@qyycs2.wecom.work"),
			Status:         event.Some(1),
			Avatar:         event.Some("http://wx.qlogo.cn/mmopen/ajNVdqHZLLA3WJ6DSZUfiakYe37PKnQhBIeOQBO4czqrnZDS79FH5Wm5m4X69TBicnHFlhiafvDwklOpZeXYQQ2icg/0"),
			Alias:          event.Some("zhangsan"),
			Telephone:      event.Some("020-123456"),
			Address:        event.Some("广州市"),
			ExtAttr: event.Some([]event.ExtAttr{
				{Name: "爱好", Type: 0, Text: &event.ExtAttrText{Value: "旅游"}},
				{Name: "卡号", Type: 1, Web: &event.ExtAttrWeb{Title: "企业微信", URL: "https://work.weixin.qq.com"}},
			}),
		}, u)
	})

	t.Run("UserReadsNewUserIDOfTheUpdateUserSample", func(t *testing.T) {
		t.Parallel()
		u, err := roundTrip(t, message(t, sampleUpdateUser)).User()
		require.NoError(t, err)
		require.Equal(t, "zhangsan", u.UserID)
		require.Equal(t, event.Some("zhangsan001"), u.NewUserID)
		require.False(t, u.DirectLeader.Set)
		require.False(t, u.BizMail.Set)
	})

	t.Run("UserOfDeleteUserCarriesOnlyUserID", func(t *testing.T) {
		t.Parallel()
		u, err := roundTrip(t, message(t, sampleDeleteUser)).User()
		require.NoError(t, err)
		require.Equal(t, &event.UserChange{UserID: "zhangsan"}, u)
	})

	t.Run("UserKeepsAbsentApartFromEmpty", func(t *testing.T) {
		t.Parallel()
		m := message(t, contactXML("update_user",
			"<UserID>u1</UserID><Alias></Alias><Department></Department><ExtAttr></ExtAttr><Gender>0</Gender>"))
		for _, m := range []*event.Message{m, roundTrip(t, m)} {
			u, err := m.User()
			require.NoError(t, err)
			require.Equal(t, &event.UserChange{
				UserID:     "u1",
				Alias:      event.Some(""),
				Department: event.Some([]int64{}),
				ExtAttr:    event.Some([]event.ExtAttr{}),
				Gender:     event.Some(0),
			}, u)
			name, ok := u.Name.Get()
			require.False(t, ok)
			require.Empty(t, name)
		}
	})

	t.Run("UserReadsMinimalPost2022Events", func(t *testing.T) {
		t.Parallel()
		u, err := roundTrip(t, message(t, contactXML("update_user",
			"<UserID>u1</UserID><NewUserID>u2</NewUserID><Department>3,4</Department>"))).User()
		require.NoError(t, err)
		require.Equal(t, &event.UserChange{
			UserID: "u1", NewUserID: event.Some("u2"), Department: event.Some([]int64{3, 4}),
		}, u)
	})

	t.Run("UserKeepsUnknownExtAttrTypesAndElements", func(t *testing.T) {
		t.Parallel()
		u, err := roundTrip(t, message(t, contactXML("create_user", `<UserID>u1</UserID><OpenUserID>o1</OpenUserID>
			<ExtAttr><Item><Name>m</Name><Type>2</Type><Miniprogram><Appid>wx1</Appid><Title>M</Title></Miniprogram></Item>
			<Item><Name>odd</Name><Type>x</Type><Text>plain</Text></Item>
			<Item><Name>w</Name><Type>1</Type><Web><Title>T</Title></Web></Item></ExtAttr>`))).User()
		require.NoError(t, err)
		require.Equal(t, map[string]any{"open_user_id": "o1"}, u.Extra)
		require.Equal(t, event.Some([]event.ExtAttr{
			{Name: "m", Type: 2, Extra: map[string]any{"miniprogram": map[string]any{"appid": "wx1", "title": "M"}}},
			{Name: "odd", Extra: map[string]any{"type": "x", "text": "plain"}},
			{Name: "w", Type: 1, Web: &event.ExtAttrWeb{Title: "T"}},
		}), u.ExtAttr)
	})

	t.Run("UserReportsValuesThatAreNotNumbers", func(t *testing.T) {
		t.Parallel()
		u, err := roundTrip(t, message(t, contactXML("update_user",
			"<UserID>u1</UserID><Gender>x</Gender><Department>1,x</Department><Status>2</Status>"))).User()
		require.NoError(t, err)
		require.Equal(t, map[string]string{"gender": "x", "department": "1,x"}, u.Invalid)
		require.False(t, u.Gender.Set)
		require.False(t, u.Department.Set)
		require.Equal(t, event.Some(2), u.Status)
	})

	t.Run("UserRequiresUserID", func(t *testing.T) {
		t.Parallel()
		_, err := message(t, contactXML("update_user", "<Name>n</Name>")).User()
		require.ErrorIs(t, err, event.ErrInvalidData)
		require.ErrorContains(t, err, "user_id missing")
		_, err = message(t, contactXML("update_user", "<UserID><a>1</a></UserID>")).User()
		require.ErrorIs(t, err, event.ErrInvalidData)
	})

	t.Run("PartyReadsTheDepartmentSamples", func(t *testing.T) {
		t.Parallel()
		for s, want := range map[string]*event.PartyChange{
			sampleCreateParty: {ID: 2, Name: event.Some("张三"), ParentID: event.Some[int64](1), Order: event.Some[int64](1)},
			sampleUpdateParty: {ID: 2, Name: event.Some("张三"), ParentID: event.Some[int64](1)},
			sampleDeleteParty: {ID: 2},
		} {
			p, err := roundTrip(t, message(t, s)).Party()
			require.NoError(t, err)
			require.Equal(t, want, p)
		}
	})

	t.Run("PartyRequiresAnIntegerID", func(t *testing.T) {
		t.Parallel()
		_, err := message(t, contactXML("delete_party", "<Id>x</Id>")).Party()
		require.ErrorIs(t, err, event.ErrInvalidData)
		require.ErrorContains(t, err, "id missing or invalid")
	})

	t.Run("TagReadsTheUpdateTagSample", func(t *testing.T) {
		t.Parallel()
		tag, err := roundTrip(t, message(t, sampleUpdateTag)).Tag()
		require.NoError(t, err)
		require.Equal(t, &event.TagChange{
			TagID:         1,
			AddUserItems:  event.Some([]string{"zhangsan", "lisi"}),
			DelUserItems:  event.Some([]string{"zhangsan1", "lisi1"}),
			AddPartyItems: event.Some([]int64{1, 2}),
			DelPartyItems: event.Some([]int64{3, 4}),
		}, tag)
	})

	t.Run("TagKeepsListsThatWereNotCarriedAbsent", func(t *testing.T) {
		t.Parallel()
		tag, err := roundTrip(t, message(t, contactXML("update_tag", "<TagId>7</TagId><AddUserItems>a</AddUserItems>"))).Tag()
		require.NoError(t, err)
		require.Equal(t, &event.TagChange{TagID: 7, AddUserItems: event.Some([]string{"a"})}, tag)
	})

	t.Run("BatchJobReadsEveryImportAndExportJobType", func(t *testing.T) {
		t.Parallel()
		for _, jt := range []string{event.JobSyncUser, event.JobReplaceUser, event.JobInviteUser, event.JobReplaceParty} {
			s := strings.Replace(sampleBatchJobImport, "sync_user", jt, 1)
			j, err := roundTrip(t, message(t, s)).BatchJob()
			require.NoError(t, err)
			require.Equal(t, &event.BatchJob{
				JobID: "S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4", JobType: jt, ErrCode: 0, ErrMsg: "ok",
			}, j)
		}
		for _, jt := range []string{event.JobExportUser, event.JobExportSimpleUser, event.JobExportDepartment,
			event.JobExportTag, event.JobExportTagUser} {
			s := strings.Replace(sampleBatchJobExport, "export_user", jt, 1)
			m := message(t, s)
			require.Equal(t, "wecom.events.ww1.batch_job_result", m.Subject())
			j, err := roundTrip(t, m).BatchJob()
			require.NoError(t, err)
			require.Equal(t, &event.BatchJob{
				JobID: "jobid_S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4", JobType: jt, ErrCode: 0, ErrMsg: "ok",
			}, j)
		}
	})

	t.Run("BatchJobReadsAFailedJob", func(t *testing.T) {
		t.Parallel()
		s := strings.NewReplacer("<ErrCode>0</ErrCode>", "<ErrCode>60123</ErrCode>", "[ok]", "[invalid party id]").Replace(sampleBatchJobImport)
		j, err := message(t, s).BatchJob()
		require.NoError(t, err)
		require.Equal(t, 60123, j.ErrCode)
		require.Equal(t, "invalid party id", j.ErrMsg)
	})

	t.Run("BatchJobReportsWhatItCannotRead", func(t *testing.T) {
		t.Parallel()
		s := strings.Replace(sampleBatchJobImport, "<ErrCode>0</ErrCode>", "<ErrCode>x</ErrCode><Extra>e</Extra>", 1)
		j, err := message(t, s).BatchJob()
		require.NoError(t, err)
		require.Equal(t, map[string]string{"batch_job.err_code": "x"}, j.Invalid)
		require.Equal(t, map[string]any{"batch_job.extra": "e"}, j.Extra)

		_, err = message(t, "<xml><Event>batch_job_result</Event></xml>").BatchJob()
		require.ErrorIs(t, err, event.ErrInvalidData)
		require.ErrorContains(t, err, "batch_job missing")
	})

	t.Run("AccessorsRefuseMessagesOfAnotherKind", func(t *testing.T) {
		t.Parallel()
		_, err := message(t, sampleCreateParty).User()
		require.ErrorIs(t, err, event.ErrWrongKind)
		require.ErrorContains(t, err, "change_contact/create_party")
		_, err = message(t, sampleCreateUser).Party()
		require.ErrorIs(t, err, event.ErrWrongKind)
		_, err = message(t, sampleCreateUser).Tag()
		require.ErrorIs(t, err, event.ErrWrongKind)
		_, err = message(t, sampleUpdateTag).BatchJob()
		require.ErrorIs(t, err, event.ErrWrongKind)
		_, err = message(t, sampleBatchJobImport).User()
		require.ErrorIs(t, err, event.ErrWrongKind)
		_, err = message(t, contactXML("merge_user", "<UserID>u1</UserID>")).User()
		require.ErrorIs(t, err, event.ErrWrongKind, "an unknown change type has no typed view")
	})

	t.Run("AccessorsRefuseDataThatIsNotAnObject", func(t *testing.T) {
		t.Parallel()
		for _, data := range []string{`not json`, `[1]`, `"s"`} {
			m := &event.Message{ID: "x", Event: event.EventChangeContact, ChangeType: event.ChangeCreateUser, Data: json.RawMessage(data)}
			_, err := m.User()
			require.ErrorIs(t, err, event.ErrInvalidData, data)
		}
	})
}
