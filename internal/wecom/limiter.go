package wecom

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits paces calls per (corp id, API) with a token bucket and holds an API back for the
// block window after WeCom answered 45009. Clients of the same corp in one process should
// share one Limits (Config.Limits) so that together they stay under WeCom's per-corp
// limits; across processes each has its own budget, so divide PerMinute by the number of
// processes. The zero value is not usable; call NewLimits.
type Limits struct {
	perMinute int
	burst     int

	mu   sync.Mutex
	apis map[limitKey]*apiLimit
}

type limitKey struct{ corp, api string }

type apiLimit struct {
	lim          *rate.Limiter
	blockedUntil time.Time // guarded by Limits.mu
}

// NewLimits returns limits of perMinute calls per minute per corp per API (WeCom's
// documented limit is 10,000, API-FACTS §7.2; <= 0 means unlimited) with bursts of up to
// burst calls (<= 0 means perMinute/60, at least 1).
func NewLimits(perMinute, burst int) *Limits {
	if burst <= 0 {
		burst = max(1, perMinute/60)
	}
	return &Limits{perMinute: perMinute, burst: burst, apis: map[limitKey]*apiLimit{}}
}

func (l *Limits) get(corp, api string) *apiLimit {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := limitKey{corp, api}
	a, ok := l.apis[k]
	if !ok {
		lim := rate.NewLimiter(rate.Inf, 0)
		if l.perMinute > 0 {
			lim = rate.NewLimiter(rate.Limit(float64(l.perMinute)/60), l.burst)
		}
		a = &apiLimit{lim: lim}
		l.apis[k] = a
	}
	return a
}

// wait blocks until a call to api may be made: after any 45009 block window and when the
// token bucket allows. It returns an error wrapping ErrRateLimited at once when ctx's
// deadline would pass before that.
func (l *Limits) wait(ctx context.Context, corp, api string, now time.Time) error {
	a := l.get(corp, api)
	l.mu.Lock()
	until := a.blockedUntil
	l.mu.Unlock()
	if d := until.Sub(now); d > 0 {
		if dl, ok := ctx.Deadline(); ok && dl.Before(until) {
			return fmt.Errorf("waiting %s for the rate limit block on %s: deadline too close: %w", d.Round(time.Millisecond), api, ErrRateLimited)
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for the rate limit block on %s: %w", api, ctx.Err())
		}
	}
	if err := a.lim.Wait(ctx); err != nil {
		return fmt.Errorf("waiting for the rate limiter of %s: %w (%w)", api, err, ErrRateLimited)
	}
	return nil
}

// block holds api back until until (after a 45009); a later block never shortens an
// earlier one.
func (l *Limits) block(corp, api string, until time.Time) {
	a := l.get(corp, api)
	l.mu.Lock()
	if until.After(a.blockedUntil) {
		a.blockedUntil = until
	}
	l.mu.Unlock()
}
