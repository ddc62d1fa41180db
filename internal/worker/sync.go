package worker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wecomsync/wecomsync/internal/callback"
	"github.com/wecomsync/wecomsync/internal/mirror"
)

// SyncStore is the part of *mirror.Store a full sync needs.
type SyncStore interface {
	IsEmpty(ctx context.Context, corpID string) (bool, error)
	Sync(ctx context.Context, corpID string, src mirror.SyncSource) (mirror.SyncReport, error)
}

// SourceProvider returns a complete view of a corp's directory; *WeCom is one.
type SourceProvider interface {
	Source(corpID string) (mirror.SyncSource, error)
}

// SyncCorp merges corpID's whole directory, read from sources, into the mirror and
// returns what changed. It blocks until the sync commits or fails; on error nothing was
// committed.
func SyncCorp(ctx context.Context, store SyncStore, sources SourceProvider, corpID string, log *slog.Logger, metrics *Metrics) (mirror.SyncReport, error) {
	src, err := sources.Source(corpID)
	if err != nil {
		return mirror.SyncReport{}, fmt.Errorf("syncing corp %s: %w", corpID, err)
	}
	start := time.Now()
	rep, err := store.Sync(ctx, corpID, src)
	if err != nil {
		metrics.Syncs.WithLabelValues(corpID, "error").Inc()
		return rep, fmt.Errorf("syncing corp %s: %w", corpID, err)
	}
	metrics.Syncs.WithLabelValues(corpID, "ok").Inc()
	log.InfoContext(ctx, "corp synced", slog.String("corp_id", corpID), slog.Duration("took", time.Since(start)),
		slog.Any("users", rep.Users), slog.Any("departments", rep.Departments), slog.Any("tags", rep.Tags))
	return rep, nil
}

// LaneStore is the part of *mirror.Store that moves a corp's lane position.
type LaneStore interface {
	LanePosition(ctx context.Context, corpID string) (uint64, error)
	AdvanceLane(ctx context.Context, corpID string, from, to uint64) (bool, error)
}

// InitialSyncStore is the part of *mirror.Store InitialSync needs.
type InitialSyncStore interface {
	SyncStore
	LaneStore
	LockInitialSync(ctx context.Context, corpID string) (unlock func(), err error)
}

// StreamTail returns the last sequence WECOM_EVENTS holds; EventsTail reads it from
// JetStream.
type StreamTail func(ctx context.Context) (uint64, error)

// StreamInfoer is the part of jetstream.JetStream EventsTail needs.
type StreamInfoer interface {
	Stream(ctx context.Context, stream string) (jetstream.Stream, error)
}

// EventsTail returns a StreamTail reading WECOM_EVENTS's last sequence through js.
func EventsTail(js StreamInfoer) StreamTail {
	return func(ctx context.Context) (uint64, error) {
		st, err := js.Stream(ctx, callback.StreamName)
		if err != nil {
			return 0, fmt.Errorf("looking up stream %s: %w", callback.StreamName, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("reading stream %s: %w", callback.StreamName, err)
		}
		return info.State.LastSeq, nil
	}
}

// InitialSync runs SyncCorp for every corp whose mirror is empty, so a fresh install
// does not wait for callbacks. Call it before the corps' lanes start applying events.
//
// Events queued in the stream before the sync are not replayed over it: before reading
// WeCom it notes the stream's last sequence S (tail), and once the sync has committed it
// raises the corp's lane position to S (Store.AdvanceLane), because every event up to S
// was received before the sync read WeCom, so its effect is in the snapshot; replaying
// it would only show older values until the events after it were applied again. The
// position is left alone if an event of the corp was applied meanwhile (another replica's
// lane): then the events after that one must be applied, as before. With tail nil the
// queued events are replayed after the sync (each entity ends at its latest called-back
// state once the queue is applied, but may show an older value meanwhile).
// Replicas starting together on an empty mirror sync it once: each takes the corp's
// initial-sync lock (Store.LockInitialSync) and checks again under it, so the ones that
// waited find the mirror filled and skip the sync.
// It returns the first error; corps synced before it stay synced.
func InitialSync(ctx context.Context, store InitialSyncStore, sources SourceProvider, tail StreamTail, corps []string, log *slog.Logger, metrics *Metrics) error {
	for _, corp := range corps {
		empty, err := store.IsEmpty(ctx, corp)
		if err != nil {
			return fmt.Errorf("checking whether the mirror of corp %s is empty: %w", corp, err)
		}
		if !empty {
			continue
		}
		if err := initialSync(ctx, store, sources, tail, corp, log, metrics); err != nil {
			return err
		}
	}
	return nil
}

// initialSync syncs corp's empty mirror under its initial-sync lock.
func initialSync(ctx context.Context, store InitialSyncStore, sources SourceProvider, tail StreamTail, corp string, log *slog.Logger, metrics *Metrics) error {
	unlock, err := store.LockInitialSync(ctx, corp)
	if err != nil {
		return fmt.Errorf("initial sync: %w", err)
	}
	defer unlock()
	empty, err := store.IsEmpty(ctx, corp)
	if err != nil {
		return fmt.Errorf("checking whether the mirror of corp %s is empty: %w", corp, err)
	}
	if !empty {
		log.InfoContext(ctx, "mirror filled by another replica's initial sync", slog.String("corp_id", corp))
		return nil
	}
	log.InfoContext(ctx, "mirror empty: running the initial sync", slog.String("corp_id", corp))
	var from, upTo uint64
	if tail != nil {
		// The position first: an event applied after it was read leaves it alone.
		if from, err = store.LanePosition(ctx, corp); err != nil {
			return fmt.Errorf("initial sync: %w", err)
		}
		if upTo, err = tail(ctx); err != nil {
			return fmt.Errorf("initial sync of corp %s: %w", corp, err)
		}
	}
	if _, err := SyncCorp(ctx, store, sources, corp, log, metrics); err != nil {
		return fmt.Errorf("initial sync: %w", err)
	}
	if upTo > from {
		advanced, err := store.AdvanceLane(ctx, corp, from, upTo)
		if err != nil {
			return fmt.Errorf("initial sync of corp %s: %w", corp, err)
		}
		log.InfoContext(ctx, "events queued before the initial sync skipped", slog.String("corp_id", corp),
			slog.Bool("skipped", advanced), slog.Uint64("up_to_stream_seq", upTo))
	}
	return nil
}

// JobEvents fans the mirror's batch_job_result notifications out to the job runner: pass
// Notify as mirror.Options.OnJobEvent and read C. A full buffer drops the notification
// (the runner also polls Store.JobEvent), so the apply path never blocks on it.
type JobEvents struct {
	ch chan mirror.JobEvent
}

// NewJobEvents returns a JobEvents buffering up to n notifications.
func NewJobEvents(n int) *JobEvents { return &JobEvents{ch: make(chan mirror.JobEvent, n)} }

// Notify queues e without blocking; it reports whether e was queued.
func (j *JobEvents) Notify(e mirror.JobEvent) bool {
	select {
	case j.ch <- e:
		return true
	default:
		return false
	}
}

// C returns the channel notifications arrive on.
func (j *JobEvents) C() <-chan mirror.JobEvent { return j.ch }
