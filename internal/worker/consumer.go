package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wecomsync/wecomsync/internal/event"
	"github.com/wecomsync/wecomsync/internal/mirror"
)

// Applier applies one corp's events in order in one transaction; *mirror.Store is one.
// A returned error means nothing was committed.
type Applier interface {
	ApplyBatch(ctx context.Context, corpID string, items []mirror.Item) ([]mirror.Result, error)
}

// LaneConsumer is the part of jetstream.Consumer a Consumer needs.
type LaneConsumer interface {
	Fetch(batch int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error)
	Info(ctx context.Context) (*jetstream.ConsumerInfo, error)
}

// Unpinner asks the server to unpin a lane consumer's priority group, so that another
// waiting replica is pinned; jetstream.Stream is one (on WECOM_EVENTS).
type Unpinner interface {
	UnpinConsumer(ctx context.Context, consumer string, group string) error
}

// pinHeader is the header the server marks each message to the pinned client with.
const pinHeader = "Nats-Pin-Id"

// Consumer runs one lane: it fetches batches from the lane's consumer, applies them per
// corp in stream order through an Applier, and settles every message after the commit.
// Create it with NewConsumer and call Run.
type Consumer struct {
	lane    Lane
	cons    LaneConsumer
	app     Applier
	log     *slog.Logger
	metrics *Metrics
	opts    Options
	corps   map[string]bool
	unpin   Unpinner // nil: Yield waits for the pinned TTL instead

	// pinID is the pin id of the last message received (Run's goroutine only).
	pinID string
	// pinned reports whether the server has this replica pinned on the lane, as of the
	// last consumer info or delivery.
	pinned atomic.Bool
	// waiting is the most pull requests seen waiting on the lane's consumer since the
	// last TakeWaiting (every replica keeps one waiting, so it estimates the replicas).
	waiting atomic.Int64
	// yield asks Run to hand the lane over to another replica.
	yield chan struct{}
	// cooldown is how long Run stops pulling after handing the lane over.
	cooldown time.Duration

	// afterCommit, when set (tests only), runs after the batch is committed and before it
	// is settled; returning false makes Run return at once without settling, as a process
	// killed between commit and ack would.
	afterCommit func() bool
	// beforeApply, when set (tests only), runs before each corp's ApplyBatch.
	beforeApply func(ctx context.Context, corpID string, items []mirror.Item)
}

// drainedLinger is how long a fetch waits for more messages while the lane's stream is
// drained (see Run): enough to gather a burst, short against the latency it adds.
const drainedLinger = 5 * time.Millisecond

// NewConsumer returns a Consumer of lane over cons applying with app. corps are the
// configured corp ids (used to bound metric labels; others count as "other"). opts must
// be valid (Options.Validate).
func NewConsumer(lane Lane, cons LaneConsumer, app Applier, log *slog.Logger, metrics *Metrics, opts Options, corps []string) *Consumer {
	c := &Consumer{lane: lane, cons: cons, app: app, log: log.With(slog.String("lane", lane.Name)), metrics: metrics, opts: opts,
		corps: map[string]bool{}, yield: make(chan struct{}, 1), cooldown: 3 * opts.PinnedTTL}
	for _, id := range corps {
		c.corps[id] = true
	}
	metrics.Pinned.WithLabelValues(lane.Name).Set(0)
	return c
}

// SetUnpinner makes Yield unpin the lane at once through u instead of waiting for the
// pinned TTL to lapse. Call it before Run.
func (c *Consumer) SetUnpinner(u Unpinner) { c.unpin = u }

// Lane returns the lane c runs.
func (c *Consumer) Lane() Lane { return c.lane }

// Pinned reports whether the server had this replica pinned on the lane at the last
// delivery or consumer info (refreshed at least every five seconds). It does not block.
func (c *Consumer) Pinned() bool { return c.pinned.Load() }

// TakeWaiting returns the most pull requests seen waiting on the lane's consumer since
// the previous call, and starts counting again. It does not block.
func (c *Consumer) TakeWaiting() int { return int(c.waiting.Swap(0)) }

