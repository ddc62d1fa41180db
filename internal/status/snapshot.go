package status

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"time"

	"github.com/wecomsync/wecomsync/internal/jobs"
)

// Snapshot is every figure of the page at one moment; /status.json is its JSON.
type Snapshot struct {
	GeneratedAt time.Time `json:"generated_at"`
	// Corps are sorted by corp id.
	Corps []Corp `json:"corps"`
	// Stream is WECOM_EVENTS as a whole; nil when it could not be read.
	Stream *Stream `json:"stream,omitempty"`
	// Lanes are the durable consumers on WECOM_EVENTS (the apply lanes).
	Lanes       []Lane      `json:"lanes"`
	Jobs        Jobs        `json:"jobs"`
	DeadLetters DeadLetters `json:"dead_letters"`
	// Problems say which figures could not be read (details are in the worker's log).
	Problems []string `json:"problems,omitempty"`
}

// Corp is one corp's figures.
type Corp struct {
	CorpID string `json:"corp_id"`
	// Mirror size: rows of wecom.users, wecom.departments and wecom.tags.
	Users       int64 `json:"users"`
	Departments int64 `json:"departments"`
	Tags        int64 `json:"tags"`
	// LastApplied is the lane position (wecom.lanes); nil before the first event.
	LastApplied *Applied `json:"last_applied"`
	// NewestEvent is the corp's newest message in WECOM_EVENTS; nil when the stream holds
	// none of the corp's events or could not be read (then Lag.State says "unknown").
	NewestEvent *StreamEvent `json:"newest_event"`
	Lag         Lag          `json:"lag"`
	Relay       Relay        `json:"relay"`
	// DeadLetters counts the corp's dead letters not yet replayed.
	DeadLetters int64     `json:"dead_letters"`
	Reconcile   Reconcile `json:"reconcile"`
}

// Applied is the last WECOM_EVENTS sequence applied to a corp's mirror and when.
type Applied struct {
	StreamSeq uint64    `json:"stream_seq"`
	At        time.Time `json:"at"`
}

// StreamEvent is a message of the event stream: its sequence and when it was stored.
type StreamEvent struct {
	StreamSeq uint64    `json:"stream_seq"`
	At        time.Time `json:"at"`
}

// Lag states.
const (
	LagUpToDate = "up_to_date"
	LagBehind   = "behind"
	LagUnknown  = "unknown"
)

// Lag is how far a corp's mirror is behind WECOM_EVENTS.
type Lag struct {
	// State is LagUpToDate, LagBehind or LagUnknown.
	State string `json:"state"`
	// Events is how many of the corp's events are not applied yet (when behind): exact
	// when Exact, otherwise an upper bound.
	Events uint64 `json:"events"`
	Exact  bool   `json:"exact"`
	// Basis says in words how the figure was obtained.
	Basis string `json:"basis"`
}

