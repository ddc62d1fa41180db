package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wecomsync/wecomsync/internal/mirror"
)

// action is how a message is settled with JetStream.
type action int

const (
	actAck  action = iota // done: applied, duplicate or ignored
	actTerm               // poison: never redeliver (the mirror holds the dead letter)
	actNak                // transient: redeliver after delay
)

// settlement is the decision for one message.
type settlement struct {
	act    action
	reason string        // for actTerm
	delay  time.Duration // for actNak
}

// errPanic marks a batch error that was a recovered panic.
var errPanic = errors.New("panic while applying")

// decide is the one place that maps an outcome to a settlement (STYLE rule 6). batchErr
// is the error of the whole apply (nothing was committed: every item is retried with a
// backoff chosen by how often the message was delivered); otherwise res is the item's
// result, nil when the applier returned none for it (a bug: retried, not lost).
func decide(res *mirror.Result, batchErr error, delivered uint64, backoff []time.Duration) settlement {
	if batchErr != nil || res == nil {
		i := int(delivered) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(backoff) {
			i = len(backoff) - 1
		}
		return settlement{act: actNak, delay: backoff[i]}
	}
	switch res.Status {
	case mirror.Poison:
		reason := res.Reason
		if reason == "" {
			reason = "poison event"
		}
		return settlement{act: actTerm, reason: reason}
	case mirror.Applied, mirror.Duplicate, mirror.Ignored:
		return settlement{act: actAck}
	default:
		// An outcome this runtime does not know: keep the message rather than guess.
		return settlement{act: actNak, delay: backoff[len(backoff)-1]}
	}
}

// settle tells JetStream s for m. With sync set an ack waits for the server's
// confirmation, so the acks sent before it on the same connection are processed too
// (the consumer's NumAckPending is then current for the ordering gate).
func settle(ctx context.Context, m jetstream.Msg, s settlement, sync bool) error {
	var err error
	switch s.act {
	case actAck:
		if sync {
			err = m.DoubleAck(ctx)
		} else {
			err = m.Ack()
		}
	case actTerm:
		err = m.TermWithReason(s.reason)
	case actNak:
		err = m.NakWithDelay(s.delay)
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		return fmt.Errorf("settling message %s: %w", m.Subject(), err)
	}
	return nil
}