// Yield asks Run to hand the lane over: once the batch in flight is settled it gives back
// what it holds, unpins itself (see SetUnpinner) and stops pulling for three pinned TTLs,
// so a replica waiting on the lane is pinned instead. It does not block; a request made
// while one is pending is dropped.
func (c *Consumer) Yield() {
	select {
	case c.yield <- struct{}{}:
	default:
	}
}

func (c *Consumer) setPinned(v bool) {
	c.pinned.Store(v)
	g := 0.0
	if v {
		g = 1
	}
	c.metrics.Pinned.WithLabelValues(c.lane.Name).Set(g)
}

// held is a message the Consumer holds, not yet settled, decoded for the mirror.
type held struct {
	m         jetstream.Msg
	seq       uint64
	delivered uint64
	corp      string
	item      mirror.Item
	bad       string // why the message cannot be attributed to a corp ("" if it can)
}

// outcome is how a batch ended.
type outcome struct {
	stopped bool // a test hook stopped the Consumer before settling
	retried bool // some message was naked: what was fetched behind it must wait for it
	// unsettled holds the messages of a batch that ended without retries, with their
	// settlements, for Run to send: it first checks the ordering gate for the next batch
	// (while none of these acks is in flight the server's count of outstanding messages
	// is exact), then settles them while the next batch applies.
	unsettled *settleSet
}

// settleSet is a batch's messages and how each is to be settled.
type settleSet struct {
	msgs      []held
	decisions []settlement
}

