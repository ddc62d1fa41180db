package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/event"
	"github.com/wecomsync/wecomsync/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const corp = "wwcorp0001"

// fakeLookup is an in-memory Lookup (our own interface, not a mock of SQL or the broker).
type fakeLookup struct {
	mu      sync.Mutex
	users   map[string]*User
	depts   map[int64]*Department
	err     error // returned for everything when set
	userErr map[string]error
	calls   []string
}

func newFakeLookup() *fakeLookup {
	return &fakeLookup{users: map[string]*User{}, depts: map[int64]*Department{}, userErr: map[string]error{}}
}

func (f *fakeLookup) User(_ context.Context, _ string, id string) (*User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "user:"+id)
	if f.err != nil {
		return nil, f.err
	}
	if err := f.userErr[id]; err != nil {
		return nil, err
	}
	u, ok := f.users[id]
	if !ok {
		return nil, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	return u, nil
}

func (f *fakeLookup) Department(_ context.Context, _ string, id int64) (*Department, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("department:%d", id))
	if f.err != nil {
		return nil, f.err
	}
	d, ok := f.depts[id]
	if !ok {
		return nil, fmt.Errorf("department %d: %w", id, ErrNotFound)
	}
	return d, nil
}

func (f *fakeLookup) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type bundle struct {
	pool *pgxpool.Pool
	look *fakeLookup
	seq  atomic.Uint64
	jobs chan JobEvent
}

func setup(t testing.TB) (*Store, *bundle) {
	t.Helper()
	b := &bundle{pool: pgtest.New(t), look: newFakeLookup(), jobs: make(chan JobEvent, 16)}
	s := NewStore(b.pool, b.look, nil, Options{OnJobEvent: func(j JobEvent) { b.jobs <- j }})
	return s, b
}

var msgCounter atomic.Uint64

// msg builds a change_contact bus message carrying data (a JSON object).
func msg(changeType, data string) *event.Message {
	return msgOf(event.EventChangeContact, changeType, data)
}

func msgOf(ev, changeType, data string) *event.Message {
	n := msgCounter.Add(1)
	sum := sha256.Sum256(fmt.Appendf(nil, "%d|%s|%s|%s", n, ev, changeType, data))
	if !json.Valid([]byte(data)) {
		panic("test message data is not JSON: " + data) // a typo in a test literal
	}
	return &event.Message{ID: hex.EncodeToString(sum[:]), Tenant: "t", CorpID: corp, Event: ev, ChangeType: changeType,
		CreateTime: 1700000000, ReceivedAt: time.Unix(1700000000, 0).UTC(), Data: json.RawMessage(data), XML: "<xml/>"}
}

// items wraps messages as lane items with increasing stream sequences.
func (b *bundle) items(ms ...*event.Message) []Item {
	out := make([]Item, len(ms))
	for i, m := range ms {
		out[i] = Item{StreamSeq: b.seq.Add(1), Msg: m}
	}
	return out
}

func apply(t testing.TB, s *Store, items []Item) []Result {
	t.Helper()
	res, err := s.ApplyBatch(context.Background(), corp, items)
	require.NoError(t, err)
	require.Len(t, res, len(items))
	return res
}

func requireStatuses(t testing.TB, res []Result, want ...Status) {
	t.Helper()
	got := make([]Status, len(res))
	for i, r := range res {
		got[i] = r.Status
	}
	require.Equal(t, want, got, "results: %+v", res)
}

// dbUser reads a member as the mirror holds it; nil when absent.
func dbUser(t testing.TB, pool *pgxpool.Pool, id string) *userRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT `+userColumns+`,
		ARRAY(SELECT department_id FROM wecom.user_departments d WHERE d.corp_id = u.corp_id AND d.userid = u.userid ORDER BY 1),
		ARRAY(SELECT sort_order FROM wecom.user_departments d WHERE d.corp_id = u.corp_id AND d.userid = u.userid ORDER BY department_id),
		ARRAY(SELECT is_leader FROM wecom.user_departments d WHERE d.corp_id = u.corp_id AND d.userid = u.userid ORDER BY department_id)
		FROM wecom.users u WHERE corp_id = $1 AND userid = $2`, corp, id)
	require.NoError(t, err)
	var u *userRow
	for rows.Next() {
		u, err = scanUser(rows)
		require.NoError(t, err)
	}
	require.NoError(t, rows.Err())
	if u != nil && len(u.Departments) == 0 {
		u.Departments = nil
	}
	return u
}

func dbDept(t testing.TB, pool *pgxpool.Pool, id int64) *deptRow {
	t.Helper()
	d := &deptRow{}
	err := pool.QueryRow(context.Background(), `SELECT id, name, name_en, parent_id, sort_order, unknown_fields
		FROM wecom.departments WHERE corp_id = $1 AND id = $2`, corp, id).Scan(&d.ID, &d.Name, &d.NameEn, &d.ParentID, &d.SortOrder, &d.Unknown)
	if err == pgx.ErrNoRows {
		return nil
	}
	require.NoError(t, err)
	return d
}

func strs(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql, args...)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	if out == nil {
		out = []string{}
	}
	return out
}

func count(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// change is a wecom.changes row with decoded before/after.
type change struct {
	Seq             int64
	Entity, Key, Op string
	Before, After   map[string]any
	Source, EventID string
}

func changesAfter(t testing.TB, pool *pgxpool.Pool, seq int64) []change {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT seq, entity, key, op, before, after, source, coalesce(event_id, '')
		FROM wecom.changes WHERE corp_id = $1 AND seq > $2 ORDER BY seq`, corp, seq)
	require.NoError(t, err)
	var out []change
	var c change
	_, err = pgx.ForEachRow(rows, []any{&c.Seq, &c.Entity, &c.Key, &c.Op, &c.Before, &c.After, &c.Source, &c.EventID}, func() error {
		out = append(out, c)
		c = change{}
		return nil
	})
	require.NoError(t, err)
	return out
}

func lastSeq(t testing.TB, pool *pgxpool.Pool) int64 {
	t.Helper()
	return int64(count(t, pool, `SELECT coalesce(max(seq), 0) FROM wecom.changes`))
}

func sp(s string) *string { return &s }
func ip(n int64) *int64   { return &n }
