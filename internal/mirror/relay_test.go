package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/event"
	"github.com/wecomsync/wecomsync/internal/testutil/natstest"
)

// changeMsg is a WECOM_CHANGES message body.
type changeMsg struct {
	Seq     int64           `json:"seq"`
	CorpID  string          `json:"corp_id"`
	Entity  string          `json:"entity"`
	Key     string          `json:"key"`
	Op      string          `json:"op"`
	Before  json.RawMessage `json:"before"`
	After   json.RawMessage `json:"after"`
	Source  string          `json:"source"`
	EventID *string         `json:"event_id"`
	At      time.Time       `json:"at"`
}

func TestRelay(t *testing.T) {
	t.Parallel()

	t.Run("PublishesExactlyOnceInOrderAcrossACrashBeforeTheCursorCommit", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		s, b := setup(t)
		srv := natstest.Start(t)
		_, js := srv.Connect(t)
		require.NoError(t, EnsureChangesStream(ctx, js, 1))

		for i := range 3 {
			apply(t, s, b.items(
				msg(event.ChangeCreateUser, fmt.Sprintf(`{"user_id":"u%d","name":"U%d","department":[1]}`, i, i)),
				msg(event.ChangeUpdateUser, fmt.Sprintf(`{"user_id":"u%d","alias":"a%d"}`, i, i)),
			))
		}
		total := count(t, b.pool, `SELECT count(*) FROM wecom.changes`)
		require.Equal(t, 6, total)

		// First relay: publishes a round of 4, then "crashes" before the cursor commit.
		crashCtx, crash := context.WithCancel(ctx)
		r1 := NewRelay(b.pool, js, nil, RelayOptions{BatchSize: 4, PollInterval: time.Hour})
		r1.afterPublish = func(context.Context, string, int64) error {
			crash()
			return context.Canceled
		}
		require.NoError(t, r1.Run(crashCtx))
		stream, err := js.Stream(ctx, ChangesStreamName)
		require.NoError(t, err)
		info, err := stream.Info(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(4), info.State.Msgs)
		require.Equal(t, 0, count(t, b.pool, `SELECT published_seq FROM wecom.relay_cursors WHERE corp_id = $1`, corp))

		// Second relay: re-publishes the 4 (dropped as duplicates) and the rest, then
		// follows new changes as NOTIFY wakes it (the poll is an hour away).
		runCtx, stop := context.WithCancel(ctx)
		r2 := NewRelay(b.pool, js, nil, RelayOptions{BatchSize: 4, PollInterval: time.Hour})
		done := make(chan error, 1)
		go func() { done <- r2.Run(runCtx) }()
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		require.NoError(t, err)
		got := fetchChanges(t, cons, 6)
		apply(t, s, b.items(msg(event.ChangeDeleteUser, `{"user_id":"u1"}`)))
		got = append(got, fetchChanges(t, cons, 1)...)
		last := got[len(got)-1]
		require.Eventually(t, func() bool {
			return int(last.msg.Seq) == count(t, b.pool, `SELECT published_seq FROM wecom.relay_cursors WHERE corp_id = $1`, corp)
		}, 10*time.Second, 10*time.Millisecond, "cursor committed after the PubAck")
		stop()
		require.NoError(t, <-done)

		info, err = stream.Info(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(7), info.State.Msgs, "no duplicates in the stream")
		for i := 1; i < len(got); i++ {
			require.Greater(t, got[i].msg.Seq, got[i-1].msg.Seq, "in seq order")
		}
		first := got[0]
		require.Equal(t, corp, first.msg.CorpID)
		require.Equal(t, "user", first.msg.Entity)
		require.Equal(t, "created", first.msg.Op)
		require.Equal(t, "u0", first.msg.Key)
		require.Equal(t, "null", string(first.msg.Before))
		require.Equal(t, "callback", first.msg.Source)
		require.NotNil(t, first.msg.EventID)
		require.Equal(t, "wecom.changes."+corp+".user.created", first.subject)
		require.Equal(t, fmt.Sprintf("%s:%d", corp, first.msg.Seq), first.msgID)
		var after map[string]any
		require.NoError(t, json.Unmarshal(first.msg.After, &after))
		require.Equal(t, "U0", after["name"])
		require.Equal(t, "wecom.changes."+corp+".user.deleted", last.subject)
		require.Equal(t, "u1", last.msg.Key)
	})
}

func TestRelayKeepsEachCorpInOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, b := setup(t)
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	require.NoError(t, EnsureChangesStream(ctx, js, 1))
	other := "wwother0002"
	for i := range 5 {
		apply(t, s, b.items(msg(event.ChangeCreateUser, fmt.Sprintf(`{"user_id":"a%d","name":"A","department":[1]}`, i))))
		m := msg(event.ChangeCreateUser, fmt.Sprintf(`{"user_id":"b%d","name":"B","department":[1]}`, i))
		m.CorpID = other
		_, err := s.ApplyBatch(ctx, other, []Item{{StreamSeq: uint64(i + 1), Msg: m}})
		require.NoError(t, err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- NewRelay(b.pool, js, nil, RelayOptions{BatchSize: 2, PollInterval: time.Hour}).Run(runCtx)
	}()
	stream, err := js.Stream(ctx, ChangesStreamName)
	require.NoError(t, err)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	got := fetchChanges(t, cons, 10)
	stop()
	require.NoError(t, <-done)
	last := map[string]int64{}
	keys := map[string][]string{}
	for _, g := range got {
		require.Greater(t, g.msg.Seq, last[g.msg.CorpID])
		last[g.msg.CorpID] = g.msg.Seq
		keys[g.msg.CorpID] = append(keys[g.msg.CorpID], g.msg.Key)
		require.Equal(t, "wecom.changes."+g.msg.CorpID+".user.created", g.subject)
	}
	require.Equal(t, []string{"a0", "a1", "a2", "a3", "a4"}, keys[corp])
	require.Equal(t, []string{"b0", "b1", "b2", "b3", "b4"}, keys[other])
}

type gotChange struct {
	subject, msgID string
	msg            changeMsg
}

func fetchChanges(t *testing.T, cons jetstream.Consumer, n int) []gotChange {
	t.Helper()
	var out []gotChange
	for len(out) < n {
		batch, err := cons.Fetch(n-len(out), jetstream.FetchMaxWait(10*time.Second))
		require.NoError(t, err)
		before := len(out)
		for m := range batch.Messages() {
			var c changeMsg
			require.NoError(t, json.Unmarshal(m.Data(), &c))
			out = append(out, gotChange{subject: m.Subject(), msgID: m.Headers().Get("Nats-Msg-Id"), msg: c})
		}
		require.NoError(t, batch.Error())
		require.Greater(t, len(out), before, "no change message within 10s")
	}
	return out
}
