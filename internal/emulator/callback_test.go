package emulator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fieldNames returns the top-level element names of an event (without the common ones).
func fieldNames(ev map[string]string) []string {
	common := map[string]bool{"ToUserName": true, "FromUserName": true, "CreateTime": true, "MsgType": true, "Event": true, "ChangeType": true, "_raw": true}
	var out []string
	for k := range ev {
		if !common[k] && !strings.Contains(k, "/") {
			out = append(out, k)
		}
	}
	return out
}

func TestConsoleEditsAreCalledBack(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.SeedUsers = 5 })

	t.Run("SyncSecretWritesAreNotCalledBack", func(t *testing.T) {
		requireCode(t, e.contact(t, "POST", "/cgi-bin/user/create", newUser("viasync", "13600000001")), 0)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/department/create", map[string]any{"name": "同步部门", "parentid": 1}), 0)
		e.idle(t)
		require.Zero(t, e.srv.CallbackStats().Enqueued)
		require.Empty(t, e.recv.events)
	})

	t.Run("CreateUserCarriesEveryField", func(t *testing.T) {
		requireCode(t, e.console(t, "POST", "/cgi-bin/user/create", map[string]any{
			"userid": "zhangsan", "name": "张三", "department": []int{1}, "is_leader_in_dept": []int{1},
			"direct_leader": []string{"u000001"}, "position": "产品经理", "mobile": "13800000000", "gender": "1",
			"email": "zhangsan@gzdev.com", "alias": "zs", "telephone": "020-123456", "address": "广州市",
			"extattr": map[string]any{"attrs": []any{
				map[string]any{"type": 0, "name": "爱好", "text": map[string]any{"value": "旅游"}},
				map[string]any{"type": 1, "name": "卡号", "web": map[string]any{"url": "https://work.weixin.qq.com", "title": "企业微信"}},
			}},
		}), 0)
		ev := e.recv.next(t)
		require.Equal(t, testCorp, ev["ToUserName"])
		require.Equal(t, "sys", ev["FromUserName"])
		require.Equal(t, "event", ev["MsgType"])
		require.Equal(t, "change_contact", ev["Event"])
		require.Equal(t, "create_user", ev["ChangeType"])
		require.NotEmpty(t, ev["CreateTime"])
		require.Equal(t, "zhangsan", ev["UserID"])
		require.Equal(t, "张三", ev["Name"])
		require.Equal(t, "1", ev["Department"])
		require.Equal(t, "1", ev["MainDepartment"])
		require.Equal(t, "1", ev["IsLeaderInDept"])
		require.Equal(t, "u000001", ev["DirectLeader"])
		require.Equal(t, "产品经理", ev["Position"])
		require.Equal(t, "13800000000", ev["Mobile"])
		require.Equal(t, "1", ev["Gender"])
		require.Equal(t, "zhangsan@gzdev.com", ev["Email"])
		require.Equal(t, "4", ev["Status"])
		require.Equal(t, "zs", ev["Alias"])
		require.Equal(t, "020-123456", ev["Telephone"])
		require.Equal(t, "广州市", ev["Address"])
		require.Contains(t, ev["_raw"], "<ExtAttr><Item><Name><![CDATA[爱好]]></Name><Type>0</Type><Text><Value><![CDATA[旅游]]></Value></Text></Item>")
		require.Contains(t, ev["_raw"], "<Web><Title><![CDATA[企业微信]]></Title><Url><![CDATA[https://work.weixin.qq.com]]></Url></Web>")
	})

	t.Run("UpdateUserCarriesOnlyChangedFields", func(t *testing.T) {
		requireCode(t, e.console(t, "POST", "/cgi-bin/user/update", map[string]any{"userid": "zhangsan", "position": "总监", "name": "张三"}), 0)
		ev := e.recv.next(t)
		require.Equal(t, "update_user", ev["ChangeType"])
		require.ElementsMatch(t, []string{"UserID", "Position"}, fieldNames(ev))
		require.Equal(t, "总监", ev["Position"])
	})

	t.Run("RenameCarriesNewUserID", func(t *testing.T) {
		requireCode(t, e.console(t, "POST", "/cgi-bin/user/update", map[string]any{"userid": "zhangsan", "new_userid": "zhangsan001"}), 0)
		ev := e.recv.next(t)
		require.Equal(t, "update_user", ev["ChangeType"])
		require.Equal(t, "zhangsan", ev["UserID"])
		require.Equal(t, "zhangsan001", ev["NewUserID"])
		require.ElementsMatch(t, []string{"UserID", "NewUserID"}, fieldNames(ev))
	})

	t.Run("DepartmentChangeCarriesLeaderFlags", func(t *testing.T) {
		requireCode(t, e.console(t, "POST", "/cgi-bin/user/update", map[string]any{"userid": "zhangsan001", "department": []int{1, 2}, "is_leader_in_dept": []int{0, 1}}), 0)
		ev := e.recv.next(t)
		require.Equal(t, "1,2", ev["Department"])
		require.Equal(t, "0,1", ev["IsLeaderInDept"])
	})

	t.Run("OrderOnlyChangeSendsNothing", func(t *testing.T) {
		before := e.srv.CallbackStats().Enqueued
		requireCode(t, e.console(t, "POST", "/cgi-bin/user/update", map[string]any{"userid": "zhangsan001", "order": []int{5, 6}}), 0)
		require.Equal(t, before, e.srv.CallbackStats().Enqueued)
	})

	var partyID string
	t.Run("PartyEvents", func(t *testing.T) {
		r := e.console(t, "POST", "/cgi-bin/department/create", map[string]any{"name": "张三部", "parentid": 1, "order": 7})
		partyID = jsonNumber(int(r["id"].(float64)))
		ev := e.recv.next(t)
		require.Equal(t, "create_party", ev["ChangeType"])
		require.Equal(t, partyID, ev["Id"])
		require.Equal(t, "张三部", ev["Name"])
		require.Equal(t, "1", ev["ParentId"])
		require.Equal(t, "7", ev["Order"])

		requireCode(t, e.console(t, "POST", "/cgi-bin/department/update", map[string]any{"id": partyID, "name": "李四部", "order": 9}), 0)
		ev = e.recv.next(t)
		require.Equal(t, "update_party", ev["ChangeType"])
		require.ElementsMatch(t, []string{"Id", "Name"}, fieldNames(ev))

		requireCode(t, e.console(t, "POST", "/cgi-bin/department/update", map[string]any{"id": partyID, "parentid": 2}), 0)
		ev = e.recv.next(t)
		require.ElementsMatch(t, []string{"Id", "ParentId"}, fieldNames(ev))
		require.Equal(t, "2", ev["ParentId"])
	})

	t.Run("TagEvents", func(t *testing.T) {
		requireCode(t, e.console(t, "POST", "/cgi-bin/tag/create", map[string]any{"tagname": "回调", "tagid": 2000}), 0)
		requireCode(t, e.console(t, "POST", "/cgi-bin/tag/addtagusers", map[string]any{"tagid": 2000, "userlist": []string{"zhangsan001", "u000002"}, "partylist": []int{1, 2}}), 0)
		ev := e.recv.next(t)
		require.Equal(t, "update_tag", ev["ChangeType"], "tag creation has no event")
		require.Equal(t, "2000", ev["TagId"])
		require.Equal(t, "zhangsan001,u000002", ev["AddUserItems"])
		require.Equal(t, "1,2", ev["AddPartyItems"])
		requireCode(t, e.console(t, "POST", "/cgi-bin/tag/deltagusers", map[string]any{"tagid": 2000, "userlist": []string{"u000002"}, "partylist": []int{2}}), 0)
		ev = e.recv.next(t)
		require.Equal(t, "u000002", ev["DelUserItems"])
		require.Equal(t, "2", ev["DelPartyItems"])
		require.NotContains(t, ev, "AddUserItems")
	})

	t.Run("DeleteEvents", func(t *testing.T) {
		requireCode(t, e.console(t, "GET", "/cgi-bin/user/delete?userid=zhangsan001", nil), 0)
		ev := e.recv.next(t)
		require.Equal(t, "delete_user", ev["ChangeType"])
		require.ElementsMatch(t, []string{"UserID"}, fieldNames(ev))
		requireCode(t, e.console(t, "GET", "/cgi-bin/department/delete?id="+partyID, nil), 0)
		ev = e.recv.next(t)
		require.Equal(t, "delete_party", ev["ChangeType"])
		require.Equal(t, partyID, ev["Id"])
	})
}