// Relay is the change relay's position for a corp: how much of the change log
// (wecom.changes) is published to WECOM_CHANGES.
type Relay struct {
	// PublishedSeq is wecom.relay_cursors.published_seq (0 when the relay has no cursor).
	PublishedSeq int64 `json:"published_seq"`
	// MaxSeq is the corp's newest wecom.changes seq (0 when it has none).
	MaxSeq int64 `json:"max_change_seq"`
	// Behind counts the changes above PublishedSeq, counted up to RelayCountCap; Capped
	// says there are more.
	Behind int64 `json:"behind"`
	Capped bool  `json:"behind_capped,omitempty"`
	// UpdatedAt is when the cursor last moved; nil without a cursor.
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

// RelayCountCap bounds the count of unpublished changes, so a relay that is far behind
// does not make the page slow.
const RelayCountCap = 100_000

// Reconcile is a corp's reconciliations (wecom.job_runs of kind "reconcile").
type Reconcile struct {
	// Last is the latest finished (phase "done") one, with the drift it healed.
	Last *JobRun `json:"last,omitempty"`
	// Current is a newer one that has not finished: queued, running, failed or cancelled.
	Current *JobRun `json:"current,omitempty"`
}

// JobRun is a wecom.job_runs row (never its resumable state, which holds export keys).
type JobRun struct {
	ID     int64  `json:"id"`
	CorpID string `json:"corp_id"`
	Kind   string `json:"kind"`
	Phase  string `json:"phase"`
	Done   int64  `json:"done"`
	Total  int64  `json:"total"`
	// Error is the latest error recorded (WeCom's errors are redacted by the client).
	Error   string          `json:"error,omitempty"`
	Summary json.RawMessage `json:"summary,omitempty"`
	// Drift is the changes a finished reconcile or export merged into the mirror.
	Drift     *Drift    `json:"drift,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Finished reports whether the job's phase is final (done, failed or cancelled).
func (j *JobRun) Finished() bool { return slices.Contains(finalPhases, j.Phase) }

var finalPhases = []string{"done", "failed", "cancelled"}

// Drift is what a merge changed in the mirror, by entity, and the total of those changes.
type Drift struct {
	Users       jobs.Counts `json:"users"`
	Departments jobs.Counts `json:"departments"`
	Tags        jobs.Counts `json:"tags"`
	Total       int         `json:"total"`
}

// Jobs are the unfinished (queued, running, retrying) and the recently finished jobs,
// newest first.
type Jobs struct {
	Running []JobRun `json:"running"`
	Recent  []JobRun `json:"recent"`
}

// DeadLetters are the dead letters not yet replayed.
type DeadLetters struct {
	Pending int64        `json:"pending"`
	Latest  []DeadLetter `json:"latest"`
}

// DeadLetter is a dead letter without its payload.
type DeadLetter struct {
	ID        int64     `json:"id"`
	CorpID    string    `json:"corp_id"`
	StreamSeq int64     `json:"stream_seq"`
	Subject   string    `json:"subject"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
}

// Stream is the event stream's state.
type Stream struct {
	Name     string     `json:"name"`
	Messages uint64     `json:"messages"`
	Bytes    uint64     `json:"bytes"`
	FirstSeq uint64     `json:"first_seq"`
	LastSeq  uint64     `json:"last_seq"`
	LastAt   *time.Time `json:"last_at,omitempty"`
}

// Lane is a durable consumer on the event stream.
type Lane struct {
	Name    string   `json:"name"`
	Filters []string `json:"filters"`
	// Pending is NumPending: matching messages not yet delivered.
	Pending uint64 `json:"pending"`
	// AckPending is NumAckPending: delivered, not yet settled.
	AckPending   int    `json:"ack_pending"`
	Redelivered  int    `json:"redelivered"`
	DeliveredSeq uint64 `json:"delivered_stream_seq"`
	AckFloorSeq  uint64 `json:"ack_floor_stream_seq"`
	// Waiting is the number of pull requests waiting (replicas pulling).
	Waiting int `json:"waiting"`
}

// Collect reads every figure. It does not fail: what cannot be read is left out and
// named in Problems (the error itself is logged). It blocks at most Config.Timeout.
func (h *Handler) Collect(ctx context.Context) *Snapshot {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	s := &Snapshot{GeneratedAt: h.cfg.Now().UTC(), Lanes: []Lane{}, Jobs: Jobs{Running: []JobRun{}, Recent: []JobRun{}},
		DeadLetters: DeadLetters{Latest: []DeadLetter{}}}
	c := &collector{h: h, s: s, corps: map[string]*Corp{}}
	for _, id := range h.cfg.Corps {
		c.corp(id)
	}
	c.readDB(ctx)
	c.readStream(ctx)
	s.Corps = make([]Corp, 0, len(c.corps))
	for _, x := range c.corps {
		s.Corps = append(s.Corps, *x)
	}
	slices.SortFunc(s.Corps, func(a, b Corp) int {
		switch {
		case a.CorpID < b.CorpID:
			return -1
		case a.CorpID > b.CorpID:
			return 1
		}
		return 0
	})
	return s
}

// collector accumulates a Snapshot.
type collector struct {
	h     *Handler
	s     *Snapshot
	corps map[string]*Corp
}

// corp returns the figures of id, adding the corp when it is new.
func (c *collector) corp(id string) *Corp {
	x, ok := c.corps[id]
	if !ok {
		x = &Corp{CorpID: id, Lag: Lag{State: LagUnknown, Basis: "the event stream was not read"}}
		c.corps[id] = x
	}
	return x
}

// problem records what could not be read; err goes to the log only.
func (c *collector) problem(ctx context.Context, what string, err error) {
	c.s.Problems = append(c.s.Problems, what+" could not be read (see the worker log)")
	c.h.cfg.Logger.WarnContext(ctx, "status page: reading "+what, slog.String("error", err.Error()))
}
