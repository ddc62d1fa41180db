package wecom

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// TokenKey identifies one access token: WeCom issues an independent token per app secret,
// so the key is the corp id plus the SHA-256 of the secret (never the secret itself).
type TokenKey struct {
	CorpID     string
	SecretHash [sha256.Size]byte
}

// NewTokenKey returns the key of the token for corpID and secret.
func NewTokenKey(corpID, secret string) TokenKey {
	return TokenKey{CorpID: corpID, SecretHash: sha256.Sum256([]byte(secret))}
}

// LogValue keeps the hash out of logs beyond a short prefix.
func (k TokenKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("corp_id", k.CorpID), slog.String("secret_sha256", fmt.Sprintf("%x", k.SecretHash[:4])))
}

// Token is an access token with its expiry and the time it is due for an early refresh.
type Token struct {
	AccessToken string
	ExpiresAt   time.Time
	RefreshAt   time.Time
}

// String never shows the token itself.
func (t Token) String() string {
	return fmt.Sprintf("Token{expires_at=%s}", t.ExpiresAt.Format(time.RFC3339))
}

// LogValue never shows the token itself.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.Time("expires_at", t.ExpiresAt), slog.Time("refresh_at", t.RefreshAt))
}

// usable reports whether t can be used at now instead of fetching a new token, given that
// bad (if not empty) just failed with an invalid-token error.
func (t Token) usable(now time.Time, bad string) bool {
	return t.AccessToken != "" && t.AccessToken != bad && now.Before(t.RefreshAt)
}

// FetchFunc calls gettoken. It returns a *Error for a non-zero errcode.
type FetchFunc func(ctx context.Context) (Token, error)

// TokenStore shares access tokens between clients, possibly across processes. Its one
// operation is a compare-and-refresh, so that many callers seeing the same stale token
// cause one gettoken call, not one each.
type TokenStore interface {
	// Token returns the token stored for key if it is usable: not empty, not equal to bad
	// and not yet due for refresh. Otherwise it calls fetch, at most once among all the
	// callers waiting for key at the time (in every process sharing the store), stores
	// and returns the result. When that fetch fails, every caller that was waiting for it
	// gets its error; none of them calls fetch again. It blocks until the token is known
	// or ctx ends.
	Token(ctx context.Context, key TokenKey, bad string, fetch FetchFunc) (Token, error)
}

// MemoryTokenStore is a TokenStore for one process. The zero value is ready to use.
type MemoryTokenStore struct {
	mu      sync.Mutex
	entries map[TokenKey]*memEntry
	now     func() time.Time
}

// NewMemoryTokenStore returns an empty in-process store.
func NewMemoryTokenStore() *MemoryTokenStore { return &MemoryTokenStore{} }

type memEntry struct {
	sem     chan struct{} // one refresher at a time
	tok     Token
	gen     uint64 // completed fetch attempts
	lastErr error  // result of the last attempt
}

func (s *MemoryTokenStore) entry(key TokenKey) *memEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries == nil {
		s.entries = map[TokenKey]*memEntry{}
	}
	e, ok := s.entries[key]
	if !ok {
		e = &memEntry{sem: make(chan struct{}, 1)}
		s.entries[key] = e
	}
	return e
}

// Token implements TokenStore.
func (s *MemoryTokenStore) Token(ctx context.Context, key TokenKey, bad string, fetch FetchFunc) (Token, error) {
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	e := s.entry(key)
	// Record the generation before waiting: a fetch that completes while we wait is
	// "ours" too, so its failure is returned instead of fetching again.
	s.mu.Lock()
	if e.tok.usable(now(), bad) {
		t := e.tok
		s.mu.Unlock()
		return t, nil
	}
	gen := e.gen
	s.mu.Unlock()
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return Token{}, fmt.Errorf("waiting for access token refresh: %w", ctx.Err())
	}
	defer func() { <-e.sem }()
	s.mu.Lock()
	if e.gen != gen && shareable(e.lastErr) {
		err := e.lastErr
		s.mu.Unlock()
		return Token{}, err
	}
	if e.tok.usable(now(), bad) {
		t := e.tok
		s.mu.Unlock()
		return t, nil
	}
	s.mu.Unlock()
	t, err := fetch(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	e.gen++
	e.lastErr = err
	if err != nil {
		return Token{}, err
	}
	e.tok = t
	return t, nil
}

// tokenSource is a client's view of its token: an in-process cache in front of the store
// (the hot path takes one mutex and makes no store round trip), and an in-process
// single flight, so that many goroutines needing a new token make one store call (one
// transaction for a PGTokenStore) and share its result, failure included.
type tokenSource struct {
	key   TokenKey
	store TokenStore
	fetch FetchFunc
	now   func() time.Time

	sem     chan struct{} // one store call at a time
	mu      sync.Mutex
	cur     Token
	gen     uint64 // completed store calls
	lastErr error
}

func newTokenSource(key TokenKey, store TokenStore, fetch FetchFunc, now func() time.Time) *tokenSource {
	return &tokenSource{key: key, store: store, fetch: fetch, now: now, sem: make(chan struct{}, 1)}
}

// token returns a usable token; bad is the token that just failed with an invalid-token
// error ("" when none did). It blocks while another goroutine refreshes.
func (ts *tokenSource) token(ctx context.Context, bad string) (Token, error) {
	ts.mu.Lock()
	cur, gen := ts.cur, ts.gen
	ts.mu.Unlock()
	if cur.usable(ts.now(), bad) {
		return cur, nil
	}
	select {
	case ts.sem <- struct{}{}:
	case <-ctx.Done():
		return Token{}, fmt.Errorf("waiting for access token refresh: %w", ctx.Err())
	}
	defer func() { <-ts.sem }()
	ts.mu.Lock()
	cur, lastErr, done := ts.cur, ts.lastErr, ts.gen != gen
	ts.mu.Unlock()
	if done && shareable(lastErr) {
		return Token{}, lastErr // the refresh we waited for was refused: do not try again
	}
	if cur.usable(ts.now(), bad) {
		return cur, nil
	}
	t, err := ts.store.Token(ctx, ts.key, bad, ts.fetch)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.gen++
	ts.lastErr = err
	if err != nil {
		return Token{}, err
	}
	ts.cur = t
	return t, nil
}

// refreshPlan computes when a token fetched at now, valid for expiresIn, is due for an
// early refresh: early (5 minutes) or 10% of its lifetime before expiry, whichever margin
// is smaller. The proportional cap matters when gettoken hands back the same token with
// its remaining lifetime (older WeCom rule, and the emulator): the next refresh is then
// still well ahead, not immediate.
func refreshPlan(now time.Time, expiresIn time.Duration, early time.Duration) Token {
	margin := min(early, expiresIn/10)
	return Token{ExpiresAt: now.Add(expiresIn), RefreshAt: now.Add(expiresIn - margin)}
}

// shareable reports whether a failed refresh should be reported to the callers that
// waited for it: WeCom refused it (e.g. 40001 bad secret), so trying again now would be
// refused too. A transport error or the leader's own cancelled context is not shared:
// the next waiter tries itself.
func shareable(err error) bool {
	var we *Error
	return err != nil && errors.As(err, &we)
}
