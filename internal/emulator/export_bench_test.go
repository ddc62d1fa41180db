package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// heapPeak samples the live heap until stop is called and returns the peak in bytes.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// BenchmarkExport200k measures export job generation for a seeded org of 200,000
// members: one op = export/<type> submitted with immediate jobs, i.e. the call returns
// once every block (100,000 members each) is encrypted on disk. It reports the peak heap
// in use during the op above the heap of the seeded directory (peak-extra-MB) and the
// ciphertext written; the gogc=10 run keeps garbage out of the peak, so its peak-extra-MB
// is what generation really holds (a small fraction of the plaintext: it streams).
//
//	go test -run '^$' -bench Export200k -benchtime 1x -benchmem ./internal/emulator/
func BenchmarkExport200k(b *testing.B) {
	srv, err := New(Config{CorpID: testCorp, ContactSecret: testContact, SeedUsers: 200_000, RateLimitPerMinute: -1,
		Jobs: JobsConfig{Immediate: true}})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	b.Cleanup(func() {
		ts.Close()
		_ = srv.Close(context.Background())
	})
	call := func(method, path string, body []byte) map[string]any {
		req, _ := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, &m); err != nil || m["errcode"].(float64) != 0 {
			b.Fatalf("%s: %s", path, raw)
		}
		return m
	}
	tok := call("GET", "/cgi-bin/gettoken?corpid="+testCorp+"&corpsecret="+testContact, nil)["access_token"].(string)

	for _, tc := range []struct {
		typ  string
		gogc int
	}{{"user", 100}, {"simple_user", 100}, {"user", 10}} {
		typ := tc.typ
		b.Run(fmt.Sprintf("%s/gogc=%d", typ, tc.gogc), func(b *testing.B) {
			// With GOGC=10 the heap peak is close to the live heap, which shows what the
			// generation holds; with the default 100 it includes uncollected garbage.
			defer debug.SetGCPercent(debug.SetGCPercent(tc.gogc))
			runtime.GC()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)
			var peak, written uint64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				stop := heapPeak()
				id := call("POST", "/cgi-bin/export/"+typ+"?access_token="+tok,
					[]byte(`{"encoding_aeskey":"`+exportKey+`","block_size":100000}`))["jobid"].(string)
				peak = max(peak, stop())
				b.StopTimer()
				res := call("GET", "/cgi-bin/export/get_result?access_token="+tok+"&jobid="+id, nil)
				written = 0
				for _, d := range res["data_list"].([]any) {
					written += uint64(d.(map[string]any)["size"].(float64))
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(peak-min(peak, base.HeapInuse))/(1<<20), "peak-extra-MB")
			b.ReportMetric(float64(written)/(1<<20), "ciphertext-MB")
		})
	}
}
