package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/callback"
	"github.com/wecomsync/wecomsync/internal/event"
)

// TestGroupBalancesLanes: replicas that each run every lane end up applying their share
// of the lanes — when they start together, after one stops (its lanes spread over the
// others) and after it comes back (it gets its share again) — while events keep coming.
func TestGroupBalancesLanes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const base, parts = "bal", 8
	var corps []string
	for i := range 40 {
		corps = append(corps, fmt.Sprintf("wwbal%02d", i))
	}
	lanes := PartitionLanes(base, corps, parts)
	require.Len(t, lanes, parts)
	start := func(id int) *scaleWorker {
		return startScaleWorker(t, b, base, lanes, corps, func(*Consumer) Applier { return b.store }, id)
	}
	workers := []*scaleWorker{start(0), start(1), start(2)}

	// traffic publishes one event per corp and waits until they are applied.
	published := 0
	traffic := func() {
		t.Helper()
		for _, corp := range corps {
			published++
			raw := fmt.Sprintf(`<xml><ToUserName>%s</ToUserName><FromUserName>sys</FromUserName><CreateTime>%d</CreateTime><MsgType>event</MsgType><Event>change_contact</Event><ChangeType>create_user</ChangeType>%s</xml>`,
				corp, 1700000000+published, createUser(fmt.Sprintf("u%d", published), "U", 1))
			e, err := event.Parse([]byte(raw))
			require.NoError(t, err)
			m := event.NewMessage(e, []byte(raw), "default", corp, time.Now())
			_, err = b.js.PublishAsync(e.Subject(corp), m.AppendJSON(nil), jetstream.WithMsgID(m.ID))
			require.NoError(t, err)
		}
		<-b.js.PublishAsyncComplete()
		require.Eventually(t, func() bool {
			var n int
			require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM wecom.users`).Scan(&n))
			return n == published
		}, 30*time.Second, 5*time.Millisecond)
	}
	pins := func(ws []*scaleWorker) []int {
		out := make([]int, len(ws))
		for i, w := range ws {
			out[i] = w.group.Pinned()
		}
		return out
	}
	// balanced keeps the events coming until every live replica holds its share: no more
	// than ceil(lanes/replicas), no fewer than floor, every lane pinned.
	balanced := func(what string, ws []*scaleWorker) {
		t.Helper()
		t0 := time.Now()
		lo, hi := parts/len(ws), (parts+len(ws)-1)/len(ws)
		for {
			traffic()
			p, total, ok := pins(ws), 0, true
			for _, n := range p {
				total += n
				ok = ok && n >= lo && n <= hi
			}
			if ok && total == parts {
				t.Logf("%s: lanes per replica %v after %s", what, p, time.Since(t0).Round(time.Millisecond))
				return
			}
			require.Less(t, time.Since(t0), 40*time.Second, "%s: lanes per replica still %v", what, p)
		}
	}
	balanced("three replicas started together", workers)

	workers[0].cancel()
	require.NoError(t, <-workers[0].done)
	workers[0].done <- nil
	balanced("one of three stopped", workers[1:])

	workers[0] = start(3)
	balanced("it came back", workers)

	// Every lane drained; nothing lost on the way.
	for _, l := range lanes {
		cons, err := b.js.Consumer(ctx, callback.StreamName, l.Name)
		require.NoError(t, err)
		info, err := cons.Info(ctx)
		require.NoError(t, err)
		require.Zero(t, info.NumPending, l.Name)
	}
}