// Run consumes until ctx ends, then stops fetching, finishes the batch in flight
// (commit within Options.ShutdownGrace, then settle, which waits at most settleTimeout
// for the server) and gives back any message it held without applying. It returns nil on a clean stop; it does not return on transient
// broker or database errors (it logs and retries them).
//
// While one batch is applied the next one is fetched and decoded (the consumer allows
// two batches outstanding); batches are applied one after the other, in stream order.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.setPinned(false)
	holding := map[uint64]held{}
	var (
		inflight     chan outcome // the batch being applied; nil when none
		gateSince    time.Time    // when the ordering gate first kept the held set waiting
		lastProgress time.Time    // when progress acks were last sent for the held set
		lastInfo     time.Time
		pause        time.Duration
		pausedUntil  time.Time // after a Yield: no pulls until then
		drained      bool      // the last fetch got fewer messages than it asked for
	)
	var (
		unsettled *settleSet    // the last batch's settlements, not sent yet
		settling  chan struct{} // closed when the settlements sent in the background are confirmed
	)
	// waitSettled waits until the server has processed the settlements sent in the
	// background (the last one is a confirmed ack), so its outstanding count is current.
	waitSettled := func() {
		if settling != nil {
			<-settling
			settling = nil
		}
	}
	// settleNow sends the last batch's settlements: in the background when async, while
	// the next batch applies.
	settleNow := func(async bool) {
		if unsettled == nil {
			return
		}
		set := unsettled
		unsettled = nil
		waitSettled()
		if !async {
			c.settleAll(ctx, set)
			return
		}
		ch := make(chan struct{})
		settling = ch
		go func() {
			defer close(ch)
			c.settleAll(ctx, set)
		}()
	}
	// finish takes the in-flight batch's outcome; it reports false when Run must return.
	finish := func(o outcome) bool {
		inflight = nil
		if o.retried {
			// Part of that batch comes back later; nothing fetched behind it may be
			// applied first (the gate holds it until the retried messages return).
			c.giveBack(holding)
		}
		unsettled = o.unsettled
		return !o.stopped
	}
	for {
		if inflight != nil && (ctx.Err() != nil || len(holding) >= c.opts.BatchSize) {
			if !finish(<-inflight) {
				waitSettled()
				return nil
			}
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if inflight == nil {
			select {
			case <-c.yield:
				settleNow(false)
				waitSettled()
				c.handOver(ctx, holding)
				gateSince = time.Time{}
				pausedUntil = time.Now().Add(c.cooldown)
			default:
			}
		}
		if time.Now().Before(pausedUntil) {
			// Handed over: stay out of the lane's waiting pulls until another replica
			// is pinned, or the server could pin us again.
			sleep(ctx, c.opts.MaxWait)
			continue
		}
		// Normally fetch up to one batch (the next one, while another applies). While the
		// gate waits, fetch whatever comes (redeliveries first) up to all that can be
		// outstanding, or the messages we wait for could never reach us.
		want := c.opts.BatchSize - len(holding)
		if !gateSince.IsZero() {
			want = max(2*c.opts.BatchSize-len(holding), 1)
		}
		// A Fetch returns when it has `want` messages or MaxWait has passed. Under load a
		// batch fills at once; when the stream is drained, waiting for a full batch would
		// delay every event by MaxWait. So an idle lane asks for one message (the Fetch
		// returns as it arrives) and, while the stream stays drained, tops up with a short
		// linger: low latency at low rates, full batches under load.
		wait := c.opts.MaxWait
		probe := false
		if gateSince.IsZero() && drained {
			if len(holding) == 0 && inflight == nil {
				want, probe = min(want, 1), true
			} else {
				wait = min(wait, drainedLinger)
			}
		}
		if want > 0 {
			// The next batch is not all here: the fetch may wait, so settle the last one now.
			settleNow(true)
			batch, err := c.cons.Fetch(want, jetstream.FetchMaxWait(wait), jetstream.FetchPriorityGroup(PriorityGroup))
			got := 0
			if err == nil {
				for m := range batch.Messages() {
					c.hold(holding, m)
					got++
				}
				err = batch.Error()
			}
			if !probe {
				// A probe's one message says nothing of a backlog: the top-up that follows
				// finds out, with the short linger.
				drained = got < want
			}
			if errors.Is(err, jetstream.ErrPinIDMismatch) {
				c.pinID = ""
				c.setPinned(false)
			}
			switch {
			case err == nil, errors.Is(err, jetstream.ErrNoMessages), errors.Is(err, context.DeadlineExceeded):
				pause = 0
			case errors.Is(err, jetstream.ErrPinIDMismatch):
				// Another replica is pinned now: whatever we hold must go to it, or neither
				// of us could ever hold every outstanding message.
				c.log.InfoContext(ctx, "lane pinned to another replica; giving back held messages", slog.Int("held", len(holding)))
				settleNow(true)
				c.giveBack(holding)
				continue
			default:
				c.log.WarnContext(ctx, "fetching from lane", slog.String("error", err.Error()))
				pause = min(max(2*pause, 100*time.Millisecond), 5*time.Second)
				sleep(ctx, pause)
			}
		}
		now := time.Now()
		if len(holding) == 0 {
			lastProgress = now
		} else if now.Sub(lastProgress) > c.opts.AckWait/3 {
			// Held while a batch applies or the gate waits: keep the server from
			// redelivering them meanwhile.
			lastProgress = now
			for _, h := range holding {
				_ = h.m.InProgress()
			}
		}
		if inflight != nil {
			select {
			case o := <-inflight:
				if !finish(o) {
					waitSettled()
					return nil
				}
			default:
				continue // still applying: fetch ahead
			}
		}
		if len(holding) == 0 {
			settleNow(true)
			if now.Sub(lastInfo) > min(5*time.Second, c.opts.PinnedTTL) {
				lastInfo = now
				c.refreshInfo(ctx)
			}
			continue
		}
		// The last batch's messages are outstanding until settled: count them as ours.
		waitSettled()
		ours := len(holding)
		if unsettled != nil {
			for _, h := range unsettled.msgs {
				if _, again := holding[h.seq]; !again { // a redelivery is held once
					ours++
				}
			}
		}
		info, err := c.info(ctx)
		lastInfo = now
		if err != nil {
			settleNow(true)
			c.log.WarnContext(ctx, "reading lane consumer info", slog.String("error", err.Error()))
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		if info.NumAckPending > ours {
			settleNow(true)
			// Some outstanding message is not ours (a dead replica's, or one we naked with
			// a delay); it has a lower stream sequence than what we fetched since, so wait
			// for its redelivery (redeliveries come before new messages).
			if gateSince.IsZero() {
				gateSince = now
				c.metrics.GateWaits.WithLabelValues(c.lane.Name).Inc()
			}
			if now.Sub(gateSince) > c.opts.AckWait+c.opts.PinnedTTL {
				// Whatever we wait for should have come by now; if another replica holds
				// it (we were unpinned without noticing), only giving ours back lets it go on.
				c.log.WarnContext(ctx, "outstanding messages did not come back; giving back held messages",
					slog.Int("held", len(holding)), slog.Int("ack_pending", info.NumAckPending))
				c.giveBack(holding)
				gateSince = time.Time{}
			}
			continue
		}
		gateSince = time.Time{}
		msgs := make([]held, 0, len(holding))
		for _, h := range holding {
			msgs = append(msgs, h)
		}
		slices.SortFunc(msgs, func(a, b held) int { return cmpSeq(a.seq, b.seq) })
		clear(holding)
		done := make(chan outcome, 1)
		inflight = done
		go func() { done <- c.process(ctx, msgs) }()
		settleNow(true)
	}
	settleNow(false)
	waitSettled()
	c.giveBack(holding)
	c.log.InfoContext(ctx, "lane stopped")
	return nil
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// hold adds m to the held set; a redelivery of a message already held replaces it (its
// ack subject is the current one).
func (c *Consumer) hold(holding map[uint64]held, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to settle, nothing to apply.
		c.log.Error("message without JetStream metadata", slog.String("subject", m.Subject()), slog.String("error", err.Error()))
		return
	}
	if id := m.Headers().Get(pinHeader); id != "" {
		// Only the pinned replica is delivered to.
		if id != c.pinID || !c.pinned.Load() {
			c.pinID = id
			c.setPinned(true)
		}
	}
	h := held{m: m, seq: md.Sequence.Stream, delivered: md.NumDelivered}
	h.corp, h.item, h.bad = decodeItem(h)
	holding[h.seq] = h
}

// giveBack naks every held message without delay, in stream order, so the replica that
// applies next gets them before anything newer.
func (c *Consumer) giveBack(holding map[uint64]held) {
	seqs := make([]uint64, 0, len(holding))
	for s := range holding {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	for _, s := range seqs {
		_ = holding[s].m.Nak()
	}
	clear(holding)
}

func (c *Consumer) info(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	info, err := c.cons.Info(ictx)
	if err != nil {
		return nil, err
	}
	c.metrics.Lag.WithLabelValues(c.lane.Name).Set(float64(info.NumPending))
	c.metrics.AckPending.WithLabelValues(c.lane.Name).Set(float64(info.NumAckPending))
	pinned := false
	for _, g := range info.PriorityGroups {
		if g.Group == PriorityGroup && c.pinID != "" && g.PinnedClientID == c.pinID {
			pinned = true
		}
	}
	if pinned != c.pinned.Load() {
		c.setPinned(pinned)
	}
	for w := int64(info.NumWaiting); ; {
		old := c.waiting.Load()
		if w <= old || c.waiting.CompareAndSwap(old, w) {
			break
		}
	}
	return info, nil
}

// handOver gives back what Run holds and unpins the lane (Yield).
func (c *Consumer) handOver(ctx context.Context, holding map[uint64]held) {
	c.log.InfoContext(ctx, "handing the lane over to another replica", slog.Int("held", len(holding)))
	c.giveBack(holding)
	c.metrics.Handovers.WithLabelValues(c.lane.Name).Inc()
	if c.unpin != nil && c.pinned.Load() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := c.unpin.UnpinConsumer(uctx, c.lane.Name, PriorityGroup); err != nil {
			// The pinned TTL unpins us anyway while we do not pull.
			c.log.WarnContext(ctx, "unpinning the lane", slog.String("error", err.Error()))
		}
		cancel()
	}
	c.pinID = ""
	c.setPinned(false)
}

func (c *Consumer) refreshInfo(ctx context.Context) {
	if _, err := c.info(ctx); err != nil && ctx.Err() == nil {
		c.log.DebugContext(ctx, "reading lane consumer info", slog.String("error", err.Error()))
	}
}

// process applies msgs (sorted by stream sequence, every outstanding message of the
// lane) per corp and settles each one. The batch runs to completion even when ctx ends,
// within ShutdownGrace, and never longer than ApplyTimeout.
func (c *Consumer) process(ctx context.Context, msgs []held) outcome {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.ApplyTimeout)
	defer cancel()
	stopGrace := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(c.opts.ShutdownGrace, cancel)
		context.AfterFunc(bctx, func() { t.Stop() })
	})
	defer stopGrace()

	// Progress acks while the batch is applied (lookups can be slow), so the server does
	// not redeliver what is being applied.
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(c.opts.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, h := range msgs {
					_ = h.m.InProgress()
				}
			}
		}
	}()

	decisions := make([]settlement, len(msgs))
	kinds := make([]string, len(msgs))
	type eventKey struct{ corp, kind, outcome string }
	counted := map[eventKey]int{}
	// Group by corp, keeping stream order inside each group; corps are independent.
	groups := map[string][]int{}
	var order []string
	for i, h := range msgs {
		corp, item, bad := h.corp, h.item, h.bad
		if bad != "" {
			// Nothing the mirror could record either: no corp in the subject.
			decisions[i] = settlement{act: actTerm, reason: bad}
			kinds[i] = "undecodable"
			c.log.ErrorContext(ctx, "terminating message the worker cannot attribute to a corp",
				slog.String("subject", h.m.Subject()), slog.Uint64("stream_seq", h.seq), slog.String("reason", bad))
			continue
		}
		kinds[i] = "undecodable"
		if item.Msg != nil {
			kinds[i] = kindLabel(item.Msg.Event, item.Msg.ChangeType)
		}
		if _, ok := groups[corp]; !ok {
			order = append(order, corp)
		}
		groups[corp] = append(groups[corp], i)
	}
	for _, corp := range order {
		idx := groups[corp]
		group := make([]mirror.Item, len(idx))
		for j, i := range idx {
			group[j] = msgs[i].item
		}
		results, err := c.apply(bctx, corp, group)
		if err != nil {
			reason := "error"
			if errors.Is(err, errPanic) {
				reason = "panic"
			}
			c.metrics.BatchErrors.WithLabelValues(reason).Inc()
			c.log.ErrorContext(ctx, "applying batch failed; retrying it later", slog.String("corp_id", corp),
				slog.Int("events", len(group)), slog.String("error", err.Error()))
		}
		bySeq := make(map[uint64]*mirror.Result, len(results))
		for k := range results {
			bySeq[results[k].StreamSeq] = &results[k]
		}
		for _, i := range idx {
			var res *mirror.Result
			if err == nil {
				res = bySeq[msgs[i].seq]
			}
			decisions[i] = decide(res, err, msgs[i].delivered, c.opts.Backoff)
			if res != nil && res.Status == mirror.Poison {
				c.log.WarnContext(ctx, "event dead-lettered", slog.String("corp_id", corp),
					slog.Uint64("stream_seq", msgs[i].seq), slog.Int64("dead_letter_id", res.DeadLetterID), slog.String("reason", res.Reason))
			}
			outcome := "retried"
			if res != nil && err == nil {
				outcome = statusLabel(res.Status)
			}
			counted[eventKey{c.corpLabel(corp), kinds[i], outcome}]++
		}
	}
	for k, n := range counted {
		c.metrics.Events.WithLabelValues(k.corp, k.kind, k.outcome).Add(float64(n))
	}
	close(done)
	if c.afterCommit != nil && !c.afterCommit() {
		return outcome{stopped: true}
	}
	var out outcome
	for _, d := range decisions {
		out.retried = out.retried || d.act == actNak
	}
	set := &settleSet{msgs: msgs, decisions: decisions}
	if out.retried {
		// The naks must reach the server before Run gives back what it fetched since.
		c.settleAll(ctx, set)
		return out
	}
	out.unsettled = set
	return out
}

