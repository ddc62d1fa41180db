package worker

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Group runs every lane of one replica (one Consumer per lane, all pulling) and keeps
// this replica from applying more than its share of the lanes. Create it with NewGroup.
//
// Balance needs no coordinator: each lane's Consumer reads the lane consumer's info
// after every batch (and every pinned TTL when idle) and notes the pull requests waiting
// on it (ConsumerInfo.NumWaiting). Every replica keeps one pull waiting on every lane it
// is not pinned on, and its own pull has always returned when it reads the info, so on a
// lane this replica is pinned on the count is the other replicas: one more than the most
// seen in the last three judgements is the number of replicas, n. A replica pinned on
// more than ceil(lanes/n) lanes hands the excess over (Consumer.Yield), judging every two
// pinned TTLs (at least a second) and waiting two judgements after a handover; the
// server pins a replica that is waiting on the lane. The estimate falls short of n while
// replicas are busy (a pinned replica's pull is not waiting while it is served), which
// makes replicas yield less, not more, so lanes do not bounce between replicas.
type Group struct {
	lanes []*Consumer
	log   *slog.Logger
	every time.Duration
}

// NewGroup returns a Group running lanes; o are the lanes' options (its PinnedTTL paces
// the balancing).
func NewGroup(lanes []*Consumer, log *slog.Logger, o Options) *Group {
	return &Group{lanes: lanes, log: log, every: max(2*o.PinnedTTL, time.Second)}
}

// Lanes returns the Consumers the Group runs.
func (g *Group) Lanes() []*Consumer { return g.lanes }

// Pinned returns how many of its lanes this replica is pinned on. It does not block.
func (g *Group) Pinned() int {
	n := 0
	for _, c := range g.lanes {
		if c.Pinned() {
			n++
		}
	}
	return n
}

// Run runs every lane until ctx ends and returns once all have stopped (each finishes
// its batch in flight, see Consumer.Run), with their errors joined. A lane that returns
// early (a test hook) does not stop the others.
func (g *Group) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(g.lanes))
	for i, c := range g.lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Run(ctx)
		}()
	}
	if len(g.lanes) > 1 {
		bctx, stop := context.WithCancel(ctx)
		defer stop()
		go g.balance(bctx)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// balance hands a lane over whenever this replica holds more than its share.
func (g *Group) balance(ctx context.Context) {
	t := time.NewTicker(g.every)
	defer t.Stop()
	var seen [3]int // most pulls waiting on a lane in each of the last intervals
	settle := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		waiting := 0
		var pinned []*Consumer
		for _, c := range g.lanes {
			waiting = max(waiting, c.TakeWaiting())
			if c.Pinned() {
				pinned = append(pinned, c)
			}
		}
		copy(seen[1:], seen[:2])
		seen[0] = waiting
		// Our own pull has returned whenever we read the info: count us in.
		replicas := max(seen[0], seen[1], seen[2]) + 1
		share := (len(g.lanes) + replicas - 1) / replicas
		if settle > 0 {
			// Let the last handover land before judging again.
			settle--
			continue
		}
		if excess := len(pinned) - share; excess > 0 {
			// Hand over the whole excess at once: the server pins the lanes to replicas
			// waiting on them (not to this one, which stays out for a while); one that
			// ends up over its share hands the surplus on at its next judgement.
			rand.Shuffle(len(pinned), func(i, j int) { pinned[i], pinned[j] = pinned[j], pinned[i] })
			for _, c := range pinned[:excess] {
				c.Yield()
			}
			g.log.InfoContext(ctx, "more lanes than this replica's share: handing the excess over",
				slog.Int("pinned", len(pinned)), slog.Int("share", share), slog.Int("replicas", replicas), slog.Int("handed_over", excess))
			settle = 2
		}
	}
}
