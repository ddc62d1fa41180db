package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/crypto"
	"github.com/wecomsync/wecomsync/internal/testutil/natstest"
)

const (
	corpID = "wwe2e00000000001"
	token  = "e2eToken"
	aesKey = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
)

func head(ct string) string {
	return `<xml><ToUserName><![CDATA[` + corpID + `]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType>` + ct + `</ChangeType>`
}

// samples holds one callback of every kind, with the subject it must land on and data
// fields it must carry.
var samples = []struct {
	name, xml, subject string
	data               map[string]any
}{
	{"create_user", head("create_user") + `<UserID><![CDATA[zhangsan]]></UserID><Name><![CDATA[张三]]></Name><Department><![CDATA[1,2,3]]></Department><MainDepartment>1</MainDepartment><IsLeaderInDept><![CDATA[1,0,0]]></IsLeaderInDept><DirectLeader><![CDATA[lisi,wangwu]]></DirectLeader><Position><![CDATA[产品经理]]></Position><Mobile>13800000000</Mobile><Gender>1</Gender><Email><![CDATA[zhangsan@gzdev.com]]></Email><Status>1</Status><ExtAttr><Item><Name><![CDATA[爱好]]></Name><Type>0</Type><Text><Value><![CDATA[旅游]]></Value></Text></Item></ExtAttr></xml>`,
		"change_contact.create_user", map[string]any{"user_id": "zhangsan", "name": "张三", "department": []any{1.0, 2.0, 3.0}, "is_leader_in_dept": []any{1.0, 0.0, 0.0}, "direct_leader": []any{"lisi", "wangwu"}, "main_department": 1.0, "gender": 1.0}},
	{"update_user", head("update_user") + `<UserID><![CDATA[zhangsan]]></UserID><NewUserID><![CDATA[zhangsan001]]></NewUserID><Position>总监</Position></xml>`,
		"change_contact.update_user", map[string]any{"user_id": "zhangsan", "new_user_id": "zhangsan001", "position": "总监"}},
	{"delete_user", head("delete_user") + `<UserID>zhangsan001</UserID></xml>`,
		"change_contact.delete_user", map[string]any{"user_id": "zhangsan001"}},
	{"create_party", head("create_party") + `<Id>2</Id><Name><![CDATA[研发部]]></Name><ParentId><![CDATA[1]]></ParentId><Order>1</Order></xml>`,
		"change_contact.create_party", map[string]any{"id": 2.0, "name": "研发部", "parent_id": 1.0, "order": 1.0}},
	{"update_party", head("update_party") + `<Id>2</Id><ParentId>3</ParentId></xml>`,
		"change_contact.update_party", map[string]any{"id": 2.0, "parent_id": 3.0}},
	{"delete_party", head("delete_party") + `<Id>2</Id></xml>`,
		"change_contact.delete_party", map[string]any{"id": 2.0}},
	{"update_tag", head("update_tag") + `<TagId>1</TagId><AddUserItems><![CDATA[zhangsan,lisi]]></AddUserItems><DelUserItems><![CDATA[zhangsan1]]></DelUserItems><AddPartyItems><![CDATA[1,2]]></AddPartyItems><DelPartyItems><![CDATA[3,4]]></DelPartyItems></xml>`,
		"change_contact.update_tag", map[string]any{"tag_id": 1.0, "add_user_items": []any{"zhangsan", "lisi"}, "del_user_items": []any{"zhangsan1"}, "add_party_items": []any{1.0, 2.0}, "del_party_items": []any{3.0, 4.0}}},
	{"batch_job_result_import", `<xml><ToUserName><![CDATA[` + corpID + `]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000001</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[batch_job_result]]></Event><BatchJob><JobId><![CDATA[S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4]]></JobId><JobType><![CDATA[sync_user]]></JobType><ErrCode>0</ErrCode><ErrMsg><![CDATA[ok]]></ErrMsg></BatchJob></xml>`,
		"batch_job_result", map[string]any{"batch_job": map[string]any{"job_id": "S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4", "job_type": "sync_user", "err_code": 0.0, "err_msg": "ok"}}},
	{"batch_job_result_export", `<xml><ToUserName><![CDATA[` + corpID + `]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000002</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[batch_job_result]]></Event><BatchJob><JobId><![CDATA[jobid_export1]]></JobId><JobType><![CDATA[export_user]]></JobType><ErrCode>0</ErrCode><ErrMsg><![CDATA[ok]]></ErrMsg></BatchJob></xml>`,
		"batch_job_result", map[string]any{"batch_job": map[string]any{"job_id": "jobid_export1", "job_type": "export_user", "err_code": 0.0, "err_msg": "ok"}}},
	{"unknown_event", `<xml><ToUserName>` + corpID + `</ToUserName><FromUserName>sys</FromUserName><CreateTime>1700000003</CreateTime><MsgType>event</MsgType><Event>change_external_chat</Event><ChatId>wrx</ChatId></xml>`,
		"change_external_chat", map[string]any{"chat_id": "wrx"}},
}

