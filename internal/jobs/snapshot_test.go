package jobs_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/emulator"
	"github.com/wecomsync/wecomsync/internal/event"
	"github.com/wecomsync/wecomsync/internal/jobs"
	"github.com/wecomsync/wecomsync/internal/mirror"
)

// TestExportMergeKeepsNewerCallbacks: an export is a snapshot taken when it is submitted;
// a callback applied between the submission and the merge is newer and must survive the
// merge instead of being put back to the snapshot's value.
func TestExportMergeKeepsNewerCallbacks(t *testing.T) {
	t.Parallel()
	var armed atomic.Bool
	var e *env
	var target string
	applied := make(chan error, 1)
	e = setup(t, envOpts{jobs: emulator.JobsConfig{Immediate: true}, hook: func(ctx context.Context, _ int64, point string) error {
		if point != "merging" || !armed.CompareAndSwap(true, false) {
			return nil
		}
		// The export's files are on disk; now a callback renames the member.
		xml := []byte(`<xml><ToUserName>` + testCorp + `</ToUserName><FromUserName>sys</FromUserName><CreateTime>1700000000</CreateTime><MsgType>event</MsgType><Event>change_contact</Event><ChangeType>update_user</ChangeType><UserID>` + target + `</UserID><Name>回调后的名字</Name></xml>`)
		ev, err := event.Parse(xml)
		if err == nil {
			msg := event.NewMessage(ev, xml, "default", testCorp, time.Now())
			_, err = e.store.ApplyBatch(ctx, testCorp, []mirror.Item{{StreamSeq: 1, Msg: msg}})
		}
		applied <- err
		return nil
	}})
	ctx := context.Background()
	e.exportAll(t)

	ids, _, err := e.emu.Directory().ListIDs("", 1)
	require.NoError(t, err)
	target = ids[0].UserID
	armed.Store(true)
	id, err := e.runner.EnqueueExport(ctx, testCorp, jobs.ExportUsers, 0)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, e.wait(t, e.runner, id).State)
	require.NoError(t, <-applied)

	var name string
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT name FROM wecom.users WHERE corp_id = $1 AND userid = $2`, testCorp, target).Scan(&name))
	require.Equal(t, "回调后的名字", name, "the merge must not put back the older snapshot's name")
	require.Zero(t, e.count(t, `SELECT count(*) FROM wecom.changes WHERE corp_id = $1 AND key = $2 AND source = 'export' AND op = 'updated'`, testCorp, target))
}