// settleAll settles a batch's messages: terminations and naks first, then the acks, the
// last of which waits for the server's confirmation, so that every settlement before it
// has been processed when it returns (a batch of only poison or retried messages has no
// ack to confirm with; the gate then at worst waits once more). It is bounded by its own
// deadline, not by ctx (a batch committed during shutdown is still acked).
func (c *Consumer) settleAll(ctx context.Context, set *settleSet) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	lastAck := -1
	for i, d := range set.decisions {
		if d.act == actAck {
			lastAck = i
		}
	}
	send := func(i int) {
		h := set.msgs[i]
		if err := settle(sctx, h.m, set.decisions[i], i == lastAck); err != nil {
			// The server redelivers an unsettled message; the mirror then sees a duplicate.
			c.log.WarnContext(ctx, "settling message", slog.Uint64("stream_seq", h.seq), slog.String("error", err.Error()))
		}
	}
	for i, d := range set.decisions {
		if d.act != actAck {
			send(i)
		}
	}
	for i, d := range set.decisions {
		if d.act == actAck {
			send(i)
		}
	}
}

// settleTimeout bounds settling one batch (the confirmed ack's round trip).
const settleTimeout = 10 * time.Second

// apply calls the Applier, turning a panic into an error so the batch is retried rather
// than the process lost.
func (c *Consumer) apply(ctx context.Context, corp string, items []mirror.Item) (res []mirror.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.ErrorContext(ctx, "panic while applying batch", slog.String("corp_id", corp),
				slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			res, err = nil, fmt.Errorf("%w: %v", errPanic, p)
		}
	}()
	if c.beforeApply != nil {
		c.beforeApply(ctx, corp, items)
	}
	res, err = c.app.ApplyBatch(ctx, corp, items)
	if err != nil {
		return nil, fmt.Errorf("applying %d events of corp %s: %w", len(items), corp, err)
	}
	return res, nil
}

