package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wecomsync/wecomsync/internal/event"
)

// Options tune a Store. The zero value is usable.
type Options struct {
	// Metrics receives the Store's measurements; nil creates unregistered collectors.
	Metrics *Metrics
	// LookupConcurrency bounds concurrent Lookup calls per ApplyBatch; default 4.
	LookupConcurrency int
	// OnJobEvent, when set, is called after the commit of a batch that recorded
	// batch_job_result events, once per recorded event (not for duplicates). It must not
	// block for long; the job runner may also poll Store.JobEvent.
	OnJobEvent func(JobEvent)
	// AnalyzeAfter is how many changed rows make a Sync refresh the mirror tables' planner
	// statistics (ANALYZE) once it has committed; default 1000, negative never. After a
	// bulk load (a fresh install's initial sync, an export) the tables are many times
	// larger than the statistics say until autovacuum catches up, and the apply path's
	// key lookups are then planned as scans of the corp's whole member list. Applied
	// events that create that many members refresh the members' statistics too, at most
	// once a minute (a mirror filled by events has none until autovacuum's next round).
	AnalyzeAfter int
}

// Store applies events and snapshots to the Postgres mirror (schema wecom) and keeps the
// change log. It is safe for concurrent use; writers of one corp are serialised by a
// Postgres advisory lock. Times it records (changes.at, applied_at, ...) are the
// database's transaction time, so it takes no clock.
type Store struct {
	pool    *pgxpool.Pool
	lookup  Lookup
	log     *slog.Logger
	opts    Options
	metrics *Metrics
	// Background work (the statistics refreshes syncs start): bg is cancelled by Close,
	// which then waits for bgWork; closed (under bgMu) stops new work starting.
	bg       context.Context
	stopBG   context.CancelFunc
	bgMu     sync.Mutex
	bgWork   sync.WaitGroup
	bgClosed bool
	// Members created by applied events since the last statistics refresh they started
	// (see Options.AnalyzeAfter), and when that was.
	created    atomic.Int64
	growthMu   sync.Mutex
	growthBusy bool
	growthAt   time.Time
	// The statements applied batches wrote with, prepared on a connection before an
	// apply's pipeline starts so that its writes can follow the reads in it.
	writeSQL stmtSet
	// Batches applied again because writes sent early assumed a duplicate event new.
	appliedAgain atomic.Int64
}

// stmtSet is a set of SQL texts, bounded (maxStmtSet) and kept in the order first seen.
type stmtSet struct {
	mu   sync.Mutex
	list []string
	seen map[string]bool
}

// maxStmtSet bounds a stmtSet: the apply path has a fixed set of a few dozen statements.
const maxStmtSet = 128

// all returns the set's texts; the caller must not modify the slice.
func (s *stmtSet) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list
}

// add adds the SQL texts of b's statements.
func (s *stmtSet) add(b *pgx.Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range b.QueuedQueries {
		if s.seen[q.SQL] || len(s.list) >= maxStmtSet {
			continue
		}
		if s.seen == nil {
			s.seen = map[string]bool{}
		}
		s.seen[q.SQL] = true
		s.list = append(s.list, q.SQL) // readers hold shorter slices: appending is safe
	}
}

// Close cancels the background work Syncs started (see Options.AnalyzeAfter) and waits for
// it to end; Syncs after it start none. Call it before closing the pool.
func (s *Store) Close() {
	s.bgMu.Lock()
	s.bgClosed = true
	s.bgMu.Unlock()
	s.stopBG()
	s.bgWork.Wait()
}

// background runs f on its own goroutine with the Store's background context, unless
// the Store is closed.
func (s *Store) background(f func(ctx context.Context)) {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.bgClosed {
		return
	}
	s.bgWork.Go(func() { f(s.bg) })
}

