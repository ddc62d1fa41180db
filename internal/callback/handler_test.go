package callback_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/callback"
	"github.com/wecomsync/wecomsync/internal/crypto"
	"github.com/wecomsync/wecomsync/internal/tenant"
	"github.com/wecomsync/wecomsync/internal/testutil/natstest"
)

var (
	tenantA = tenant.Tenant{Name: "acme", CorpID: "wwacme0000000001", Token: "tokenA", AESKey: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"}
	tenantB = tenant.Tenant{Name: "beta", CorpID: "wwbeta0000000002", Token: "tokenB", AESKey: "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"}
)

const createUserXML = `<xml><ToUserName><![CDATA[wwacme0000000001]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType>create_user</ChangeType><UserID><![CDATA[zhangsan]]></UserID><Name><![CDATA[张三]]></Name><Department><![CDATA[1,2]]></Department><IsLeaderInDept><![CDATA[1,0]]></IsLeaderInDept><Mobile>13800000000</Mobile><Gender>1</Gender></xml>`

type bundle struct {
	url     string
	js      jetstream.JetStream
	stream  jetstream.Stream
	nats    *natstest.Server
	metrics *callback.Metrics
	now     time.Time
}

type setupOpts struct {
	tenants        []tenant.Tenant
	noStream       bool
	publishTimeout time.Duration
}

func setup(t testing.TB, o setupOpts) *bundle {
	t.Helper()
	if o.tenants == nil {
		o.tenants = []tenant.Tenant{tenantA}
	}
	ns := natstest.Start(t)
	_, js := ns.Connect(t)
	b := &bundle{js: js, nats: ns, now: time.Unix(1700000000, 0)}
	if !o.noStream {
		require.NoError(t, callback.EnsureStream(context.Background(), js, callback.DefaultStreamOptions))
		s, err := js.Stream(context.Background(), callback.StreamName)
		require.NoError(t, err)
		b.stream = s
	}
	b.metrics = callback.NewMetrics(prometheus.NewRegistry())
	h, err := callback.NewHandler(o.tenants, js, slog.New(slog.DiscardHandler), b.metrics, callback.Options{
		Now: func() time.Time { return b.now }, PublishTimeout: o.publishTimeout, MaxBody: 64 << 10,
	})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	b.url = srv.URL
	return b
}

// signedPost builds the request WeCom would send for plaintext.
func signedPost(t testing.TB, base string, tn tenant.Tenant, plaintext string, ts time.Time) (string, []byte) {
	t.Helper()
	c, err := crypto.New(tn.Token, tn.AESKey, tn.CorpID)
	require.NoError(t, err)
	stamp := strconv.FormatInt(ts.Unix(), 10)
	body, sig, err := c.EncryptMsg([]byte(plaintext), stamp, "nonce42")
	require.NoError(t, err)
	return fmt.Sprintf("%s?msg_signature=%s&timestamp=%s&nonce=nonce42", base, sig, stamp), body
}

func post(t *testing.T, target string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(target, "text/xml", strings.NewReader(string(body)))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func (b *bundle) msgCount(t testing.TB) uint64 {
	t.Helper()
	info, err := b.stream.Info(context.Background())
	require.NoError(t, err)
	return info.State.Msgs
}

func TestHandlerStoresEvents(t *testing.T) {
	t.Parallel()

	t.Run("AnswersEmpty200AfterStoring", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		target, body := signedPost(t, b.url+"/callback", tenantA, createUserXML, b.now)
		status, respBody := post(t, target, body)
		require.Equal(t, http.StatusOK, status)
		require.Empty(t, respBody)

		raw, err := b.stream.GetLastMsgForSubject(context.Background(), "wecom.events.wwacme0000000001.change_contact.create_user")
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw.Data, &m))
		require.Equal(t, "acme", m["tenant"])
		require.Equal(t, "wwacme0000000001", m["corp_id"])
		require.Equal(t, "change_contact", m["event"])
		require.Equal(t, "create_user", m["change_type"])
		require.EqualValues(t, 1700000000, m["create_time"])
		require.Equal(t, createUserXML, m["xml"])
		require.Equal(t, raw.Header.Get(jetstream.MsgIDHeader), m["id"])
		require.Len(t, m["id"], 64)
		data := m["data"].(map[string]any)
		require.Equal(t, "zhangsan", data["user_id"])
		require.Equal(t, []any{1.0, 2.0}, data["department"])
		require.NotContains(t, data, "email", "absent fields stay absent")
		require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.Requests.WithLabelValues("acme", "POST", callback.OutcomeOK)))
	})

	t.Run("ServesTenantsByPath", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{tenants: []tenant.Tenant{tenantA, tenantB}})
		xmlB := strings.ReplaceAll(createUserXML, "wwacme0000000001", "wwbeta0000000002")
		target, body := signedPost(t, b.url+"/callback/beta", tenantB, xmlB, b.now)
		status, _ := post(t, target, body)
		require.Equal(t, http.StatusOK, status)
		_, err := b.stream.GetLastMsgForSubject(context.Background(), "wecom.events.wwbeta0000000002.change_contact.create_user")
		require.NoError(t, err)

		// With two tenants the bare /callback is ambiguous, and A's signature is not B's.
		target, body = signedPost(t, b.url+"/callback", tenantA, createUserXML, b.now)
		status, _ = post(t, target, body)
		require.Equal(t, http.StatusNotFound, status)
		target, body = signedPost(t, b.url+"/callback/beta", tenantA, createUserXML, b.now)
		status, _ = post(t, target, body)
		require.Equal(t, http.StatusUnauthorized, status)
		require.EqualValues(t, 1, b.msgCount(t))
	})

	t.Run("ServesTheDefaultTenantAtTheBarePathAmongSeveral", func(t *testing.T) {
		t.Parallel()
		def := tenantA
		def.Name = tenant.DefaultName
		b := setup(t, setupOpts{tenants: []tenant.Tenant{def, tenantB}})
		target, body := signedPost(t, b.url+"/callback", def, createUserXML, b.now)
		status, _ := post(t, target, body)
		require.Equal(t, http.StatusOK, status)
		xmlB := strings.ReplaceAll(createUserXML, "wwacme0000000001", "wwbeta0000000002")
		target, body = signedPost(t, b.url+"/callback/beta", tenantB, xmlB, b.now)
		status, _ = post(t, target, body)
		require.Equal(t, http.StatusOK, status)
		require.EqualValues(t, 2, b.msgCount(t))
	})

	t.Run("DuplicateIsStill200AndStoredOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		for range 3 {
			// A retry from WeCom re-encrypts the same XML with a fresh random prefix.
			target, body := signedPost(t, b.url+"/callback", tenantA, createUserXML, b.now)
			status, _ := post(t, target, body)
			require.Equal(t, http.StatusOK, status)
		}
		require.EqualValues(t, 1, b.msgCount(t))
		require.Equal(t, 2.0, testutil.ToFloat64(b.metrics.Duplicates.WithLabelValues("acme")))
	})

	t.Run("StoresUnknownEventsUnderTheirOwnSubject", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		unknown := `<xml><ToUserName>wwacme0000000001</ToUserName><FromUserName>sys</FromUserName><CreateTime>1700000001</CreateTime><MsgType>event</MsgType><Event>change_external_contact</Event><ChangeType>add_external_contact</ChangeType><ExternalUserID>wmXYZ</ExternalUserID></xml>`
		target, body := signedPost(t, b.url+"/callback", tenantA, unknown, b.now)
		status, _ := post(t, target, body)
		require.Equal(t, http.StatusOK, status)
		raw, err := b.stream.GetLastMsgForSubject(context.Background(), "wecom.events.wwacme0000000001.change_external_contact")
		require.NoError(t, err)
		require.Contains(t, string(raw.Data), `"external_user_id":"wmXYZ"`)

		ct := strings.ReplaceAll(createUserXML, "create_user", "create_robot")
		target, body = signedPost(t, b.url+"/callback", tenantA, ct, b.now)
		status, _ = post(t, target, body)
		require.Equal(t, http.StatusOK, status)
		_, err = b.stream.GetLastMsgForSubject(context.Background(), "wecom.events.wwacme0000000001.change_contact.create_robot")
		require.NoError(t, err)
	})

	t.Run("StoresAuthenticButMalformedXMLAsUnparsed", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		target, body := signedPost(t, b.url+"/callback", tenantA, "<xml><UserID>broken", b.now)
		status, _ := post(t, target, body)
		require.Equal(t, http.StatusOK, status)
		raw, err := b.stream.GetLastMsgForSubject(context.Background(), "wecom.events.wwacme0000000001.unparsed")
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw.Data, &m))
		require.Equal(t, "unparsed", m["event"])
		require.Equal(t, "<xml><UserID>broken", m["xml"])
	})
}

