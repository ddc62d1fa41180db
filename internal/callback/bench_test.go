package callback_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/callback"
	"github.com/wecomsync/wecomsync/internal/crypto"
	"github.com/wecomsync/wecomsync/internal/event"
	"github.com/wecomsync/wecomsync/internal/event/eventtest"
)

// BenchmarkVerifyDecryptParse measures the CPU work of one callback: envelope, signature,
// decryption and event parsing. Run with -cpu=1 for the per-core rate (target 100,000/s).
func BenchmarkVerifyDecryptParse(b *testing.B) {
	c, err := crypto.New(tenantA.Token, tenantA.AESKey, tenantA.CorpID)
	require.NoError(b, err)
	body, sig, err := c.EncryptMsg([]byte(eventtest.CreateUser(tenantA.CorpID, "zhangsan")), "1700000000", "nonce")
	require.NoError(b, err)
	b.Run("verify_decrypt_parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			plain, err := c.DecryptMsg(sig, "1700000000", "nonce", body)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := event.Parse(plain); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "callbacks/s")
	})
	b.Run("plus_bus_message", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 8192)
		now := time.Now()
		for b.Loop() {
			plain, err := c.DecryptMsg(sig, "1700000000", "nonce", body)
			if err != nil {
				b.Fatal(err)
			}
			ev, err := event.Parse(plain)
			if err != nil {
				b.Fatal(err)
			}
			buf = event.NewMessage(ev, plain, "acme", tenantA.CorpID, now).AppendJSON(buf[:0])
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "callbacks/s")
	})
}

// distinctCallbacks returns n signed requests for distinct create_user events (distinct
// XML, so JetStream's dedup does not drop any) and their bus messages for the baseline.
func distinctCallbacks(tb testing.TB, base string, n int) (targets []string, bodies [][]byte, msgs []*nats.Msg) {
	tb.Helper()
	c, err := crypto.New(tenantA.Token, tenantA.AESKey, tenantA.CorpID)
	require.NoError(tb, err)
	stamp := strconv.FormatInt(time.Unix(1700000000, 0).Unix(), 10)
	for i := range n {
		xml := eventtest.CreateUser(tenantA.CorpID, fmt.Sprintf("user%07d", i))
		body, sig, err := c.EncryptMsg([]byte(xml), stamp, "nonce")
		require.NoError(tb, err)
		targets = append(targets, base+"/callback?msg_signature="+sig+"&timestamp="+stamp+"&nonce=nonce")
		bodies = append(bodies, body)
		ev, err := event.Parse([]byte(xml))
		require.NoError(tb, err)
		m := event.NewMessage(ev, []byte(xml), "acme", tenantA.CorpID, time.Now())
		nm := &nats.Msg{Subject: ev.Subject(tenantA.CorpID) + ".baseline", Data: m.AppendJSON(nil), Header: nats.Header{}}
		nm.Header.Set(jetstream.MsgIDHeader, m.ID+"-baseline")
		msgs = append(msgs, nm)
	}
	return targets, bodies, msgs
}

const senders = 64

func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: senders * 2, MaxIdleConnsPerHost: senders * 2}, Timeout: 10 * time.Second}
}

// runConcurrently calls do(i) for i in [0,n) from `senders` goroutines and returns the
// rate achieved.
func runConcurrently(n int, do func(i int) error) (float64, error) {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := do(i); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), firstErr
}

// BenchmarkEndToEnd posts distinct signed callbacks over HTTP from 64 concurrent senders
// into a file-backed in-process JetStream, then publishes the same bus messages straight
// to JetStream with the same concurrency (the ceiling for a durable receiver) and reports
// both rates and their ratio. Target: 10,000 callbacks/s on 2 cores.
func BenchmarkEndToEnd(b *testing.B) {
	bn := setup(b, setupOpts{})
	bn.now = time.Unix(1700000000, 0)
	targets, bodies, msgs := distinctCallbacks(b, bn.url, b.N)
	client := newClient()
	b.ResetTimer()
	rate, err := runConcurrently(b.N, func(i int) error {
		resp, err := client.Post(targets[i], "text/xml", strings.NewReader(string(bodies[i])))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	b.StopTimer()
	require.NoError(b, err)
	require.EqualValues(b, b.N, bn.msgCount(b))

	baseRate, err := runConcurrently(b.N, func(i int) error {
		_, err := bn.js.PublishMsg(context.Background(), msgs[i], jetstream.WithExpectStream(callback.StreamName))
		return err
	})
	require.NoError(b, err)
	b.ReportMetric(rate, "callbacks/s")
	b.ReportMetric(baseRate, "publishes/s")
	b.ReportMetric(rate/baseRate, "ratio_to_publish")
}

// BenchmarkLatencyAt2000 sends callbacks at a fixed 2,000/s (open loop: each request has a
// scheduled start, and latency counts from it, so a stall is not hidden) and reports p50
// and p99 latency. Target: p99 under 20 ms.
func BenchmarkLatencyAt2000(b *testing.B) {
	const rate = 2000
	bn := setup(b, setupOpts{})
	targets, bodies, _ := distinctCallbacks(b, bn.url, b.N)
	client := newClient()
	lat := make([]time.Duration, b.N)
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		at := start.Add(time.Duration(i) * time.Second / rate)
		if d := time.Until(at); d > 0 {
			time.Sleep(d) // pacing the load generator, not synchronisation
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Post(targets[i], "text/xml", strings.NewReader(string(bodies[i])))
			if err != nil {
				failed.Add(1)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failed.Add(1)
			}
			lat[i] = time.Since(at)
		}()
	}
	wg.Wait()
	b.StopTimer()
	require.Zero(b, failed.Load())
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
}
