package emulator

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

type tokenInfo struct {
	token   string
	kind    SecretKind
	expires time.Time
	dead    bool // invalidated early: answers 40014
}

// tokenStore issues access tokens per (corpid, secret): the same token is returned while
// it is valid (older WeCom docs' rule), a new one after expiry.
type tokenStore struct {
	mu     sync.RWMutex
	ttl    time.Duration
	tokens map[string]*tokenInfo
	bySec  map[SecretKind]*tokenInfo
}

func newTokenStore(ttl time.Duration) *tokenStore {
	return &tokenStore{ttl: ttl, tokens: map[string]*tokenInfo{}, bySec: map[SecretKind]*tokenInfo{}}
}

func (ts *tokenStore) issue(kind SecretKind, now time.Time) *tokenInfo {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t, ok := ts.bySec[kind]; ok && !t.dead && now.Before(t.expires) {
		return t
	}
	b := make([]byte, 96)
	_, _ = rand.Read(b)
	t := &tokenInfo{token: base64.RawURLEncoding.EncodeToString(b), kind: kind, expires: now.Add(ts.ttl)}
	ts.tokens[t.token] = t
	ts.bySec[kind] = t
	return t
}

// check returns the secret kind of a query-string token: 41001 missing, 40014 unknown or
// invalidated, 42001 expired.
func (ts *tokenStore) check(token string, now time.Time) (SecretKind, error) {
	if token == "" {
		return 0, apiErr(CodeMissingToken, "access_token missing")
	}
	ts.mu.RLock()
	t, ok := ts.tokens[token]
	ts.mu.RUnlock()
	switch {
	case !ok || t.dead:
		return 0, apiErr(CodeInvalidToken, "invalid access_token")
	case !now.Before(t.expires):
		return 0, apiErr(CodeTokenExpired, "access_token expired")
	}
	return t.kind, nil
}

// expireAll ends every issued token early: expired ones answer 42001, invalidated ones
// 40014. The next gettoken issues fresh tokens.
func (ts *tokenStore) expireAll(now time.Time, invalidate bool) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	n := 0
	for _, t := range ts.tokens {
		if t.dead || !now.Before(t.expires) {
			continue
		}
		n++
		if invalidate {
			t.dead = true
		} else {
			t.expires = now
		}
	}
	clear(ts.bySec)
	return n
}

// ExpireTokens ends every issued access token now (42001 on use), or invalidates them
// (40014) when invalidate; it returns how many were live.
func (s *Server) ExpireTokens(invalidate bool) int { return s.tokens.expireAll(s.now(), invalidate) }