func TestHandlerVerifiesURL(t *testing.T) {
	t.Parallel()

	t.Run("AnswersTheOfficialEchostrVerbatim", func(t *testing.T) {
		t.Parallel()
		v1 := tenant.Tenant{Name: "v1", CorpID: "wx5823bf96d3bd56c7", Token: "QDG6eK", AESKey: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"}
		b := setup(t, setupOpts{tenants: []tenant.Tenant{v1}})
		b.now = time.Unix(1409659589, 0)
		resp, err := http.Get(b.url + "/callback/v1?msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&nonce=263014780&echostr=P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D")
		require.NoError(t, err)
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "1616140317555161061", string(got))
	})

	t.Run("RejectsForgedEchostr", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		c, err := crypto.New(tenantA.Token, tenantA.AESKey, tenantA.CorpID)
		require.NoError(t, err)
		echo, err := c.Encrypt([]byte("12345"))
		require.NoError(t, err)
		stamp := strconv.FormatInt(b.now.Unix(), 10)
		q := url.Values{"msg_signature": {crypto.Signature("wrong", stamp, "n", echo)}, "timestamp": {stamp}, "nonce": {"n"}, "echostr": {echo}}
		resp, err := http.Get(b.url + "/callback?" + q.Encode())
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

		q.Set("msg_signature", crypto.Signature(tenantA.Token, stamp, "n", echo))
		resp, err = http.Get(b.url + "/callback?" + q.Encode())
		require.NoError(t, err)
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "12345", string(got))
	})
}

func TestHandlerRejectsBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	other := tenantA
	other.AESKey = tenantB.AESKey
	foreign := tenantA
	foreign.CorpID = "wwsomeoneelse"

	good := func() (string, []byte) { return signedPost(t, b.url+"/callback", tenantA, createUserXML, b.now) }
	withQuery := func(target, key, value string) string {
		u, err := url.Parse(target)
		require.NoError(t, err)
		q := u.Query()
		if value == "" {
			q.Del(key)
		} else {
			q.Set(key, value)
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	resign := func(body []byte, stamp string) string {
		env, err := crypto.ParseEnvelope(body)
		require.NoError(t, err)
		return fmt.Sprintf("%s/callback?msg_signature=%s&timestamp=%s&nonce=n", b.url, crypto.Signature(tenantA.Token, stamp, "n", env.Encrypt), stamp)
	}
	nowStamp := strconv.FormatInt(b.now.Unix(), 10)

	cases := []struct {
		name   string
		req    func() (method, target string, body []byte)
		status int
	}{
		{"ForgedSignature", func() (string, string, []byte) {
			target, body := good()
			return "POST", withQuery(target, "msg_signature", strings.Repeat("0", 40)), body
		}, http.StatusUnauthorized},
		{"ReplayedOldTimestamp", func() (string, string, []byte) {
			target, body := signedPost(t, b.url+"/callback", tenantA, createUserXML, b.now.Add(-6*time.Minute))
			return "POST", target, body
		}, http.StatusForbidden},
		{"FutureTimestamp", func() (string, string, []byte) {
			target, body := signedPost(t, b.url+"/callback", tenantA, createUserXML, b.now.Add(6*time.Minute))
			return "POST", target, body
		}, http.StatusForbidden},
		{"MissingSignature", func() (string, string, []byte) {
			target, body := good()
			return "POST", withQuery(target, "msg_signature", ""), body
		}, http.StatusBadRequest},
		{"NonNumericTimestamp", func() (string, string, []byte) {
			_, body := good()
			return "POST", resign(body, "yesterday"), body
		}, http.StatusBadRequest},
		{"TruncatedBody", func() (string, string, []byte) {
			target, body := good()
			return "POST", target, body[:len(body)/2]
		}, http.StatusBadRequest},
		{"MalformedXMLBody", func() (string, string, []byte) {
			target, _ := good()
			return "POST", target, []byte("<xml><Encrypt>")
		}, http.StatusBadRequest},
		{"BadBase64SignedCorrectly", func() (string, string, []byte) {
			body := []byte("<xml><Encrypt><![CDATA[@@not-base64@@]]></Encrypt></xml>")
			return "POST", resign(body, nowStamp), body
		}, http.StatusBadRequest},
		{"WrongKey", func() (string, string, []byte) {
			target, body := signedPost(t, b.url+"/callback", other, createUserXML, b.now)
			return "POST", target, body
		}, http.StatusBadRequest},
		{"ReceiveIDOfAnotherCorp", func() (string, string, []byte) {
			target, body := signedPost(t, b.url+"/callback", foreign, createUserXML, b.now)
			return "POST", target, body
		}, http.StatusForbidden},
		{"OversizedBody", func() (string, string, []byte) {
			target, _ := signedPost(t, b.url+"/callback", tenantA, createUserXML, b.now)
			return "POST", target, []byte("<xml><Encrypt>" + strings.Repeat("A", 70<<10) + "</Encrypt></xml>")
		}, http.StatusRequestEntityTooLarge},
		{"WrongMethod", func() (string, string, []byte) {
			target, body := good()
			return "PUT", target, body
		}, http.StatusMethodNotAllowed},
		{"UnknownTenant", func() (string, string, []byte) {
			target, body := signedPost(t, b.url+"/callback/nobody", tenantA, createUserXML, b.now)
			return "POST", target, body
		}, http.StatusNotFound},
		{"UnknownPath", func() (string, string, []byte) {
			_, body := good()
			return "POST", b.url + "/callback/acme/extra", body
		}, http.StatusNotFound},
	}
	for _, tc := range cases {
		method, target, body := tc.req()
		req, err := http.NewRequest(method, target, strings.NewReader(string(body)))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err, tc.name)
		resp.Body.Close()
		require.Equal(t, tc.status, resp.StatusCode, tc.name)
	}
	require.EqualValues(t, 0, b.msgCount(t), "no rejected request may be stored")
	require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.CryptoFailures.WithLabelValues("acme", "receiveid")))
	require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.CryptoFailures.WithLabelValues("acme", "base64")))
}

