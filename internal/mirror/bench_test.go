package mirror

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/event"
)

// benchEvents returns events start..start+n-1 of a busy directory: even events create
// new members, odd ones update members created about 500 events earlier (so they exist in
// the mirror when the batch applies), changing position and mobile.
func benchEvents(start, n int) []*event.Message {
	out := make([]*event.Message, 0, n)
	for i := start; i < start+n; i++ {
		c := i / 2
		if i%2 == 0 || c < 500 {
			out = append(out, msg(event.ChangeCreateUser, fmt.Sprintf(`{"user_id":"user%07d","name":"成员%d","department":[1,%d],
				"main_department":1,"is_leader_in_dept":[0,1],"position":"工程师","mobile":"138%08d","gender":1,
				"email":"user%d@example.com","status":1,"alias":"u%d","telephone":"020-%d","address":"广州市"}`, i, c, 2+c%50, i, i, c, c)))
		} else {
			out = append(out, msg(event.ChangeUpdateUser, fmt.Sprintf(`{"user_id":"user%07d","position":"高级工程师%d","mobile":"139%08d"}`, 2*(c-500), i, i)))
		}
	}
	return out
}

// BenchmarkApplyBatch measures the sustained apply rate: each op is one ApplyBatch of
// batch events (one transaction). events/s is the figure to compare with
// BenchmarkApplyNaive.
func BenchmarkApplyBatch(b *testing.B) {
	for _, batch := range []int{500, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, bd := setup(b)
			ctx := context.Background()
			seq := uint64(0)
			n := 0
			var elapsed time.Duration
			for b.Loop() {
				b.StopTimer()
				ms := benchEvents(n, batch)
				items := make([]Item, len(ms))
				for i, m := range ms {
					seq++
					items[i] = Item{StreamSeq: seq, Msg: m}
				}
				n += batch
				b.StartTimer()
				start := time.Now()
				res, err := s.ApplyBatch(ctx, corp, items)
				elapsed += time.Since(start)
				require.NoError(b, err)
				require.Equal(b, Applied, res[len(res)-1].Status)
			}
			b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
			_ = bd
		})
	}
}

// BenchmarkApplyNaive is the baseline: the same events, one transaction per event, each
// statement a round trip (upsert member, replace memberships, change row, applied id,
// lane position).
func BenchmarkApplyNaive(b *testing.B) {
	_, bd := setup(b)
	ctx := context.Background()
	n := 0
	const per = 200
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		ms := benchEvents(n, per)
		b.StartTimer()
		start := time.Now()
		for _, m := range ms {
			n++
			u, err := m.User()
			require.NoError(b, err)
			tx, err := bd.pool.Begin(ctx)
			require.NoError(b, err)
			var before []byte
			_ = tx.QueryRow(ctx, `SELECT to_jsonb(u) FROM wecom.users u WHERE corp_id = $1 AND userid = $2`, corp, u.UserID).Scan(&before)
			_, err = tx.Exec(ctx, `INSERT INTO wecom.users (corp_id, userid, name, position, mobile, email, raw)
				VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT (corp_id, userid) DO UPDATE SET name = coalesce(excluded.name, users.name),
				position = coalesce(excluded.position, users.position), mobile = coalesce(excluded.mobile, users.mobile),
				email = coalesce(excluded.email, users.email), raw = users.raw || excluded.raw, updated_at = now()`,
				corp, u.UserID, optPtr(u.Name), optPtr(u.Position), optPtr(u.Mobile), optPtr(u.Email), []byte(m.Data))
			require.NoError(b, err)
			if ids, ok := u.Department.Get(); ok {
				_, err = tx.Exec(ctx, `DELETE FROM wecom.user_departments WHERE corp_id = $1 AND userid = $2`, corp, u.UserID)
				require.NoError(b, err)
				for _, d := range ids {
					_, err = tx.Exec(ctx, `INSERT INTO wecom.user_departments (corp_id, userid, department_id) VALUES ($1, $2, $3)`, corp, u.UserID, d)
					require.NoError(b, err)
				}
			}
			_, err = tx.Exec(ctx, `INSERT INTO wecom.changes (corp_id, entity, key, op, before, after, source, event_id)
				SELECT $1, 'user', $2, 'updated', $3::jsonb, to_jsonb(u), 'callback', $4 FROM wecom.users u WHERE corp_id = $1 AND userid = $2`,
				corp, u.UserID, before, m.ID)
			require.NoError(b, err)
			_, err = tx.Exec(ctx, `INSERT INTO wecom.applied_events (corp_id, event_id, stream_seq) VALUES ($1, $2, $3)`, corp, m.ID, n)
			require.NoError(b, err)
			_, err = tx.Exec(ctx, `INSERT INTO wecom.lanes (corp_id, last_stream_seq) VALUES ($1, $2)
				ON CONFLICT (corp_id) DO UPDATE SET last_stream_seq = excluded.last_stream_seq`, corp, n)
			require.NoError(b, err)
			require.NoError(b, tx.Commit(ctx))
		}
		elapsed += time.Since(start)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
}

