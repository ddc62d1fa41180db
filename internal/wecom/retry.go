package wecom

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Retry rules (what do does with a failed attempt):
//
//   - 40014/42001/42007/42009 (token invalid or expired): the token is refreshed through
//     the TokenStore as a compare-and-swap (only if the failing token is still the current
//     one, so 50 goroutines seeing 42001 cause one gettoken) and the call is repeated, at
//     most twice per call. Not counted as an attempt.
//   - 45009 (frequency limit): the API is held back for Config.FreqLimitBlock for every
//     caller sharing the Limits, then the call is repeated. If the caller's deadline ends
//     before the block does, the 45009 *Error is returned at once. Safe for writes: WeCom
//     refused the call before doing anything.
//   - 45033 (concurrency limit): jittered exponential backoff, then repeated; safe for
//     writes for the same reason.
//   - -1 (system busy), transport errors, timeouts, cut or garbled answers, HTTP 5xx:
//     repeated after backoff for reads and for writes whose repetition is harmless
//     (retryIdempotent). A write with other effects is repeated only if the request was
//     never fully sent; otherwise its outcome is unknown and, where the endpoint has a
//     resolver, the client first re-reads (e.g. user/get after user/create) to decide
//     whether it took effect. Without a resolver, ErrUnknownOutcome is returned.
//   - Every other errcode is returned as a *Error without retrying.
//
// Attempts are bounded by Config.MaxAttempts and by the caller's context.

// retryMode says how a failed attempt of an endpoint may be repeated.
type retryMode int

const (
	// retryIdempotent: repeating the call has no further effect (reads; set-style writes).
	retryIdempotent retryMode = iota
	// retryResolve: a write that must not be repeated blindly once sent; the call's
	// resolver decides after an unknown outcome.
	retryResolve
)

// endpoint is one WeCom API.
type endpoint struct {
	api      string // path after /cgi-bin/
	method   string
	mode     retryMode
	noToken  bool  // gettoken itself
	maxBytes int64 // answer limit; 0 = Config.MaxResponseBytes
}

func ep(api, method string, mode retryMode) *endpoint {
	return &endpoint{api: api, method: method, mode: mode}
}

var epGetToken = &endpoint{api: "gettoken", method: http.MethodGet, noToken: true, maxBytes: 64 << 10}

// call is one invocation of an endpoint.
type call struct {
	ep      *endpoint
	query   url.Values
	body    any    // JSON body (POST)
	raw     []byte // raw body (multipart) instead of body
	rawType string
	// resolve, for retryResolve endpoints, decides after an attempt with an unknown
	// outcome whether the write took effect (done: the call succeeded; it fills the
	// answer itself if needed) or not (the write is sent again).
	resolve func(ctx context.Context) (done bool, err error)
	// goneOK: after an unknown outcome, an ErrNotFound answer to the repeated call means
	// the earlier attempt did it (deletes).
	goneOK bool
}

