package worker

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wecomsync/wecomsync/internal/callback"
)

// MaxPartitions bounds the partition count (each partition is a consumer every replica
// pulls).
const MaxPartitions = 256

// Partition returns the partition of corpID among n (n >= 1): FNV-1a (32 bits) of the
// corp id, modulo n. It is stable across processes, versions and tenant lists, so every
// replica with the same n puts a corp in the same partition.
func Partition(corpID string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(corpID))
	return int(h.Sum32() % uint32(n))
}

// CorpSubjects returns the subjects of corpID's events on WECOM_EVENTS.
func CorpSubjects(corpID string) string { return "wecom.events." + corpID + ".>" }

// PartitionLanes returns the apply lanes of a deployment that spreads corps over n
// partitions. With n == 1 it is the one lane named base over the whole stream (every
// corp, configured or not; DefaultLane when base is its name). With n > 1 partition i is
// the lane "<base>-p<i>" whose filters are the subjects of the corps in it
// (Partition(corp, n) == i), sorted; partitions without a corp get no lane. Events of a
// corp not in corps are then consumed by no lane: the callback receiver publishes only
// the tenants it is configured with, which must be the workers' tenants too.
func PartitionLanes(base string, corps []string, n int) []Lane {
	if n <= 1 {
		return []Lane{{Name: base, Filters: []string{callback.StreamSubjects}}}
	}
	filters := make([][]string, n)
	for _, corp := range corps {
		p := Partition(corp, n)
		filters[p] = append(filters[p], CorpSubjects(corp))
	}
	var lanes []Lane
	for i, f := range filters {
		if len(f) == 0 {
			continue
		}
		slices.Sort(f)
		f = slices.Compact(f)
		lanes = append(lanes, Lane{Name: base + "-p" + strconv.Itoa(i), Filters: f})
	}
	return lanes
}

// wholeStream reports whether l receives every subject of the stream.
func (l Lane) wholeStream() bool {
	return len(l.Filters) == 0 || len(l.Filters) == 1 && l.Filters[0] == callback.StreamSubjects
}

// corps returns the corp ids l's filters name (none for a whole-stream lane).
func (l Lane) corps() []string {
	var out []string
	for _, f := range l.Filters {
		rest, ok := strings.CutPrefix(f, "wecom.events.")
		if corp, ok2 := strings.CutSuffix(rest, ".>"); ok && ok2 && !strings.ContainsAny(corp, ".*>") {
			out = append(out, corp)
		}
	}
	return out
}

// LaneAdmin is the part of jetstream.JetStream EnsureLanes needs.
type LaneAdmin interface {
	ConsumerManager
	CreateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error)
	Consumer(ctx context.Context, stream string, consumer string) (jetstream.Consumer, error)
	DeleteConsumer(ctx context.Context, stream string, consumer string) error
	Stream(ctx context.Context, stream string) (jetstream.Stream, error)
}

// PositionReader returns the mirror's last applied stream sequence per corp (absent:
// none); *mirror.Store is one.
type PositionReader interface {
	LanePositions(ctx context.Context, corpIDs []string) (map[string]uint64, error)
}