func TestMinimalMode(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.CallbackMinimal = true; c.SeedUsers = 5 })

	requireCode(t, e.console(t, "POST", "/cgi-bin/user/create", map[string]any{"userid": "lisi", "name": "李四", "department": []int{1, 2}, "mobile": "13800000001", "position": "x"}), 0)
	ev := e.recv.next(t)
	require.Equal(t, "create_user", ev["ChangeType"])
	require.ElementsMatch(t, []string{"UserID", "Department"}, fieldNames(ev))
	require.Equal(t, "1,2", ev["Department"])

	// A name change is not evented; a department change is, with only UserID/Department.
	requireCode(t, e.console(t, "POST", "/cgi-bin/user/update", map[string]any{"userid": "lisi", "name": "李四四"}), 0)
	requireCode(t, e.console(t, "POST", "/cgi-bin/user/update", map[string]any{"userid": "lisi", "department": []int{2}}), 0)
	ev = e.recv.next(t)
	require.Equal(t, "update_user", ev["ChangeType"])
	require.ElementsMatch(t, []string{"UserID", "Department"}, fieldNames(ev))
	require.Equal(t, "2", ev["Department"])

	requireCode(t, e.console(t, "POST", "/cgi-bin/user/update", map[string]any{"userid": "lisi", "new_userid": "lisi2"}), 0)
	ev = e.recv.next(t)
	require.ElementsMatch(t, []string{"UserID", "NewUserID"}, fieldNames(ev))

	r := e.console(t, "POST", "/cgi-bin/department/create", map[string]any{"name": "极简", "parentid": 1})
	id := jsonNumber(int(r["id"].(float64)))
	ev = e.recv.next(t)
	require.Equal(t, "create_party", ev["ChangeType"])
	require.ElementsMatch(t, []string{"Id", "ParentId"}, fieldNames(ev))

	requireCode(t, e.console(t, "POST", "/cgi-bin/department/update", map[string]any{"id": id, "name": "改名"}), 0)
	requireCode(t, e.console(t, "POST", "/cgi-bin/department/update", map[string]any{"id": id, "parentid": 2, "name": "再改"}), 0)
	ev = e.recv.next(t)
	require.Equal(t, "update_party", ev["ChangeType"])
	require.ElementsMatch(t, []string{"Id", "ParentId"}, fieldNames(ev))

	requireCode(t, e.console(t, "GET", "/cgi-bin/user/delete?userid=lisi2", nil), 0)
	require.Equal(t, "delete_user", e.recv.next(t)["ChangeType"])
	e.idle(t)
	require.EqualValues(t, 6, e.srv.CallbackStats().Sent, "the name-only changes were not sent")
}