// NewStore returns a Store over pool. lookup may be nil, which behaves as if every lookup
// returned ErrLookupNotPermitted.
func NewStore(pool *pgxpool.Pool, lookup Lookup, log *slog.Logger, opts Options) *Store {
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.LookupConcurrency <= 0 {
		opts.LookupConcurrency = 4
	}
	if opts.AnalyzeAfter == 0 {
		opts.AnalyzeAfter = 1000
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{pool: pool, lookup: lookup, log: log, opts: opts, metrics: opts.Metrics}
	s.bg, s.stopBG = context.WithCancel(context.Background())
	return s
}

// Item is one event to apply.
type Item struct {
	// StreamSeq is the message's WECOM_EVENTS stream sequence. Items of a lane arrive with
	// increasing sequences; 0 marks an item that is not from the lane (a dead-letter
	// replay): only the event-id check applies to it and the lane position is not moved.
	StreamSeq uint64
	// Msg is the decoded bus message; nil when the body could not be decoded (the item is
	// then dead-lettered with Raw as its payload).
	Msg *event.Message
	// Subject is the NATS subject the message came on (kept in dead letters).
	Subject string
	// Raw is the message body as received (kept in dead letters); when nil, Msg is
	// re-encoded.
	Raw []byte
	// Prep is optional: Prepare's result for this item, made ahead of ApplyBatch (a lane
	// decodes the next batch while the current one is in Postgres). ApplyBatch decodes
	// the item itself when Prep is nil or was made for another corp.
	Prep *Prepared
}

// Prepared is an item decoded for the mirror (see Prepare).
type Prepared struct {
	corpID string
	p      prepared
}

// Prepare decodes it for ApplyBatch in the lane of corpID: the typed change the message
// carries, or why it is poison or ignored. It needs no database and does not block;
// store the result in it.Prep. It and its Msg must not change afterwards.
func Prepare(corpID string, it Item) *Prepared {
	return &Prepared{corpID: corpID, p: prepare(corpID, it)}
}

// Status is the outcome of one item.
type Status string

// The item outcomes.
const (
	// Applied: the item was applied (its effect may be nothing if the mirror already
	// matched it; then no change row is written). Recorded batch_job_result events are
	// Applied too.
	Applied Status = "applied"
	// Duplicate: the item's stream sequence or event id was already applied; nothing
	// changed.
	Duplicate Status = "duplicate"
	// Poison: the item can never apply (undecodable, unparsed XML, invalid data, an
	// unknown contact change type); it is in wecom.dead_letters, with Reason.
	Poison Status = "poison"
	// Ignored: the event is not for the mirror (such as change_external_contact).
	Ignored Status = "ignored"
)

// Result is the outcome of one Item, in the order of the items given.
type Result struct {
	StreamSeq uint64
	Status    Status
	// Reason explains a Poison or Ignored status.
	Reason string
	// DeadLetterID is the wecom.dead_letters id of a Poison item.
	DeadLetterID int64
}

// IsEmpty reports whether the mirror holds no member and no department of corpID (so the
// worker runs an initial Sync).
func (s *Store) IsEmpty(ctx context.Context, corpID string) (bool, error) {
	var any bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM wecom.users WHERE corp_id = $1)
		OR EXISTS (SELECT 1 FROM wecom.departments WHERE corp_id = $1)`, corpID).Scan(&any)
	if err != nil {
		return false, fmt.Errorf("checking whether the mirror of %s is empty: %w", corpID, err)
	}
	return !any, nil
}

// LockInitialSync takes corpID's initial-sync lock, a Postgres session advisory lock that
// serialises replicas starting together on an empty mirror: the first one syncs, the
// others wait for it and then find the mirror filled, so WeCom is read once rather than
// once per replica. The lock lives on a connection of its own, outside the pool (the sync
// needs the pool's connections), until unlock is called. It blocks until the lock is
// held or ctx ends. A replica that dies holding it releases it with its session.
func (s *Store) LockInitialSync(ctx context.Context, corpID string) (unlock func(), err error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("connecting for the initial-sync lock of %s: %w", corpID, err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, "wecom.initial-sync:"+corpID); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("taking the initial-sync lock of %s: %w", corpID, err)
	}
	// Closing the session releases the lock.
	return func() { _ = conn.Close(context.WithoutCancel(ctx)) }, nil
}

// PruneAppliedEvents deletes the applied-event ids recorded before olderThan and returns
// how many it deleted. Ids must be kept at least as long as WECOM_EVENTS keeps messages
// (its MaxAge, 7 days by default), since only a message still in the stream can be
// redelivered; the worker calls this periodically, e.g. hourly with now minus 8 days.
func (s *Store) PruneAppliedEvents(ctx context.Context, olderThan time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM wecom.applied_events WHERE applied_at < $1`, olderThan)
	if err != nil {
		return 0, fmt.Errorf("pruning applied event ids: %w", err)
	}
	return tag.RowsAffected(), nil
}
