package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/callback"
	"github.com/wecomsync/wecomsync/internal/event"
	"github.com/wecomsync/wecomsync/internal/worker"
)

// TestRunPartitionsCorpsOverLanes: `worker run` with several tenants spreads their corps
// over WORKER_PARTITIONS lanes; two replicas apply every corp's events, each lane pinned
// to at most one of them, and the metrics say which.
func TestRunPartitionsCorpsOverLanes(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{})
	corps := []string{"wwpart0001", "wwpart0002", "wwpart0003", "wwpart0004", "wwpart0005"}
	var tenants []map[string]string
	for i, c := range corps {
		tenants = append(tenants, map[string]string{"name": fmt.Sprintf("t%d", i), "corp_id": c, "contact_secret": "s"})
	}
	raw, err := json.Marshal(map[string]any{"tenants": tenants})
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "tenants.json")
	require.NoError(t, os.WriteFile(file, raw, 0o600))
	env := map[string]string{"WECOM_TENANTS_FILE": file, "WECOM_CORP_ID": "", "WECOM_CONTACT_SECRET": "",
		"WORKER_PARTITIONS": "4", "WORKER_INITIAL_SYNC": "false"}
	r1 := w.startWorker(t, env)
	r2 := w.startWorker(t, env)

	lanes := worker.PartitionLanes(worker.DefaultLane.Name, corps, 4)
	require.Greater(t, len(lanes), 1)
	ctx := context.Background()
	for round := range 20 {
		for _, c := range corps {
			body := fmt.Sprintf(`<UserID>u</UserID><Name>n%d</Name>`, round)
			ct := "update_user"
			if round == 0 {
				ct, body = "create_user", `<UserID>u</UserID><Name>n0</Name><Department>1</Department>`
			}
			xml := fmt.Sprintf(`<xml><ToUserName>%s</ToUserName><FromUserName>sys</FromUserName><CreateTime>%d</CreateTime><MsgType>event</MsgType><Event>change_contact</Event><ChangeType>%s</ChangeType>%s</xml>`,
				c, 1700000000+round, ct, body)
			e, err := event.Parse([]byte(xml))
			require.NoError(t, err)
			m := event.NewMessage(e, []byte(xml), "t", c, time.Now())
			_, err = w.js.PublishMsg(ctx, &nats.Msg{Subject: e.Subject(c), Data: m.AppendJSON(nil),
				Header: nats.Header{jetstream.MsgIDHeader: {m.ID}}})
			require.NoError(t, err)
		}
	}
	for _, l := range lanes {
		cons, err := w.js.Consumer(ctx, callback.StreamName, l.Name)
		require.NoError(t, err, l.Name)
		require.Eventually(t, func() bool {
			info, err := cons.Info(ctx)
			return err == nil && info.NumPending == 0 && info.NumAckPending == 0
		}, 60*time.Second, 20*time.Millisecond, "lane %s did not drain", l.Name)
	}
	_, err = w.js.Consumer(ctx, callback.StreamName, worker.DefaultLane.Name)
	require.ErrorIs(t, err, jetstream.ErrConsumerNotFound, "no whole-stream lane with several partitions")
	for _, c := range corps {
		var name string
		require.NoError(t, w.pool.QueryRow(ctx, `SELECT name FROM wecom.users WHERE corp_id = $1 AND userid = 'u'`, c).Scan(&name))
		require.Equal(t, "n19", name, c)
	}

	pinnedRE := regexp.MustCompile(`(?m)^wecomsync_worker_lane_pinned\{lane="([^"]+)"\} (\d)`)
	pinnedBy := map[string]int{}
	for _, r := range []*proc{r1, r2} {
		m := pinnedRE.FindAllStringSubmatch(getBody(t, r.admin+"/metrics"), -1)
		require.Len(t, m, len(lanes), "one pinned gauge per lane")
		for _, g := range m {
			if g[2] == "1" {
				pinnedBy[g[1]]++
			}
		}
	}
	for l, n := range pinnedBy {
		require.Equal(t, 1, n, "lane %s pinned to one replica", l)
		require.True(t, strings.HasPrefix(l, worker.DefaultLane.Name+"-p"))
	}
	require.NotEmpty(t, pinnedBy)
	r1.stop(t)
	r2.stop(t)
}