type harness struct {
	base   string
	js     jetstream.JetStream
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T) *harness {
	t.Helper()
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	env := map[string]string{
		"WECOM_CORP_ID": corpID, "WECOM_CALLBACK_TOKEN": token, "WECOM_CALLBACK_AES_KEY": aesKey,
		"NATS_URL": ns.URL, "CALLBACK_ADDR": "127.0.0.1:0", "LOG_LEVEL": "warn",
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	h := &harness{js: js, cancel: cancel, done: make(chan error, 1)}
	go func() {
		h.done <- run(ctx, []string{"callback"}, func(k string) string { return env[k] }, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err, "run exited before printing its ready line")
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "callback ready addr=")
	require.True(t, ok, "unexpected ready line %q", line)
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	h.base = "http://" + addr
	t.Cleanup(func() {
		cancel()
		<-h.done
	})
	// Wait for /readyz, which turns ready once the stream exists: polling an observable
	// state with a deadline, not a sleep.
	require.Eventually(t, func() bool {
		resp, err := http.Get(h.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	return h
}

func (h *harness) post(t *testing.T, path, plaintext string, ts time.Time) int {
	t.Helper()
	c, err := crypto.New(token, aesKey, corpID)
	require.NoError(t, err)
	stamp := strconv.FormatInt(ts.Unix(), 10)
	body, sig, err := c.EncryptMsg([]byte(plaintext), stamp, "n1")
	require.NoError(t, err)
	resp, err := http.Post(fmt.Sprintf("%s%s?msg_signature=%s&timestamp=%s&nonce=n1", h.base, path, sig, stamp), "text/xml", strings.NewReader(string(body)))
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestRunEndToEnd(t *testing.T) {
	t.Parallel()
	h := start(t)
	ctx := context.Background()

	for _, s := range samples {
		require.Equal(t, http.StatusOK, h.post(t, "/callback", s.xml, time.Now()), s.name)
	}
	// Every class of bad input is rejected with its status and never stored.
	require.Equal(t, http.StatusForbidden, h.post(t, "/callback", samples[0].xml, time.Now().Add(-time.Hour)), "stale timestamp")
	require.Equal(t, http.StatusNotFound, h.post(t, "/callback/other", samples[0].xml, time.Now()), "unknown tenant")
	stamp := strconv.FormatInt(time.Now().Unix(), 10)
	signed := func(encrypted string) string {
		return fmt.Sprintf("%s/callback?msg_signature=%s&timestamp=%s&nonce=n", h.base, crypto.Signature(token, stamp, "n", encrypted), stamp)
	}
	wrongKey, err := crypto.New(token, "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", corpID)
	require.NoError(t, err)
	wrongKeyCT, err := wrongKey.Encrypt([]byte(samples[0].xml))
	require.NoError(t, err)
	otherCorp, err := crypto.New(token, aesKey, "wwsomeoneelse")
	require.NoError(t, err)
	otherCorpCT, err := otherCorp.Encrypt([]byte(samples[0].xml))
	require.NoError(t, err)
	for _, bad := range []struct {
		name, method, target, body string
		status                     int
	}{
		{"ForgedSignature", "POST", h.base + "/callback?msg_signature=x&timestamp=" + stamp + "&nonce=1", "<xml><Encrypt>AAAA</Encrypt></xml>", http.StatusUnauthorized},
		{"Oversized", "POST", h.base + "/callback?msg_signature=x&timestamp=1&nonce=1", strings.Repeat("x", 2<<20), http.StatusRequestEntityTooLarge},
		{"MissingParameters", "POST", h.base + "/callback", "<xml><Encrypt>AAAA</Encrypt></xml>", http.StatusBadRequest},
		{"MalformedEnvelope", "POST", signed("AAAA"), "<xml><Encrypt>AAAA", http.StatusBadRequest},
		{"TruncatedCiphertext", "POST", signed(wrongKeyCT[:40]), "<xml><Encrypt>" + wrongKeyCT[:40] + "</Encrypt></xml>", http.StatusBadRequest},
		{"WrongKey", "POST", signed(wrongKeyCT), "<xml><Encrypt>" + wrongKeyCT + "</Encrypt></xml>", http.StatusBadRequest},
		{"OtherCorpsReceiveID", "POST", signed(otherCorpCT), "<xml><Encrypt>" + otherCorpCT + "</Encrypt></xml>", http.StatusForbidden},
		{"WrongMethod", "DELETE", signed("AAAA"), "", http.StatusMethodNotAllowed},
		{"VerifyWithoutEchostr", "GET", signed("AAAA"), "", http.StatusBadRequest},
	} {
		req, err := http.NewRequest(bad.method, bad.target, strings.NewReader(bad.body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err, bad.name)
		resp.Body.Close()
		require.Equal(t, bad.status, resp.StatusCode, bad.name)
	}

	// Read everything back in order with an ordered consumer and compare.
	cons, err := h.js.OrderedConsumer(ctx, "WECOM_EVENTS", jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	batch, err := cons.FetchNoWait(100)
	require.NoError(t, err)
	var got []jetstream.Msg
	for m := range batch.Messages() {
		got = append(got, m)
	}
	require.NoError(t, batch.Error())
	require.Len(t, got, len(samples), "exactly the good callbacks are stored")
	for i, s := range samples {
		m := got[i]
		require.Equal(t, "wecom.events."+corpID+"."+s.subject, m.Subject(), s.name)
		var body map[string]any
		require.NoError(t, json.Unmarshal(m.Data(), &body), s.name)
		require.Equal(t, s.xml, body["xml"], s.name)
		require.Equal(t, "default", body["tenant"])
		require.Equal(t, m.Headers().Get(jetstream.MsgIDHeader), body["id"])
		_, err := time.Parse(time.RFC3339Nano, body["received_at"].(string))
		require.NoError(t, err)
		data := body["data"].(map[string]any)
		for k, v := range s.data {
			require.Equal(t, v, data[k], "%s: data.%s", s.name, k)
		}
	}

	// /metrics exposes the counters.
	resp, err := http.Get(h.base + "/metrics")
	require.NoError(t, err)
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, string(metrics), `wecomsync_callback_requests_total{method="POST",outcome="ok",tenant="default"} 10`)
	require.Contains(t, string(metrics), `wecomsync_callback_requests_total{method="POST",outcome="stale_timestamp",tenant="default"} 1`)
	require.Contains(t, string(metrics), `wecomsync_callback_publish_seconds_count 10`)

	resp, err = http.Get(h.base + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	h.cancel()
	select {
	case err := <-h.done:
		require.NoError(t, err, "run returns cleanly on cancel")
		h.done <- nil // for the cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	t.Parallel()
	for name, env := range map[string]map[string]string{
		"NoCorp":      {},
		"ShortKey":    {"WECOM_CORP_ID": corpID, "WECOM_CALLBACK_TOKEN": token, "WECOM_CALLBACK_AES_KEY": "abc"},
		"BadDuration": {"WECOM_CORP_ID": corpID, "WECOM_CALLBACK_TOKEN": token, "WECOM_CALLBACK_AES_KEY": aesKey, "CALLBACK_TIMESTAMP_WINDOW": "soon"},
		"SlowPublish": {"WECOM_CORP_ID": corpID, "WECOM_CALLBACK_TOKEN": token, "WECOM_CALLBACK_AES_KEY": aesKey, "CALLBACK_PUBLISH_TIMEOUT": "6s"},
		"BadLogLevel": {"WECOM_CORP_ID": corpID, "WECOM_CALLBACK_TOKEN": token, "WECOM_CALLBACK_AES_KEY": aesKey, "LOG_LEVEL": "loud"},
		"BadReplicas": {"WECOM_CORP_ID": corpID, "WECOM_CALLBACK_TOKEN": token, "WECOM_CALLBACK_AES_KEY": aesKey, "WECOM_EVENTS_REPLICAS": "9"},
		"TinyMaxBody": {"WECOM_CORP_ID": corpID, "WECOM_CALLBACK_TOKEN": token, "WECOM_CALLBACK_AES_KEY": aesKey, "CALLBACK_MAX_BODY_BYTES": "10"},
	} {
		err := run(context.Background(), []string{"callback"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
		require.ErrorContains(t, err, "configuration", name)
	}
}