// do runs cl with the retry rules above, decoding the final answer into out.
func (c *Client) do(ctx context.Context, cl *call, out answer) error {
	var (
		bad        string // token that just failed
		tokenRetry int
		attempts   int
		unknown    bool // an earlier attempt may have taken effect
		lastErr    error
	)
	api := cl.ep.api
	for {
		if err := ctx.Err(); err != nil {
			return joinLast(fmt.Errorf("calling %s: %w", api, err), lastErr)
		}
		if !cl.ep.noToken {
			if err := c.lim.wait(ctx, c.cfg.CorpID, api, c.cfg.Now()); err != nil {
				return joinLast(err, lastErr)
			}
		}
		tok := ""
		if !cl.ep.noToken {
			t, err := c.tokens.token(ctx, bad)
			if err != nil {
				return err
			}
			tok = t.AccessToken
		}
		attempts++
		start := time.Now()
		res := c.attempt(ctx, cl, tok, out)
		c.m.call(c.cfg.CorpID, api, res.code, res.transport, time.Since(start))
		if res.err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return joinLast(fmt.Errorf("calling %s: %w", api, ctx.Err()), res.err)
		}
		lastErr = res.err
		if res.replayed {
			unknown = true
		}
		var we *Error
		isAPI := errors.As(res.err, &we)
		switch {
		case isAPI && unknown && cl.goneOK && errors.Is(we, ErrNotFound):
			// The earlier attempt whose answer was lost did the delete.
			return nil
		case isAPI && !cl.ep.noToken && isTokenCode(we.Code):
			if tokenRetry >= 2 {
				return res.err
			}
			tokenRetry++
			attempts--
			bad = tok
			c.m.retry(c.cfg.CorpID, api, "token")
			c.log.DebugContext(ctx, "wecom token rejected, refreshing", "api", api, "errcode", we.Code)
			continue
		case isAPI && we.Code == 45009:
			c.lim.block(c.cfg.CorpID, api, c.cfg.Now().Add(c.cfg.FreqLimitBlock))
			if attempts >= c.cfg.MaxAttempts {
				return res.err
			}
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < c.cfg.FreqLimitBlock {
				return res.err
			}
			c.m.retry(c.cfg.CorpID, api, "freq_limit")
			c.log.WarnContext(ctx, "wecom frequency limit, holding the api back", "api", api, "block", c.cfg.FreqLimitBlock)
			continue // lim.wait sleeps out the block
		case isAPI && we.Code == 45033:
			// Refused before doing anything: safe to repeat even for writes.
		case isAPI && we.Code == -1, !isAPI && res.transport:
			if res.sent || isAPI {
				unknown = true
			}
			if cl.ep.mode == retryResolve && (res.sent || isAPI) {
				done, err := c.resolveUnknown(ctx, cl, res.err)
				if err != nil {
					return err
				}
				if done {
					return nil
				}
			}
		default:
			return res.err
		}
		if attempts >= c.cfg.MaxAttempts {
			return res.err
		}
		reason := "transport"
		if isAPI {
			reason = fmt.Sprint(we.Code)
		}
		d := c.backoff(attempts)
		c.m.retry(c.cfg.CorpID, api, reason)
		c.log.DebugContext(ctx, "wecom call failed, retrying", "api", api, "reason", reason, "attempt", attempts, "delay", d, "err", res.err)
		if !sleep(ctx, d) {
			return res.err
		}
	}
}

// resolveUnknown runs the call's resolver after an attempt whose outcome is unknown.
func (c *Client) resolveUnknown(ctx context.Context, cl *call, cause error) (bool, error) {
	if cl.resolve == nil {
		return false, fmt.Errorf("%w: %w", ErrUnknownOutcome, cause)
	}
	c.m.retry(c.cfg.CorpID, cl.ep.api, "resolve")
	done, err := cl.resolve(ctx)
	var se settled
	if errors.As(err, &se) {
		return false, se.err
	}
	if err != nil {
		return false, fmt.Errorf("%w: re-reading after %w: %w", ErrUnknownOutcome, cause, err)
	}
	c.log.InfoContext(ctx, "wecom write outcome resolved by re-reading", "api", cl.ep.api, "took_effect", done)
	return done, nil
}

func isTokenCode(code int) bool {
	switch code {
	case 40014, 42001, 42007, 42009:
		return true
	}
	return false
}

func joinLast(err, last error) error {
	if last == nil {
		return err
	}
	return errors.Join(err, last)
}

// settled is a resolver's definitive answer: the re-read shows the write could not have
// succeeded (e.g. the userid belongs to somebody else), so err is the call's result.
type settled struct{ err error }

func (s settled) Error() string { return s.err.Error() }

// existsElsewhere is the answer to a create whose re-read found a different entity under
// the key: the create would have failed with code.
func existsElsewhere(api string, code int, what string) error {
	return settled{&Error{Code: code, API: api, Msg: what + " exists with other attributes (found by re-reading after a lost answer)"}}
}
