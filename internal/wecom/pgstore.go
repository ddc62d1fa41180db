package wecom

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TxBeginner is what PGTokenStore needs from Postgres: a *pgxpool.Pool satisfies it.
type TxBeginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// PGTokenStore shares access tokens between processes through the table
// wecom.access_tokens (migration 00002). A refresh runs inside a transaction holding the
// key's row lock (SELECT ... FOR UPDATE) while it calls gettoken, so concurrent processes
// wait for that one result instead of each calling gettoken. The secret is never stored,
// only its SHA-256 (the key); the access token is stored as is, since other processes
// need it.
type PGTokenStore struct {
	db TxBeginner
}

// NewPGTokenStore returns a store on db (usually a *pgxpool.Pool).
func NewPGTokenStore(db TxBeginner) *PGTokenStore { return &PGTokenStore{db: db} }

// Token implements TokenStore. Besides the rules of TokenStore, a failed gettoken is
// recorded in the row (code and message) and returned to every process whose wait began
// before the failure.
func (s *PGTokenStore) Token(ctx context.Context, key TokenKey, bad string, fetch FetchFunc) (Token, error) {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return Token{}, fmt.Errorf("beginning access token transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `INSERT INTO wecom.access_tokens (corp_id, secret_sha256) VALUES ($1, $2)
		ON CONFLICT DO NOTHING`, key.CorpID, key.SecretHash[:]); err != nil {
		return Token{}, fmt.Errorf("creating access token row: %w", err)
	}
	// now() is the transaction's start, i.e. before we waited for the lock: a failure
	// recorded after it happened while we waited.
	var (
		t        Token
		now      time.Time
		failedAt *time.Time
		failCode *int32
		failMsg  *string
		failedIn bool
	)
	err = tx.QueryRow(ctx, `SELECT access_token, expires_at, refresh_at, clock_timestamp(), failed_at, fail_code, fail_msg,
		       coalesce(failed_at >= now(), false)
		FROM wecom.access_tokens WHERE corp_id = $1 AND secret_sha256 = $2 FOR UPDATE`,
		key.CorpID, key.SecretHash[:]).Scan(&t.AccessToken, &t.ExpiresAt, &t.RefreshAt, &now, &failedAt, &failCode, &failMsg, &failedIn)
	if err != nil {
		return Token{}, fmt.Errorf("locking access token row: %w", err)
	}
	if failedIn && failCode != nil {
		msg := ""
		if failMsg != nil {
			msg = *failMsg
		}
		return Token{}, &Error{Code: int(*failCode), Msg: msg, API: "gettoken"}
	}
	// Compare with our own clock too: the row's times were computed by whichever process
	// fetched the token, from its own clock.
	if t.usable(now, bad) && t.usable(time.Now(), bad) {
		return t, nil
	}
	nt, ferr := fetch(ctx)
	if ferr != nil {
		var we *Error
		if !errors.As(ferr, &we) {
			// Transport trouble or ctx: nothing to share; the next waiter tries itself.
			return Token{}, ferr
		}
		if _, err := tx.Exec(ctx, `UPDATE wecom.access_tokens SET failed_at = clock_timestamp(), fail_code = $3, fail_msg = $4
			WHERE corp_id = $1 AND secret_sha256 = $2`, key.CorpID, key.SecretHash[:], we.Code, we.Msg); err != nil {
			return Token{}, errors.Join(ferr, fmt.Errorf("recording gettoken failure: %w", err))
		}
		if err := tx.Commit(ctx); err != nil {
			return Token{}, errors.Join(ferr, fmt.Errorf("recording gettoken failure: %w", err))
		}
		return Token{}, ferr
	}
	if _, err := tx.Exec(ctx, `UPDATE wecom.access_tokens SET access_token = $3, expires_at = $4, refresh_at = $5,
		fetched_at = clock_timestamp(), failed_at = NULL, fail_code = NULL, fail_msg = NULL
		WHERE corp_id = $1 AND secret_sha256 = $2`, key.CorpID, key.SecretHash[:], nt.AccessToken, nt.ExpiresAt, nt.RefreshAt); err != nil {
		return Token{}, fmt.Errorf("storing access token: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Token{}, fmt.Errorf("storing access token: %w", err)
	}
	return nt, nil
}
