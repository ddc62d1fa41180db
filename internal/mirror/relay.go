package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wecomsync/wecomsync/internal/event"
)

// ChangesStreamName is the stream the Relay publishes the change log to.
const ChangesStreamName = "WECOM_CHANGES"

// ChangesSubjectPrefix starts every change subject:
// wecom.changes.<corp_id>.<user|department|tag>.<created|updated|deleted>.
const ChangesSubjectPrefix = "wecom.changes."

// ChangesDuplicateWindow is WECOM_CHANGES's Nats-Msg-Id dedup window. The Relay records
// its progress in Postgres only after the PubAck, so a relay that dies between the two
// re-publishes the same "<corp>:<seq>" ids when it (or another replica) resumes; the
// window must outlast that restart for the re-publish to be dropped as a duplicate.
const ChangesDuplicateWindow = 30 * time.Minute

// NotifyChannel is the Postgres NOTIFY channel an apply or sync transaction signals (with
// the corp id as payload) when it wrote change rows.
const NotifyChannel = "wecom_changes"

// ChangesStreamConfig returns the WECOM_CHANGES definition: file storage, limits
// retention (users' consumers read it independently), 30 days, a 30-minute dedup window.
func ChangesStreamConfig(replicas int) jetstream.StreamConfig {
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.StreamConfig{
		Name:        ChangesStreamName,
		Description: "Normalized changes of the wecomsync Postgres mirror",
		Subjects:    []string{ChangesSubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      30 * 24 * time.Hour,
		Duplicates:  ChangesDuplicateWindow,
		Replicas:    replicas,
	}
}

// EnsureChangesStream creates the WECOM_CHANGES stream with the given replicas (1 on a
// single server, 3 on a JetStream cluster) or updates it to ChangesStreamConfig. It blocks
// until the server answers or ctx ends.
func EnsureChangesStream(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if _, err := js.CreateOrUpdateStream(ctx, ChangesStreamConfig(replicas)); err != nil {
		return fmt.Errorf("creating or updating stream %s: %w", ChangesStreamName, err)
	}
	return nil
}

// RelayOptions tune a Relay. The zero value is usable.
type RelayOptions struct {
	// PollInterval is how often every corp is checked even without a notification;
	// default 5s.
	PollInterval time.Duration
	// BatchSize is how many changes are read and published per round; default 500.
	BatchSize int
	// Metrics receives the relay's measurements; nil creates unregistered collectors.
	Metrics *Metrics
}

// Relay publishes wecom.changes rows to WECOM_CHANGES: per corp in seq order, each with
// Nats-Msg-Id "<corp_id>:<seq>", recording the last published seq per corp in
// wecom.relay_cursors after the PubAcks. Several relays may run (one per worker); a
// per-corp advisory lock lets one publish a corp at a time.
type Relay struct {
	pool    *pgxpool.Pool
	js      jetstream.JetStream
	log     *slog.Logger
	opts    RelayOptions
	metrics *Metrics
	// afterPublish, when set (tests), runs after a round's PubAcks and before its cursor
	// update; an error abandons the round as a crash there would.
	afterPublish func(ctx context.Context, corpID string, lastSeq int64) error
}

// NewRelay returns a Relay; Run starts it.
func NewRelay(pool *pgxpool.Pool, js jetstream.JetStream, log *slog.Logger, opts RelayOptions) *Relay {
	if opts.PollInterval <= 0 {
		opts.PollInterval = 5 * time.Second
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{pool: pool, js: js, log: log, opts: opts, metrics: opts.Metrics}
}

// Run publishes changes until ctx ends, woken by NOTIFY on NotifyChannel (a dedicated
// listening connection taken from the pool for as long as Run runs, plus one more during
// each publishing round: size the pool for the apply lanes plus two) and every
// PollInterval (which also covers a lost listener).
// Transient errors (Postgres or NATS unavailable) are logged and retried; it returns nil
// when ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	wake := make(chan string, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.listen(ctx, wake)
	}()
	ticker := time.NewTicker(r.opts.PollInterval)
	defer ticker.Stop()
	r.relayAll(ctx)
	for {
		select {
		case <-ctx.Done():
			<-done
			return nil
		case corp := <-wake:
			pending := map[string]bool{corp: true}
			for more := true; more; {
				select {
				case c := <-wake:
					pending[c] = true
				default:
					more = false
				}
			}
			if pending[""] {
				r.relayAll(ctx)
				continue
			}
			for c := range pending {
				r.relayCorpLogged(ctx, c)
			}
		case <-ticker.C:
			r.relayAll(ctx)
		}
	}
}