func TestCallbackDelivery(t *testing.T) {
	t.Parallel()

	t.Run("RetriesUntilReceiverAnswers200", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.recv.failNext(2)
		requireCode(t, e.console(t, "POST", "/cgi-bin/user/create", newUser("retry1", "13600000011")), 0)
		ev := e.recv.next(t)
		require.Equal(t, "retry1", ev["UserID"])
		e.idle(t)
		st := e.srv.CallbackStats()
		require.EqualValues(t, 1, st.Sent)
		require.EqualValues(t, 2, st.Retried)
		require.EqualValues(t, 3, e.recv.attempt.Load())
	})

	t.Run("GivesUpAfterThreeRetriesAndKeepsOrder", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.recv.failNext(4)
		requireCode(t, e.console(t, "POST", "/cgi-bin/user/create", newUser("lost", "13600000021")), 0)
		requireCode(t, e.console(t, "POST", "/cgi-bin/user/create", newUser("next", "13600000022")), 0)
		require.Equal(t, "next", e.recv.next(t)["UserID"])
		e.idle(t)
		st := e.srv.CallbackStats()
		require.EqualValues(t, 1, st.Failed)
		require.EqualValues(t, 3, st.Retried)
		require.EqualValues(t, 1, st.Sent)
		require.EqualValues(t, 5, e.recv.attempt.Load(), "4 attempts for the lost one, 1 for the next")
	})

	t.Run("DeliversStrictlyInOrder", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.recv.failNext(3) // the first event needs retries; the others must wait for it
		var want []string
		for i := 0; i < 20; i++ {
			id := "ord" + jsonNumber(i)
			want = append(want, id)
			requireCode(t, e.console(t, "POST", "/cgi-bin/user/create", newUser(id, "1360010"+jsonNumber(1000+i))), 0)
		}
		var got []string
		for range want {
			got = append(got, e.recv.next(t)["UserID"])
		}
		require.Equal(t, want, got)
	})

	t.Run("TimeoutCountsAsFailure", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(func() { close(release); slow.Close() })
		e := setup(t, func(c *Config) {
			c.CallbackURL = slow.URL
			c.CallbackTimeout = 50 * time.Millisecond
			c.CallbackRetries = 1
		})
		requireCode(t, e.console(t, "POST", "/cgi-bin/user/create", newUser("slow", "13600000031")), 0)
		waitFor(t, "the callback to fail", func() bool { return e.srv.CallbackStats().Failed == 1 })
		require.EqualValues(t, 1, e.srv.CallbackStats().Retried)
	})

	t.Run("FaultsDropAndDuplicate", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		require.NoError(t, e.srv.SetFaults(Faults{CallbackDropRate: 1}))
		requireCode(t, e.console(t, "POST", "/cgi-bin/user/create", newUser("dropped", "13600000041")), 0)
		e.idle(t)
		require.EqualValues(t, 1, e.srv.CallbackStats().Dropped)
		require.NoError(t, e.srv.SetFaults(Faults{CallbackDuplicateRate: 1}))
		requireCode(t, e.console(t, "POST", "/cgi-bin/user/create", newUser("twice", "13600000042")), 0)
		require.Equal(t, "twice", e.recv.next(t)["UserID"])
		require.Equal(t, "twice", e.recv.next(t)["UserID"])
		require.EqualValues(t, 1, e.srv.CallbackStats().Duplicated)
	})

	t.Run("FaultsReorderWithinWindow", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		gate := make(chan struct{})
		e.recv.mu.Lock()
		e.recv.gate = gate // hold the first delivery so the others are queued when reordering applies
		e.recv.mu.Unlock()
		require.NoError(t, e.srv.SetFaults(Faults{CallbackReorderRate: 1, CallbackReorderWindow: 2}))
		var want []string
		for i := 0; i < 6; i++ {
			id := "re" + jsonNumber(i)
			want = append(want, id)
			requireCode(t, e.console(t, "POST", "/cgi-bin/user/create", newUser(id, "1360020"+jsonNumber(1000+i))), 0)
		}
		close(gate)
		var got []string
		for range want {
			got = append(got, e.recv.next(t)["UserID"])
		}
		require.ElementsMatch(t, want, got)
		require.Positive(t, e.srv.CallbackStats().Reordered)
	})

	t.Run("SendCallbackToPerJobTarget", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		other := newReceiver(t)
		target, err := NewCallbackTarget(other.srv.URL, testToken, testAESKey, testCorp)
		require.NoError(t, err)
		require.NoError(t, e.srv.SendCallback(target, BatchJobResultXML(testCorp, "job1", "sync_user", 0, "ok", time.Unix(1425284517, 0))))
		ev := other.next(t)
		require.Equal(t, "batch_job_result", ev["Event"])
		require.Equal(t, "job1", ev["BatchJob/JobId"])
		require.Equal(t, "sync_user", ev["BatchJob/JobType"])
		require.Equal(t, "0", ev["BatchJob/ErrCode"])
		require.Equal(t, "ok", ev["BatchJob/ErrMsg"])
		require.NoError(t, e.srv.SendCallback(nil, BatchJobResultXML(testCorp, "job2", "replace_user", 0, "ok", time.Now())))
		require.Equal(t, "job2", e.recv.next(t)["BatchJob/JobId"])
	})
}

