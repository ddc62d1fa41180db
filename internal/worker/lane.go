package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wecomsync/wecomsync/internal/callback"
)

// Lane is one ordered apply lane: a durable pull consumer on WECOM_EVENTS named Name
// that receives the subjects in Filters. The default lane takes every corp;
// PartitionLanes spreads corps over several lanes, each filtering "wecom.events.<corp>.>"
// for its corps. No corp may be in two lanes of one deployment.
type Lane struct {
	// Name is the durable consumer name; replicas running the same lane share it.
	Name string
	// Filters are the subjects the lane receives; empty means the whole stream.
	Filters []string
}

// DefaultLane receives every corp's events.
var DefaultLane = Lane{Name: "wecomsync-mirror", Filters: []string{callback.StreamSubjects}}

// CorpLane returns a lane that receives only corpID's events, for partitioned deployments.
func CorpLane(corpID string) Lane {
	return Lane{Name: "wecomsync-mirror-" + corpID, Filters: []string{"wecom.events." + corpID + ".>"}}
}

// PriorityGroup is the priority group every lane consumer declares; pullers pass it with
// each pull so the server can pin one of them.
const PriorityGroup = "mirror"

// Options tune a lane's consumer and the Consumer that runs it. Use DefaultOptions and
// change fields; Validate says what is wrong in plain sentences.
type Options struct {
	// BatchSize is the most messages applied in one go; the consumer's MaxAckPending is
	// twice that (one batch applied while the next is fetched).
	BatchSize int
	// MaxWait is how long a fetch waits for BatchSize messages before applying what came.
	MaxWait time.Duration
	// AckWait is how long the server waits for an ack before redelivering; a Consumer
	// sends progress acks while it holds messages longer than a third of it.
	AckWait time.Duration
	// PinnedTTL is how long the pinned replica may go without pulling before the server
	// pins another one (the failover time, plus AckWait for what the dead one held).
	PinnedTTL time.Duration
	// MaxDeliver is the consumer's delivery limit; -1 is unlimited. Poison events are
	// dead-lettered by the mirror and terminated, so the broker never needs to give up on
	// one; a positive limit drops an event after that many transient failures.
	MaxDeliver int
	// Backoff is the NakWithDelay schedule for transient errors, indexed by the number of
	// deliveries so far (the last entry repeats).
	Backoff []time.Duration
	// ShutdownGrace bounds how long the in-flight batch may take to finish once the
	// Consumer's context ends.
	ShutdownGrace time.Duration
	// ApplyTimeout bounds one batch's apply (lookups included). A batch that takes longer
	// is cancelled and retried: a hung apply keeps its messages alive with progress acks,
	// so without a bound it would stall the lane for good.
	ApplyTimeout time.Duration
}

// DefaultOptions are the defaults cmd/worker uses.
var DefaultOptions = Options{
	BatchSize:     4000,
	MaxWait:       100 * time.Millisecond,
	AckWait:       30 * time.Second,
	PinnedTTL:     10 * time.Second,
	MaxDeliver:    -1,
	Backoff:       []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second},
	ShutdownGrace: 20 * time.Second,
	ApplyTimeout:  2 * time.Minute,
}

// Validate returns an error naming the first option out of range.
func (o Options) Validate() error {
	switch {
	case o.BatchSize < 1 || o.BatchSize > 10000:
		return fmt.Errorf("batch size must be 1 to 10000, got %d", o.BatchSize)
	case o.MaxWait < time.Millisecond || o.MaxWait > 30*time.Second:
		return fmt.Errorf("max wait must be between 1ms and 30s, got %s", o.MaxWait)
	case o.AckWait < time.Second:
		return fmt.Errorf("ack wait must be at least 1s, got %s", o.AckWait)
	case o.PinnedTTL < 3*o.MaxWait:
		// The pinned replica pulls at least every MaxWait while idle; a TTL close to
		// that would unpin a healthy replica.
		return fmt.Errorf("pinned TTL must be at least three times the max wait (%s), got %s", 3*o.MaxWait, o.PinnedTTL)
	case o.MaxDeliver == 0 || o.MaxDeliver < -1:
		return fmt.Errorf("max deliver must be -1 (unlimited) or positive, got %d", o.MaxDeliver)
	case len(o.Backoff) == 0:
		return errors.New("the retry backoff needs at least one duration")
	case o.ShutdownGrace <= 0:
		return fmt.Errorf("shutdown grace must be positive, got %s", o.ShutdownGrace)
	case o.ApplyTimeout <= 0:
		return fmt.Errorf("apply timeout must be positive, got %s", o.ApplyTimeout)
	}
	for _, d := range o.Backoff {
		if d <= 0 {
			return fmt.Errorf("retry backoff durations must be positive, got %s", d)
		}
		if d > o.AckWait {
			// While retried messages are away the lane waits for them; past ack wait
			// plus pinned TTL it assumes they are lost elsewhere and starts over.
			return fmt.Errorf("retry backoff durations must not exceed the ack wait (%s), got %s", o.AckWait, d)
		}
	}
	return nil
}

// ConsumerConfig returns the durable consumer definition of lane l.
func ConsumerConfig(l Lane, o Options) jetstream.ConsumerConfig {
	filters := l.Filters
	if len(filters) == 0 {
		filters = []string{callback.StreamSubjects}
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       l.Name,
		Description:   "wecomsync worker apply lane (" + strings.Join(filters, ", ") + ")",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    o.MaxDeliver,
		// Bounding what is outstanding (the batch applied and the one fetched behind it)
		// bounds what a replica has to collect before it may apply (see the package comment).
		MaxAckPending:  2 * o.BatchSize,
		MaxWaiting:     512,
		ReplayPolicy:   jetstream.ReplayInstantPolicy,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PinnedTTL:      o.PinnedTTL,
		PriorityGroups: []string{PriorityGroup},
	}
	if len(filters) == 1 {
		cfg.FilterSubject = filters[0]
	} else {
		cfg.FilterSubjects = filters
	}
	return cfg
}

// ConsumerManager is the part of jetstream.JetStream EnsureConsumer needs.
type ConsumerManager interface {
	CreateOrUpdateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error)
}

// EnsureConsumer creates lane l's durable consumer on WECOM_EVENTS, or updates it to o,
// and returns it. It blocks until the server answers or ctx ends.
func EnsureConsumer(ctx context.Context, js ConsumerManager, l Lane, o Options) (jetstream.Consumer, error) {
	if l.Name == "" {
		return nil, errors.New("a lane needs a consumer name")
	}
	c, err := js.CreateOrUpdateConsumer(ctx, callback.StreamName, ConsumerConfig(l, o))
	if err != nil {
		return nil, fmt.Errorf("creating or updating consumer %s on %s: %w", l.Name, callback.StreamName, err)
	}
	return c, nil
}
