package mirror

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// LanePositions returns the last applied WECOM_EVENTS stream sequence of each of corpIDs
// that has one (wecom.lanes); a corp the mirror never applied an event for is absent.
// The worker starts a newly created apply lane just after the lowest position of its
// corps, since every event at or below a corp's position is already in its mirror.
func (s *Store) LanePositions(ctx context.Context, corpIDs []string) (map[string]uint64, error) {
	rows, err := s.pool.Query(ctx, `SELECT corp_id, last_stream_seq FROM wecom.lanes WHERE corp_id = ANY($1)`, corpIDs)
	if err != nil {
		return nil, fmt.Errorf("reading the lane positions of %d corps: %w", len(corpIDs), err)
	}
	out := make(map[string]uint64, len(corpIDs))
	var corp string
	var seq int64
	_, err = pgx.ForEachRow(rows, []any{&corp, &seq}, func() error {
		out[corp] = uint64(seq)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the lane positions of %d corps: %w", len(corpIDs), err)
	}
	return out, nil
}

// LanePosition returns corpID's last applied WECOM_EVENTS stream sequence, 0 when the
// mirror never applied an event of it.
func (s *Store) LanePosition(ctx context.Context, corpID string) (uint64, error) {
	var seq int64
	err := s.pool.QueryRow(ctx, `SELECT last_stream_seq FROM wecom.lanes WHERE corp_id = $1`, corpID).Scan(&seq)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("reading the lane position of %s: %w", corpID, err)
	}
	return uint64(seq), nil
}

// AdvanceLane raises corpID's lane position from `from` to `to`, as if every event up to
// stream sequence `to` had been applied, and reports whether it did. It is for a full
// sync that read the corp's whole directory after the stream held `to` messages: their
// effects are in the snapshot, so replaying them would only show older values for a
// while. It never lowers the position, and it changes nothing (returning false) unless
// the position is still `from` (0 for a corp without one): an event applied after the
// caller read `from` (a lane of another replica, say) may have rewritten a value with an
// older one, and only the events after it restore the newer value, so they must not be
// skipped. It takes the corp's advisory lock, like every writer of the corp's mirror, and
// blocks until the transaction ends.
func (s *Store) AdvanceLane(ctx context.Context, corpID string, from, to uint64) (bool, error) {
	if to <= from {
		return false, nil
	}
	var advanced bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, lockKey(corpID)); err != nil {
			return err
		}
		var tag pgconn.CommandTag
		var err error
		if from == 0 {
			// No row yet, or a row still at 0.
			tag, err = tx.Exec(ctx, `INSERT INTO wecom.lanes (corp_id, last_stream_seq) VALUES ($1, $2)
				ON CONFLICT (corp_id) DO UPDATE SET last_stream_seq = excluded.last_stream_seq, updated_at = now()
				WHERE wecom.lanes.last_stream_seq = 0`, corpID, int64(to))
		} else {
			tag, err = tx.Exec(ctx, `UPDATE wecom.lanes SET last_stream_seq = $3, updated_at = now()
				WHERE corp_id = $1 AND last_stream_seq = $2`, corpID, int64(from), int64(to))
		}
		if err != nil {
			return err
		}
		advanced = tag.RowsAffected() == 1
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("advancing the lane position of %s to %d: %w", corpID, to, err)
	}
	return advanced, nil
}