func optPtr[T any](o event.Opt[T]) *T {
	if !o.Set {
		return nil
	}
	return &o.Value
}

// BenchmarkApplyMemory checks that ApplyBatch's memory is per batch: it applies 200
// batches of 1000 (200,000 events) and reports the live heap after each, which must stay
// flat (bytes/op from -benchmem is per batch). The 1,000,000-event run is the worker's
// end-to-end test; scale with -benchtime.
func BenchmarkApplyMemory(b *testing.B) {
	s, _ := setup(b)
	ctx := context.Background()
	seq := uint64(0)
	n := 0
	var maxHeap uint64
	var ms runtime.MemStats
	for b.Loop() {
		items := make([]Item, 1000)
		for i, m := range benchEvents(n, 1000) {
			seq++
			items[i] = Item{StreamSeq: seq, Msg: m}
		}
		n += 1000
		_, err := s.ApplyBatch(ctx, corp, items)
		require.NoError(b, err)
		if n%20000 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			maxHeap = max(maxHeap, ms.HeapAlloc)
		}
	}
	b.ReportMetric(float64(maxHeap)/(1<<20), "max-live-MiB")
	b.ReportMetric(float64(n), "events")
}

// BenchmarkSync measures a full merge of a 20,000-member snapshot: the first into an
// empty mirror (every row created and logged), then the same snapshot again (nothing
// changes, every row compared).
func BenchmarkSync(b *testing.B) {
	const members = 20000
	snap := &sliceSource{}
	for d := int64(1); d <= 200; d++ {
		snap.depts = append(snap.depts, &Department{ID: d, Name: fmt.Sprintf("部门%d", d), ParentID: 1, Order: d})
	}
	for i := range members {
		snap.users = append(snap.users, &User{UserID: fmt.Sprintf("user%07d", i), Name: fmt.Sprintf("成员%d", i),
			Mobile: fmt.Sprintf("138%08d", i), Email: fmt.Sprintf("user%d@example.com", i), Gender: 1, Status: 1,
			MainDepartment: int64(1 + i%200), Departments: []Membership{{int64(1 + i%200), int64(i), i%50 == 0}}})
	}
	snap.tags = []*Tag{{ID: 1, Name: "all", UserIDs: []string{"user0000001", "user0000002"}}}
	for _, name := range []string{"initial", "unchanged"} {
		b.Run(name, func(b *testing.B) {
			s, _ := setup(b)
			ctx := context.Background()
			if name == "unchanged" {
				_, err := s.Sync(ctx, corp, snap)
				require.NoError(b, err)
			}
			var elapsed time.Duration
			n := 0
			for b.Loop() {
				if name == "initial" && n > 0 {
					b.StopTimer()
					_, err := s.pool.Exec(ctx, `TRUNCATE wecom.users, wecom.user_departments, wecom.departments, wecom.tags, wecom.tag_users, wecom.tag_departments, wecom.changes`)
					require.NoError(b, err)
					b.StartTimer()
				}
				start := time.Now()
				rep, err := s.Sync(ctx, corp, snap)
				elapsed += time.Since(start)
				require.NoError(b, err)
				require.Equal(b, members, rep.Users.Created+rep.Users.Unchanged)
				n++
			}
			b.ReportMetric(float64(n*members)/elapsed.Seconds(), "members/s")
		})
	}
}
