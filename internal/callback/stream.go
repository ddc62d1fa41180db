package callback

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamName is the JetStream stream every callback is stored in.
const StreamName = "WECOM_EVENTS"

// StreamSubjects are the subjects StreamName captures.
const StreamSubjects = "wecom.events.>"

// StreamOptions tune the WECOM_EVENTS stream.
type StreamOptions struct {
	// DuplicateWindow is JetStream's Nats-Msg-Id dedup window. It must cover WeCom's
	// retries (a 5-second timeout, three retries); the worker also dedups in Postgres.
	DuplicateWindow time.Duration
	// MaxAge is how long events are kept; limits-based retention lets several consumers
	// (the mirror worker and the users' own) read the same stream.
	MaxAge time.Duration
	// Replicas is 1 on a single server, 3 on a JetStream cluster.
	Replicas int
}

// DefaultStreamOptions are the defaults the callback receiver uses.
var DefaultStreamOptions = StreamOptions{DuplicateWindow: 2 * time.Minute, MaxAge: 7 * 24 * time.Hour, Replicas: 1}

// StreamConfig returns the WECOM_EVENTS stream definition for o.
func StreamConfig(o StreamOptions) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "WeCom callbacks, verified and decrypted by wecomsync",
		Subjects:    []string{StreamSubjects},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      o.MaxAge,
		Duplicates:  o.DuplicateWindow,
		Replicas:    o.Replicas,
	}
}

// StreamManager is the part of jetstream.JetStream that EnsureStream needs.
type StreamManager interface {
	CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error)
}

// EnsureStream creates the WECOM_EVENTS stream or updates it to o. It blocks until the
// server answers or ctx ends.
func EnsureStream(ctx context.Context, js StreamManager, o StreamOptions) error {
	if o.DuplicateWindow <= 0 || o.MaxAge <= 0 || o.Replicas < 1 {
		return errors.New("stream options need a positive duplicate window, max age and replica count")
	}
	if _, err := js.CreateOrUpdateStream(ctx, StreamConfig(o)); err != nil {
		return fmt.Errorf("creating or updating stream %s: %w", StreamName, err)
	}
	return nil
}
