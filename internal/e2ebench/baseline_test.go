package e2ebench

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/callback"
	"github.com/wecomsync/wecomsync/internal/crypto"
	"github.com/wecomsync/wecomsync/internal/event/eventtest"
	"github.com/wecomsync/wecomsync/internal/mirror"
	"github.com/wecomsync/wecomsync/internal/tenant"
	"github.com/wecomsync/wecomsync/internal/testutil/natstest"
	"github.com/wecomsync/wecomsync/internal/testutil/pgtest"
	"github.com/wecomsync/wecomsync/internal/worker"
)

// The baselines re-run, on the same code paths and with the same loads, the component
// benchmarks of the earlier issues, so the whole-system figures can be compared with
// figures measured in the same run on the same (shared) machine.

// senders is the callback-only baseline's concurrency (internal/callback's figure).
const senders = 64

// callbackOnly is internal/callback's BenchmarkEndToEnd: n distinct signed create_user
// callbacks POSTed over HTTP by 64 concurrent senders to the receiver, which stores each
// in a file-backed in-process JetStream before answering. It returns callbacks/s.
func callbackOnly(tb testing.TB, n int) float64 {
	tb.Helper()
	ctx := context.Background()
	ns := natstest.Start(tb)
	_, js := ns.Connect(tb)
	require.NoError(tb, callback.EnsureStream(ctx, js, callback.DefaultStreamOptions))
	t := tenant.Tenant{Name: tenant.DefaultName, CorpID: "wwbaseline000001", Token: "baselineToken", AESKey: crypto.NewKey()}
	h, err := callback.NewHandler([]tenant.Tenant{t}, js, discard(), callback.NewMetrics(prometheus.NewRegistry()), callback.Options{})
	require.NoError(tb, err)
	base := serve(tb, h)

	c, err := crypto.New(t.Token, t.AESKey, t.CorpID)
	require.NoError(tb, err)
	stamp := strconv.FormatInt(time.Now().Unix(), 10)
	targets, bodies := make([]string, n), make([]string, n)
	for i := range n {
		xml := eventtest.CreateUser("wwbaseline000001", fmt.Sprintf("user%07d", i))
		body, sig, err := c.EncryptMsg([]byte(xml), stamp, "nonce")
		require.NoError(tb, err)
		targets[i] = base + "/callback?msg_signature=" + sig + "&timestamp=" + stamp + "&nonce=nonce"
		bodies[i] = string(body)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: senders * 2, MaxIdleConnsPerHost: senders * 2}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
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
				resp, err := client.Post(targets[i], "text/xml", strings.NewReader(bodies[i]))
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("callback answered HTTP %d", resp.StatusCode)
					}
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	require.NoError(tb, firstErr)
	info, err := js.Stream(ctx, callback.StreamName)
	require.NoError(tb, err)
	require.EqualValues(tb, n, info.CachedInfo().State.Msgs)
	return float64(n) / took.Seconds()
}

// applyOnly is internal/worker's BenchmarkLaneThroughput at batch=500: n events of one
// corp are stored in WECOM_EVENTS first, then one worker.Consumer applies them into a
// fresh mirror until the lane has applied and settled everything. It returns events/s.
func applyOnly(tb testing.TB, n int) float64 {
	tb.Helper()
	const corpID = "wwbaseline000001"
	ctx := context.Background()
	pool := pgtest.New(tb)
	ns := natstest.Start(tb)
	_, js := ns.Connect(tb)
	require.NoError(tb, callback.EnsureStream(ctx, js, callback.DefaultStreamOptions))
	for start := 0; start < n; start += 5000 {
		var futs []jetstream.PubAckFuture
		for i := start; i < min(start+5000, n); i++ {
			subj, data, id := eventtest.LaneEvent(corpID, i)
			f, err := js.PublishMsgAsync(&nats.Msg{Subject: subj, Data: data, Header: nats.Header{jetstream.MsgIDHeader: {id}}})
			require.NoError(tb, err)
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				require.NoError(tb, err)
			}
		}
	}
	opts := worker.DefaultOptions
	opts.BatchSize, opts.MaxWait = 500, 20*time.Millisecond
	cons, err := worker.EnsureConsumer(ctx, js, worker.DefaultLane, opts)
	require.NoError(tb, err)
	store := mirror.NewStore(pool, nil, discard(), mirror.Options{})
	c := worker.NewConsumer(worker.DefaultLane, cons, store, discard(), worker.NewMetrics(prometheus.NewRegistry()), opts, []string{corpID})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.Run(rctx) }()
	for {
		info, err := cons.Info(ctx)
		require.NoError(tb, err)
		if info.NumPending == 0 && info.NumAckPending == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling an observable state, as the lane benchmark does
	}
	took := time.Since(start)
	cancel()
	require.NoError(tb, <-done)
	return float64(n) / took.Seconds()
}