func (c *Consumer) corpLabel(corp string) string {
	if c.corps[corp] {
		return corp
	}
	return "other"
}

func statusLabel(s mirror.Status) string {
	switch s {
	case mirror.Applied:
		return "applied"
	case mirror.Duplicate:
		return "duplicate"
	case mirror.Ignored:
		return "ignored"
	case mirror.Poison:
		return "poison"
	}
	return "other"
}

// corpFromSubject returns the corp id of wecom.events.<corp>.<...>, or "".
func corpFromSubject(subject string) string {
	rest, ok := strings.CutPrefix(subject, "wecom.events.")
	if !ok {
		return ""
	}
	corp, _, ok := strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	return corp
}

// decodeItem turns a held message into the mirror's Item. The corp comes from the
// subject (lanes partition by subject). A body that is not a bus message becomes an Item
// with a nil Msg, which the mirror dead-letters with the raw body; bad is set only when
// no corp can be read from the subject (nothing could record it).
func decodeItem(h held) (corp string, item mirror.Item, bad string) {
	corp = corpFromSubject(h.m.Subject())
	if corp == "" {
		return "", mirror.Item{}, "subject " + h.m.Subject() + " names no corp"
	}
	item = mirror.Item{StreamSeq: h.seq, Subject: h.m.Subject(), Raw: h.m.Data()}
	var msg event.Message
	if err := event.DecodeMessage(h.m.Data(), &msg); err == nil && msg.ID != "" {
		item.Msg = &msg
	}
	// Decoded for the mirror now, while the batch before it is in Postgres. This runs in
	// the fetch loop, outside apply's recover: should decoding ever panic, leave the item
	// unprepared and let ApplyBatch decode it again, where a panic retries the batch.
	func() {
		defer func() {
			if recover() != nil {
				item.Prep = nil
			}
		}()
		item.Prep = mirror.Prepare(corp, item)
	}()
	return corp, item, ""
}

// sleep waits d or until ctx ends; it reports whether the full wait elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