func TestHandlerAnswers503WhenNotStored(t *testing.T) {
	t.Parallel()

	t.Run("StreamMissing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{noStream: true, publishTimeout: 500 * time.Millisecond})
		target, body := signedPost(t, b.url+"/callback", tenantA, createUserXML, b.now)
		status, _ := post(t, target, body)
		require.Equal(t, http.StatusServiceUnavailable, status)
	})

	t.Run("NATSDown", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{publishTimeout: 500 * time.Millisecond})
		b.nats.Shutdown()
		b.nats.WaitForShutdown()
		target, body := signedPost(t, b.url+"/callback", tenantA, createUserXML, b.now)
		start := time.Now()
		status, _ := post(t, target, body)
		require.Equal(t, http.StatusServiceUnavailable, status)
		// The bound is the configured publish timeout plus slack, far inside WeCom's 5 s.
		require.Less(t, time.Since(start), 4*time.Second)
		require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.Requests.WithLabelValues("acme", "POST", callback.OutcomePublishFailed)))
	})
}

// TestHandlerConcurrentStores checks that concurrent deliveries of distinct events are all
// stored exactly once.
func TestHandlerConcurrentStores(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	const n = 200
	var failed atomic.Int32
	done := make(chan struct{})
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			xml := strings.Replace(createUserXML, "zhangsan", fmt.Sprintf("user%03d", i), 1)
			target, body := signedPost(t, b.url+"/callback", tenantA, xml, b.now)
			resp, err := http.Post(target, "text/xml", strings.NewReader(string(body)))
			if err != nil || resp.StatusCode != http.StatusOK {
				failed.Add(1)
			}
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	for range n {
		<-done
	}
	require.Zero(t, failed.Load())
	require.EqualValues(t, n, b.msgCount(t))
}