// EnsureLanes creates or updates the durable consumers of lanes on WECOM_EVENTS and
// deletes the consumers of other lanes named after base (a whole-stream lane "base" or
// partition lanes "base-p<i>") left from an earlier partition count or tenant list. It
// returns the consumers in the order of lanes and blocks until the server answers.
//
// A whole-stream lane is created to deliver the whole stream (as before partitions).
// A partition lane whose consumer exists with the same filters keeps its delivery state;
// otherwise (new, or its corps changed) its consumer is created anew, starting at the
// lowest stream sequence any of its corps still needs: just after the corp's lane
// position in the mirror (pos reads them), or its first message in the stream for a corp
// without one. Changing a consumer's filters in place would skip the earlier events of a
// corp that moved in. Redelivered events at or below a corp's position are duplicates
// to the mirror, so a lane that starts early is only slower, never wrong.
func EnsureLanes(ctx context.Context, js LaneAdmin, base string, lanes []Lane, o Options, pos PositionReader, log *slog.Logger) ([]jetstream.Consumer, error) {
	out := make([]jetstream.Consumer, len(lanes))
	keep := map[string]bool{}
	for i, l := range lanes {
		if l.wholeStream() {
			c, err := EnsureConsumer(ctx, js, l, o)
			if err != nil {
				return nil, err
			}
			out[i] = c
		} else {
			c, err := ensurePartitionLane(ctx, js, l, o, pos, log)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		keep[l.Name] = true
	}
	if err := deleteStaleLanes(ctx, js, base, keep, log); err != nil {
		return nil, err
	}
	return out, nil
}

func ensurePartitionLane(ctx context.Context, js LaneAdmin, l Lane, o Options, pos PositionReader, log *slog.Logger) (jetstream.Consumer, error) {
	for attempt := 0; ; attempt++ {
		cfg := ConsumerConfig(l, o)
		existing, err := js.Consumer(ctx, callback.StreamName, l.Name)
		switch {
		case err == nil:
			ec := existing.CachedInfo().Config
			if sameFilters(ec, l.Filters) {
				// Same corps: keep where it is (the start cannot be updated anyway).
				cfg.DeliverPolicy, cfg.OptStartSeq = ec.DeliverPolicy, ec.OptStartSeq
				c, err := js.CreateOrUpdateConsumer(ctx, callback.StreamName, cfg)
				if err != nil {
					return nil, fmt.Errorf("updating consumer %s on %s: %w", l.Name, callback.StreamName, err)
				}
				return c, nil
			}
			log.InfoContext(ctx, "the corps of a lane changed: recreating its consumer from the mirror's positions",
				slog.String("lane", l.Name), slog.Int("corps", len(l.Filters)), slog.Int("corps_before", len(filtersOf(ec))))
			if err := js.DeleteConsumer(ctx, callback.StreamName, l.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				return nil, fmt.Errorf("deleting consumer %s on %s: %w", l.Name, callback.StreamName, err)
			}
		case !errors.Is(err, jetstream.ErrConsumerNotFound):
			return nil, fmt.Errorf("looking up consumer %s on %s: %w", l.Name, callback.StreamName, err)
		}
		start, err := laneStart(ctx, js, l, pos)
		if err != nil {
			return nil, err
		}
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
		c, err := js.CreateConsumer(ctx, callback.StreamName, cfg)
		if err == nil {
			log.InfoContext(ctx, "lane consumer created", slog.String("lane", l.Name), slog.Uint64("start_seq", start))
			return c, nil
		}
		if errors.Is(err, jetstream.ErrConsumerExists) && attempt < 3 {
			continue // another replica created it meanwhile: look again
		}
		return nil, fmt.Errorf("creating consumer %s on %s: %w", l.Name, callback.StreamName, err)
	}
}

func filtersOf(c jetstream.ConsumerConfig) []string {
	if len(c.FilterSubjects) > 0 {
		return c.FilterSubjects
	}
	if c.FilterSubject != "" {
		return []string{c.FilterSubject}
	}
	return nil
}

func sameFilters(c jetstream.ConsumerConfig, want []string) bool {
	got := slices.Clone(filtersOf(c))
	slices.Sort(got)
	w := slices.Clone(want)
	slices.Sort(w)
	return slices.Equal(got, w)
}

// laneStart returns the stream sequence a new consumer of l starts at: the lowest of,
// per corp, its mirror position + 1 or (no position) its first message in the stream,
// and the stream's last sequence + 1 (read first, so nothing stored later is missed).
func laneStart(ctx context.Context, js LaneAdmin, l Lane, pos PositionReader) (uint64, error) {
	st, err := js.Stream(ctx, callback.StreamName)
	if err != nil {
		return 0, fmt.Errorf("looking up stream %s: %w", callback.StreamName, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading stream %s: %w", callback.StreamName, err)
	}
	start := info.State.LastSeq + 1
	corps := l.corps()
	positions, err := pos.LanePositions(ctx, corps)
	if err != nil {
		return 0, err
	}
	for _, corp := range corps {
		if p, ok := positions[corp]; ok && p > 0 {
			start = min(start, p+1)
			continue
		}
		m, err := st.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(CorpSubjects(corp)))
		switch {
		case err == nil:
			start = min(start, m.Sequence)
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// No event of the corp in the stream.
		default:
			return 0, fmt.Errorf("finding the first event of corp %s in %s: %w", corp, callback.StreamName, err)
		}
	}
	return max(start, 1), nil
}

// deleteStaleLanes deletes the consumers named like base's lanes that are not in keep.
func deleteStaleLanes(ctx context.Context, js LaneAdmin, base string, keep map[string]bool, log *slog.Logger) error {
	st, err := js.Stream(ctx, callback.StreamName)
	if err != nil {
		return fmt.Errorf("looking up stream %s: %w", callback.StreamName, err)
	}
	names := st.ConsumerNames(ctx)
	var stale []string
	for name := range names.Name() {
		if !keep[name] && isLaneOf(base, name) {
			stale = append(stale, name)
		}
	}
	if err := names.Err(); err != nil {
		return fmt.Errorf("listing consumers of %s: %w", callback.StreamName, err)
	}
	for _, name := range stale {
		if err := js.DeleteConsumer(ctx, callback.StreamName, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("deleting stale lane consumer %s: %w", name, err)
		}
		log.InfoContext(ctx, "deleted the consumer of a lane no longer configured", slog.String("lane", name))
	}
	return nil
}

// isLaneOf reports whether consumer name is base's whole-stream lane or one of its
// partition lanes.
func isLaneOf(base, name string) bool {
	if name == base {
		return true
	}
	rest, ok := strings.CutPrefix(name, base+"-p")
	if !ok || rest == "" {
		return false
	}
	_, err := strconv.Atoi(rest)
	return err == nil
}
