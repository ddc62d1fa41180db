package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// benchEnv starts an emulator with n seeded members on a real loopback listener.
func benchEnv(b *testing.B, n int, cfg Config) (*Server, string, string) {
	b.Helper()
	cfg.CorpID, cfg.ContactSecret, cfg.SeedUsers, cfg.RateLimitPerMinute, cfg.ConcurrencyLimit = testCorp, testContact, n, -1, -1
	srv, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	b.Cleanup(func() { ts.Close(); _ = srv.Close(context.Background()) })
	resp, err := http.Get(ts.URL + "/cgi-bin/gettoken?corpid=" + testCorp + "&corpsecret=" + testContact)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		b.Fatal(err)
	}
	return srv, ts.URL, tok.AccessToken
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
}

func reportRate(b *testing.B, start time.Time, unit string) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), unit)
}

// BenchmarkUserGet measures user/get over HTTP loopback with concurrent clients against a
// 200,000-member directory. Target: >= 5,000 calls/s.
func BenchmarkUserGet(b *testing.B) {
	_, url, tok := benchEnv(b, 200000, Config{})
	client := benchClient()
	var i atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("u%06d", 1+i.Add(1)%200000)
			resp, err := client.Get(url + "/cgi-bin/user/get?access_token=" + tok + "&userid=" + id)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	reportRate(b, start, "calls/s")
}

// BenchmarkUserListID measures user/list_id pages of 1,000 rows over HTTP loopback with
// concurrent clients. Target: >= 5,000 calls/s is for small calls; this one is the heavy
// paging call a full sync makes.
func BenchmarkUserListID(b *testing.B) {
	_, url, tok := benchEnv(b, 200000, Config{})
	client := benchClient()
	// Collect cursors once so each call reads a different page.
	var cursors []string
	cur := ""
	for i := 0; i < 200; i++ {
		cursors = append(cursors, cur)
		resp, err := client.Post(url+"/cgi-bin/user/list_id?access_token="+tok, "application/json",
			bytes.NewReader([]byte(`{"cursor":"`+cur+`","limit":1000}`)))
		if err != nil {
			b.Fatal(err)
		}
		var page struct {
			NextCursor string `json:"next_cursor"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if cur = page.NextCursor; cur == "" {
			break
		}
	}
	var i atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := cursors[int(i.Add(1))%len(cursors)]
			resp, err := client.Post(url+"/cgi-bin/user/list_id?access_token="+tok, "application/json",
				bytes.NewReader([]byte(`{"cursor":"`+c+`","limit":1000}`)))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	reportRate(b, start, "calls/s")
}

// BenchmarkCallbacks measures encrypted change_contact deliveries to a trivial local
// receiver (answers 200 at once), in order through the single queue. Target: >= 2,000/s.
func BenchmarkCallbacks(b *testing.B) {
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(recv.Close)
	srv, _, _ := benchEnv(b, 1000, Config{CallbackURL: recv.URL, CallbackToken: testToken, CallbackAESKey: testAESKey})
	u, _ := srv.Directory().User("u000001")
	ev := ChangeEvent{ChangeType: ChangeCreateUser, UserID: u.UserID, User: u}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		srv.Notify(ev)
	}
	for srv.CallbackStats().Sent < int64(b.N) {
		if srv.CallbackStats().Failed > 0 {
			b.Fatal("a callback failed")
		}
		time.Sleep(time.Millisecond)
	}
	reportRate(b, start, "callbacks/s")
}

// BenchmarkSeed measures seeding a 200,000-member org.
func BenchmarkSeed(b *testing.B) {
	for i := 0; i < b.N; i++ {
		d := NewDirectory(testCorp, "根")
		d.Seed(200000, uint64(i+1))
	}
}
