package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/callback"
	"github.com/wecomsync/wecomsync/internal/event"
	"github.com/wecomsync/wecomsync/internal/mirror"
	"github.com/wecomsync/wecomsync/internal/testutil/natstest"
	"github.com/wecomsync/wecomsync/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	corpA = "wwcorpa"
	corpB = "wwcorpb"
)

// testOptions are lane options with short timeouts, so failovers take a second or two.
var testOptions = Options{
	BatchSize:     50,
	MaxWait:       20 * time.Millisecond,
	AckWait:       2 * time.Second,
	PinnedTTL:     500 * time.Millisecond,
	MaxDeliver:    -1,
	Backoff:       []time.Duration{50 * time.Millisecond, 100 * time.Millisecond},
	ShutdownGrace: 10 * time.Second,
	ApplyTimeout:  10 * time.Second,
}

// bundle is what setup gives a test: a migrated database with a Store, and a JetStream
// server holding the WECOM_EVENTS stream.
type bundle struct {
	pool  *pgxpool.Pool
	store *mirror.Store
	ns    *natstest.Server
	js    jetstream.JetStream
	opts  Options
	lane  Lane
	seq   atomic.Int64 // makes event XML (hence event ids) unique
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{pool: pgtest.New(t), ns: natstest.Start(t), opts: testOptions, lane: DefaultLane}
	_, b.js = b.ns.Connect(t)
	b.store = mirror.NewStore(b.pool, nil, discard(), mirror.Options{})
	ctx := context.Background()
	require.NoError(t, callback.EnsureStream(ctx, b.js, callback.DefaultStreamOptions))
	_, err := EnsureConsumer(ctx, b.js, b.lane, b.opts)
	require.NoError(t, err)
	return b
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// replica is one running Consumer on its own NATS connection, like a worker process.
type replica struct {
	c      *Consumer
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
}

// newReplica builds a Consumer on a fresh connection; configure sets test hooks before
// it starts.
func (b *bundle) newReplica(t *testing.T, app Applier, configure func(*Consumer)) *replica {
	t.Helper()
	nc, err := nats.Connect(b.ns.URL)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	cons, err := js.Consumer(context.Background(), callback.StreamName, b.lane.Name)
	require.NoError(t, err)
	if app == nil {
		app = b.store
	}
	c := NewConsumer(b.lane, cons, app, discard(), NewMetrics(prometheus.NewRegistry()), b.opts, []string{corpA, corpB})
	if configure != nil {
		configure(c)
	}
	return &replica{c: c, nc: nc}
}

func (r *replica) start() *replica {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.c.Run(ctx) }()
	return r
}

// stop cancels the replica and requires a clean return.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("consumer did not stop within 30s")
	}
}

// publish stores one change_contact event for corp, built from the XML body after the
// common fields, as the callback receiver would, and returns its stream sequence.
func (b *bundle) publish(t *testing.T, corp, changeType, body string) uint64 {
	t.Helper()
	n := b.seq.Add(1)
	raw := fmt.Sprintf(`<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>%d</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[%s]]></ChangeType>%s</xml>`,
		corp, 1700000000+n, changeType, body)
	return b.publishXML(t, corp, raw)
}

func (b *bundle) publishXML(t *testing.T, corp, raw string) uint64 {
	t.Helper()
	e, err := event.Parse([]byte(raw))
	require.NoError(t, err)
	m := event.NewMessage(e, []byte(raw), "default", corp, time.Now())
	data, err := m.MarshalJSON()
	require.NoError(t, err)
	ack, err := b.js.PublishMsg(context.Background(), &nats.Msg{Subject: e.Subject(corp), Data: data,
		Header: nats.Header{jetstream.MsgIDHeader: {m.ID}}})
	require.NoError(t, err)
	return ack.Sequence
}

// publishRaw stores data as is on subject (a poison message).
func (b *bundle) publishRaw(t *testing.T, subject string, data []byte) uint64 {
	t.Helper()
	ack, err := b.js.Publish(context.Background(), subject, data)
	require.NoError(t, err)
	return ack.Sequence
}

func createUser(userid, name string, dept int) string {
	return fmt.Sprintf(`<UserID><![CDATA[%s]]></UserID><Name><![CDATA[%s]]></Name><Department><![CDATA[%d]]></Department><MainDepartment>%d</MainDepartment><IsLeaderInDept><![CDATA[0]]></IsLeaderInDept><Position><![CDATA[p]]></Position><Mobile>138%08d</Mobile><Gender>1</Gender><Email><![CDATA[%s@example.com]]></Email><Status>1</Status>`,
		userid, name, dept, dept, len(userid)*1000+dept, userid)
}

func renameUser(userid, name string) string {
	return fmt.Sprintf(`<UserID><![CDATA[%s]]></UserID><Name><![CDATA[%s]]></Name>`, userid, name)
}

// waitDrained polls the lane consumer until every message was delivered and settled.
func (b *bundle) waitDrained(t *testing.T) {
	t.Helper()
	cons, err := b.js.Consumer(context.Background(), callback.StreamName, b.lane.Name)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, 60*time.Second, 20*time.Millisecond, "lane did not drain")
}

// userNames returns corp's users as userid -> name.
func (b *bundle) userNames(t *testing.T, corp string) map[string]string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT userid, coalesce(name, '') FROM wecom.users WHERE corp_id = $1`, corp)
	require.NoError(t, err)
	out := map[string]string{}
	for rows.Next() {
		var id, name string
		require.NoError(t, rows.Scan(&id, &name))
		out[id] = name
	}
	require.NoError(t, rows.Err())
	return out
}

// changeEventIDs returns the event ids of corp's change log in seq order.
func (b *bundle) changeEventIDs(t *testing.T, corp string) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT coalesce(event_id, '') FROM wecom.changes WHERE corp_id = $1 ORDER BY seq`, corp)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		out = append(out, id)
	}
	require.NoError(t, rows.Err())
	return out
}

// requireNoDuplicateChanges fails if any event produced two change rows for the same
// entity key (an event applied twice).
func (b *bundle) requireNoDuplicateChanges(t *testing.T) {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM (
		SELECT corp_id, event_id, entity, key, op FROM wecom.changes WHERE event_id IS NOT NULL
		GROUP BY 1, 2, 3, 4, 5 HAVING count(*) > 1) d`).Scan(&n))
	require.Zero(t, n, "an event produced the same change twice")
}

func itoa(n int) string { return strconv.Itoa(n) }

// mustMessage encodes raw as the receiver's bus message for corp.
func mustMessage(t *testing.T, corp, raw string) []byte {
	t.Helper()
	e, err := event.Parse([]byte(raw))
	require.NoError(t, err)
	data, err := event.NewMessage(e, []byte(raw), "default", corp, time.Now()).MarshalJSON()
	require.NoError(t, err)
	return data
}
