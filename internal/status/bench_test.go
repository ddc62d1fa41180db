package status_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/worker"
)

// BenchmarkCollect reads every figure of a worker serving 300 corps with 1,000 members
// each (300,000 users), one event per corp in the stream, a lane row per corp and
// partitioned lanes: what one refresh of the page costs.
func BenchmarkCollect(b *testing.B) {
	bb := setup(b)
	ctx := context.Background()
	_, err := bb.pool.Exec(ctx, `INSERT INTO wecom.users (corp_id, userid, name)
		SELECT 'wwbench' || c, 'u' || u, 'n' || u FROM generate_series(1, 300) c, generate_series(1, 1000) u`)
	require.NoError(b, err)
	_, err = bb.pool.Exec(ctx, `INSERT INTO wecom.departments (corp_id, id, name) SELECT 'wwbench' || c, 1, 'root' FROM generate_series(1, 300) c`)
	require.NoError(b, err)
	_, err = bb.pool.Exec(ctx, `INSERT INTO wecom.lanes (corp_id, last_stream_seq) SELECT 'wwbench' || c, c FROM generate_series(1, 300) c`)
	require.NoError(b, err)
	_, err = bb.pool.Exec(ctx, `ANALYZE`)
	require.NoError(b, err)
	var corps []string
	for i := 1; i <= 300; i++ {
		corps = append(corps, fmt.Sprintf("wwbench%d", i))
		_, err := bb.js.Publish(ctx, "wecom.events."+corps[i-1]+".change_contact.update_user", []byte(`{}`))
		require.NoError(b, err)
	}
	for p := range 8 {
		l := worker.Lane{Name: fmt.Sprintf("wecomsync-mirror-p%d", p)}
		for i, c := range corps {
			if i%8 == p {
				l.Filters = append(l.Filters, "wecom.events."+c+".>")
			}
		}
		_, err := worker.EnsureConsumer(ctx, bb.js, l, worker.DefaultOptions)
		require.NoError(b, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s := bb.handler.Collect(ctx)
		if len(s.Problems) > 0 || len(s.Corps) != 300 || s.Corps[0].Users != 1000 {
			b.Fatalf("unexpected snapshot: %d corps, problems %v", len(s.Corps), s.Problems)
		}
	}
}