func TestCallbackURLVerification(t *testing.T) {
	t.Parallel()

	t.Run("ReceiverEchoesPlaintext", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		require.NoError(t, e.srv.VerifyCallbackURL(context.Background()))
		require.Equal(t, "ok", e.srv.CallbackVerification())
		require.EqualValues(t, 1, e.recv.gets.Load())
	})

	t.Run("WrongEchoFails", func(t *testing.T) {
		t.Parallel()
		bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("\"" + r.URL.Query().Get("echostr") + "\""))
		}))
		t.Cleanup(bad.Close)
		e := setup(t, func(c *Config) { c.CallbackURL = bad.URL })
		require.Error(t, e.srv.VerifyCallbackURL(context.Background()))
		require.True(t, strings.HasPrefix(e.srv.CallbackVerification(), "failed:"))
	})

	t.Run("StartVerifiesInBackground", func(t *testing.T) {
		t.Parallel()
		recv := newReceiver(t)
		srv, err := New(Config{Addr: "127.0.0.1:0", CorpID: testCorp, ContactSecret: testContact,
			CallbackURL: recv.srv.URL, CallbackToken: testToken, CallbackAESKey: testAESKey})
		require.NoError(t, err)
		require.NoError(t, srv.Start(context.Background()))
		t.Cleanup(func() { require.NoError(t, srv.Close(context.Background())) })
		waitFor(t, "verification", func() bool { return srv.CallbackVerification() == "ok" })
	})
}
