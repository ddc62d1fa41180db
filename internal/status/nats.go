package status

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wecomsync/wecomsync/internal/event"
	"github.com/wecomsync/wecomsync/internal/worker"
)

// readStream fills in the stream, the lanes, each corp's newest event and its lag.
func (c *collector) readStream(ctx context.Context) {
	if c.h.cfg.Streams == nil {
		for _, x := range c.corps {
			x.Lag.Basis = "the page has no NATS connection"
		}
		return
	}
	st, err := c.h.cfg.Streams.Stream(ctx, c.h.cfg.Stream)
	if err != nil {
		c.problem(ctx, "the event stream "+c.h.cfg.Stream, err)
		for _, x := range c.corps {
			x.Lag.Basis = "the event stream could not be read"
		}
		return
	}
	// Stream (the lookup) fetched the stream's info already: no second round trip.
	if info := st.CachedInfo(); info != nil {
		s := &Stream{Name: info.Config.Name, Messages: info.State.Msgs, Bytes: info.State.Bytes,
			FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq}
		if !info.State.LastTime.IsZero() {
			t := info.State.LastTime.UTC()
			s.LastAt = &t
		}
		c.s.Stream = s
	}

	lanesOK := true
	lister := st.ListConsumers(ctx)
	for ci := range lister.Info() {
		if !isLane(ci) {
			continue
		}
		filters := ci.Config.FilterSubjects
		if ci.Config.FilterSubject != "" {
			filters = []string{ci.Config.FilterSubject}
		}
		if filters == nil {
			filters = []string{}
		}
		c.s.Lanes = append(c.s.Lanes, Lane{Name: ci.Name, Filters: filters, Pending: ci.NumPending,
			AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered, DeliveredSeq: ci.Delivered.Stream,
			AckFloorSeq: ci.AckFloor.Stream, Waiting: ci.NumWaiting})
	}
	if err := lister.Err(); err != nil {
		c.problem(ctx, "the lane consumers", err)
		lanesOK = false
	}
	slices.SortFunc(c.s.Lanes, func(a, b Lane) int { return strings.Compare(a.Name, b.Name) })

	// One last-message lookup per corp, a few at a time: a worker serving hundreds of
	// corps must not make the page wait on hundreds of sequential round trips.
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, lookupConcurrency)
	)
	for id, x := range c.corps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			m, err := st.GetLastMsgForSubject(ctx, corpSubjects(id))
			switch {
			case errors.Is(err, jetstream.ErrMsgNotFound):
				x.NewestEvent = nil
			case err != nil:
				mu.Lock()
				firstErr = cmp.Or(firstErr, err)
				mu.Unlock()
				x.Lag = Lag{State: LagUnknown, Basis: "the corp's newest event could not be read"}
				return
			default:
				x.NewestEvent = &StreamEvent{StreamSeq: m.Sequence, At: m.Time.UTC()}
			}
			x.Lag = lagOf(id, x.LastApplied, x.NewestEvent, c.s.Lanes, lanesOK)
		}()
	}
	wg.Wait()
	if firstErr != nil {
		c.problem(ctx, "the corps' newest events", firstErr)
	}
}

// lookupConcurrency bounds the concurrent per-corp stream lookups of one request.
const lookupConcurrency = 8

// corpSubjects is the subject filter of every event of corpID (event.Subject's scheme).
func corpSubjects(corpID string) string {
	return event.SubjectPrefix + event.Token(corpID) + ".>"
}

// isLane reports whether a consumer is a worker apply lane: a durable consumer in the
// lanes' priority group (other applications may consume WECOM_EVENTS too; their
// positions say nothing about the mirror).
func isLane(ci *jetstream.ConsumerInfo) bool {
	return ci.Config.Durable != "" && slices.Contains(ci.Config.PriorityGroups, worker.PriorityGroup)
}

// lagOf works out how far corpID's mirror is behind the stream.
//
// The lanes table says which stream sequence was applied last; the stream says which is
// the corp's newest. When the first is at or past the second the corp is up to date.
// Otherwise the events not applied yet lie between the two, and are delivered-but-unacked
// or not yet delivered on the lanes that receive the corp, so the count is at most the
// sequence distance (other corps' events are interleaved in it) and at most those lanes'
// NumPending+NumAckPending (other corps' events count there too, on a shared lane). When
// every lane receiving the corp receives only that corp (worker.CorpLane), their count
// is the corp's own: exact.
func lagOf(corpID string, applied *Applied, newest *StreamEvent, lanes []Lane, lanesOK bool) Lag {
	if newest == nil {
		return Lag{State: LagUpToDate, Basis: "the stream holds no event of this corp"}
	}
	var done uint64
	if applied != nil {
		done = applied.StreamSeq
	}
	if done >= newest.StreamSeq {
		return Lag{State: LagUpToDate, Basis: "the last applied stream sequence is the corp's newest event"}
	}
	distance := newest.StreamSeq - done
	if !lanesOK {
		return Lag{State: LagBehind, Events: distance,
			Basis: "stream-sequence distance from the last applied event to the corp's newest (upper bound; lanes unreadable)"}
	}
	var pending uint64
	covered, own := false, true
	for _, l := range lanes {
		cov, ded := laneCovers(l.Filters, corpID)
		if !cov {
			continue
		}
		covered = true
		own = own && ded
		pending += l.Pending + uint64(max(l.AckPending, 0))
	}
	switch {
	case !covered:
		return Lag{State: LagBehind, Events: distance,
			Basis: "no lane receives this corp; stream-sequence distance from the last applied event to the corp's newest (upper bound)"}
	case own:
		// Read after the lanes row: a batch applied in between shows as fewer pending.
		if pending == 0 {
			return Lag{State: LagUpToDate, Exact: true, Basis: "the corp's own lane has nothing pending"}
		}
		return Lag{State: LagBehind, Events: pending, Exact: true,
			Basis: "pending and unacknowledged events on the corp's own lane"}
	}
	if pending == 0 {
		return Lag{State: LagUpToDate, Basis: "the lanes receiving this corp have nothing pending"}
	}
	return Lag{State: LagBehind, Events: min(distance, pending),
		Basis: "upper bound: the smaller of the stream-sequence distance to the corp's newest event and the pending events of the shared lane"}
}

// laneCovers reports whether a lane with filters can receive events of corpID
// (wecom.events.<corp>.…), and whether every filter names the corp literally, so the
// lane receives no other corp.
func laneCovers(filters []string, corpID string) (covers, own bool) {
	if len(filters) == 0 {
		return true, false // the whole stream
	}
	own = true
	want := strings.Split(strings.TrimSuffix(event.SubjectPrefix, "."), ".")
	want = append(want, event.Token(corpID))
	for _, f := range filters {
		toks := strings.Split(f, ".")
		cov, literal := true, false
		for i, t := range toks {
			if t == ">" {
				break // matches the rest, at least one token: every corp subject has one more
			}
			if i >= len(want) {
				break // a later token can match some event name of the corp
			}
			if t != "*" && t != want[i] {
				cov = false
				break
			}
			if i == len(want)-1 {
				literal = t != "*"
			}
		}
		// "wecom.events.<corp>" alone (or shorter) matches no event subject: they have an
		// event token after the corp.
		if cov && len(toks) <= len(want) && toks[len(toks)-1] != ">" {
			cov = false
		}
		covers = covers || cov
		// A filter receiving anything but this corp (another corp, or every corp) makes
		// the lane shared.
		own = own && cov && literal
	}
	return covers, covers && own
}