// listen holds a LISTEN connection, forwarding each notified corp id to wake ("" after a
// (re)connect: check every corp). It reconnects after errors until ctx ends.
func (r *Relay) listen(ctx context.Context, wake chan<- string) {
	send := func(corp string) {
		select {
		case wake <- corp:
		default: // full: a pass is already due; the poll covers the rest
		}
	}
	for ctx.Err() == nil {
		err := func() error {
			conn, err := r.pool.Acquire(ctx)
			if err != nil {
				return err
			}
			// A listening connection must not go back to the pool.
			defer func() { _ = conn.Hijack().Close(context.WithoutCancel(ctx)) }()
			if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
				return err
			}
			send("")
			for {
				n, err := conn.Conn().WaitForNotification(ctx)
				if err != nil {
					return err
				}
				send(n.Payload)
			}
		}()
		if ctx.Err() != nil {
			return
		}
		r.log.WarnContext(ctx, "relay lost its LISTEN connection; polling until it is back", slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (r *Relay) relayAll(ctx context.Context) {
	rows, err := r.pool.Query(ctx, `SELECT corp_id FROM wecom.relay_cursors ORDER BY corp_id`)
	if err != nil {
		if ctx.Err() == nil {
			r.log.ErrorContext(ctx, "listing corps to relay", slog.String("error", err.Error()))
		}
		return
	}
	corps, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		if ctx.Err() == nil {
			r.log.ErrorContext(ctx, "listing corps to relay", slog.String("error", err.Error()))
		}
		return
	}
	for _, c := range corps {
		r.relayCorpLogged(ctx, c)
	}
}

func (r *Relay) relayCorpLogged(ctx context.Context, corpID string) {
	if err := r.relayCorp(ctx, corpID); err != nil && ctx.Err() == nil {
		r.log.ErrorContext(ctx, "relaying changes", slog.String("corp_id", corpID), slog.String("error", err.Error()))
	}
}

// relayCorp publishes corpID's unpublished changes in rounds of BatchSize until none are
// left. Each round runs in a transaction holding the corp's relay lock (another relay
// skips the corp meanwhile): read the changes after the cursor, publish them, wait for
// every PubAck, advance the cursor, commit.
func (r *Relay) relayCorp(ctx context.Context, corpID string) error {
	for {
		n, err := r.relayRound(ctx, corpID)
		if err != nil || n < r.opts.BatchSize {
			return err
		}
	}
}

// changeRow is a wecom.changes row as the relay reads it.
type changeRow struct {
	seq             int64
	entity, key, op string
	before, after   []byte
	source          string
	eventID         *string
	at              time.Time
}

func (r *Relay) relayRound(ctx context.Context, corpID string) (int, error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("beginning relay round: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	var locked bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))`, "wecom.relay:"+corpID).Scan(&locked); err != nil {
		return 0, fmt.Errorf("taking the relay lock: %w", err)
	}
	if !locked {
		return 0, nil // another relay is publishing this corp
	}
	var cursor int64
	if err := tx.QueryRow(ctx, `SELECT published_seq FROM wecom.relay_cursors WHERE corp_id = $1`, corpID).Scan(&cursor); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, nil
		}
		return 0, fmt.Errorf("reading the relay cursor: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT seq, entity, key, op, before, after, source, event_id, at FROM wecom.changes
		WHERE corp_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, corpID, cursor, r.opts.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("reading changes: %w", err)
	}
	var batch []changeRow
	var c changeRow
	_, err = pgx.ForEachRow(rows, []any{&c.seq, &c.entity, &c.key, &c.op, &c.before, &c.after, &c.source, &c.eventID, &c.at}, func() error {
		batch = append(batch, c)
		c = changeRow{}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reading changes: %w", err)
	}
	if len(batch) == 0 {
		r.metrics.RelayLag.WithLabelValues(corpID).Set(0)
		return 0, nil
	}
	r.metrics.RelayLag.WithLabelValues(corpID).Set(time.Since(batch[0].at).Seconds())

	// Publish asynchronously, in order on one connection, then wait for every PubAck.
	// A failed ack abandons the round; the next one re-publishes from the cursor and
	// JetStream drops what it already holds (same Nats-Msg-Id).
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	subjectCorp := event.Token(corpID)
	var buf []byte
	for i := range batch {
		ch := &batch[i]
		buf = ch.appendMessage(buf[:0], corpID)
		m := &nats.Msg{Subject: ChangesSubjectPrefix + subjectCorp + "." + ch.entity + "." + ch.op, Data: slices.Clone(buf)}
		f, err := r.js.PublishMsgAsync(m, jetstream.WithMsgID(corpID+":"+strconv.FormatInt(ch.seq, 10)),
			jetstream.WithExpectStream(ChangesStreamName))
		if err != nil {
			return 0, fmt.Errorf("publishing change %d: %w", ch.seq, err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return 0, fmt.Errorf("publishing change %d: %w", batch[i].seq, err)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	last := batch[len(batch)-1].seq
	if r.afterPublish != nil {
		if err := r.afterPublish(ctx, corpID, last); err != nil {
			return 0, err
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE wecom.relay_cursors SET published_seq = $2, updated_at = now() WHERE corp_id = $1`, corpID, last); err != nil {
		return 0, fmt.Errorf("advancing the relay cursor: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("committing the relay cursor: %w", err)
	}
	r.metrics.RelayPublished.WithLabelValues(corpID).Add(float64(len(batch)))
	if len(batch) < r.opts.BatchSize {
		r.metrics.RelayLag.WithLabelValues(corpID).Set(0)
	}
	return len(batch), nil
}

// appendMessage appends the change message JSON:
// {"seq","corp_id","entity","key","op","before","after","source","event_id","at"}.
func (c *changeRow) appendMessage(dst []byte, corpID string) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendInt(dst, c.seq, 10)
	dst = append(dst, `,"corp_id":`...)
	dst = appendJSONString(dst, corpID)
	dst = append(dst, `,"entity":`...)
	dst = appendJSONString(dst, c.entity)
	dst = append(dst, `,"key":`...)
	dst = appendJSONString(dst, c.key)
	dst = append(dst, `,"op":`...)
	dst = appendJSONString(dst, c.op)
	dst = append(dst, `,"before":`...)
	dst = appendRaw(dst, c.before)
	dst = append(dst, `,"after":`...)
	dst = appendRaw(dst, c.after)
	dst = append(dst, `,"source":`...)
	dst = appendJSONString(dst, c.source)
	dst = append(dst, `,"event_id":`...)
	dst = appendStr(dst, c.eventID)
	dst = append(dst, `,"at":"`...)
	dst = c.at.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, `"}`...)
}

func appendRaw(dst, raw []byte) []byte {
	if raw == nil {
		return append(dst, "null"...)
	}
	return append(dst, raw...)
}
