package wecom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults applied by New for zero Config fields.
const (
	DefaultBaseURL            = "https://qyapi.weixin.qq.com"
	DefaultCallTimeout        = 30 * time.Second
	DefaultMaxAttempts        = 5
	DefaultRetryBaseDelay     = 200 * time.Millisecond
	DefaultRetryMaxDelay      = 10 * time.Second
	DefaultFreqLimitBlock     = 60 * time.Second // per-minute limits block 60 s (API-FACTS §7.2)
	DefaultRateLimitPerMinute = 10000            // per corp per API (API-FACTS §7.2)
	DefaultMaxResponseBytes   = 32 << 20
	DefaultTokenEarlyRefresh  = 5 * time.Minute
	DefaultDownloadAttempts   = 6
)

// Config configures a Client. Zero values mean the defaults above.
type Config struct {
	// BaseURL is WeCom's origin; the emulator's URL in tests. Default DefaultBaseURL.
	BaseURL string
	// CorpID and Secret are the credentials (for the worker: the contacts-sync secret).
	// Required. The secret is only ever sent to gettoken.
	CorpID string
	Secret string

	// HTTPClient makes the requests. Default: a keep-alive client without a global
	// timeout (CallTimeout bounds each attempt).
	HTTPClient *http.Client
	// Logger receives retry and token logs (never a token or secret). Default: discard.
	Logger *slog.Logger
	// Registerer, when set, gets the client's Prometheus collectors (shared between the
	// clients registering on it).
	Registerer prometheus.Registerer
	// Now is the clock used for token expiry and rate-limit blocks. Default time.Now.
	Now func() time.Time

	// Store shares tokens; nil means an in-process MemoryTokenStore. The worker passes a
	// PGTokenStore so that all its processes share one token per (corp, secret).
	Store TokenStore
	// TokenEarlyRefresh: a token is refreshed this long before it expires, or 10% of its
	// lifetime before, whichever is shorter. Default 5 minutes.
	TokenEarlyRefresh time.Duration

	// Limits paces calls per corp per API; share one between the clients of a process.
	// Nil means a private NewLimits(RateLimitPerMinute, 0).
	Limits *Limits
	// RateLimitPerMinute is used when Limits is nil. Default 10000; negative = unlimited.
	RateLimitPerMinute int
	// FreqLimitBlock is how long an API is held back after WeCom answered 45009. Default
	// 60 s (the per-minute window); tests use a few milliseconds.
	FreqLimitBlock time.Duration

	// CallTimeout bounds one attempt of one call (request and answer). Default 30 s.
	CallTimeout time.Duration
	// MaxAttempts bounds the attempts of one call, retries included (token refreshes
	// are not counted). Default 5; 1 disables retries.
	MaxAttempts int
	// RetryBaseDelay and RetryMaxDelay shape the jittered exponential backoff between
	// attempts. Defaults 200 ms and 10 s.
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
	// MaxResponseBytes bounds an API answer (a full user/list can be large). Default 32 MiB.
	MaxResponseBytes int64

	// DownloadAttempts bounds the requests spent on one export block (the first one plus
	// Range resumes). Default 6.
	DownloadAttempts int
}

func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: 0, ForceAttemptHTTP2: true,
		}}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Store == nil {
		c.Store = &MemoryTokenStore{now: c.Now}
	}
	if c.TokenEarlyRefresh == 0 {
		c.TokenEarlyRefresh = DefaultTokenEarlyRefresh
	}
	if c.RateLimitPerMinute == 0 {
		c.RateLimitPerMinute = DefaultRateLimitPerMinute
	}
	if c.Limits == nil {
		c.Limits = NewLimits(c.RateLimitPerMinute, 0)
	}
	if c.FreqLimitBlock == 0 {
		c.FreqLimitBlock = DefaultFreqLimitBlock
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryBaseDelay == 0 {
		c.RetryBaseDelay = DefaultRetryBaseDelay
	}
	if c.RetryMaxDelay == 0 {
		c.RetryMaxDelay = DefaultRetryMaxDelay
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if c.DownloadAttempts == 0 {
		c.DownloadAttempts = DefaultDownloadAttempts
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.CorpID == "":
		return errors.New("wecom corp id must be set")
	case c.Secret == "":
		return errors.New("wecom secret must be set")
	case c.MaxAttempts < 1:
		return fmt.Errorf("wecom max attempts must be at least 1, got %d", c.MaxAttempts)
	case c.CallTimeout < 0 || c.RetryBaseDelay < 0 || c.RetryMaxDelay < 0 || c.FreqLimitBlock < 0 || c.TokenEarlyRefresh < 0:
		return errors.New("wecom timeouts and delays must not be negative")
	case c.MaxResponseBytes < 0:
		return errors.New("wecom max response bytes must not be negative")
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("wecom base url must be an http(s) URL, got %q", c.BaseURL)
	}
	return nil
}

// Client calls the WeCom REST API for one (corp id, secret). It is safe for concurrent
// use. Every call takes a context, waits for the rate limiter, gets a token (refreshing
// it through the TokenStore when needed), bounds each attempt by CallTimeout and the
// answer by MaxResponseBytes, retries what is safe to retry and returns a *Error for a
// non-zero errcode. See retry.go for the retry rules.
type Client struct {
	cfg    Config
	hc     *http.Client
	log    *slog.Logger
	tokens *tokenSource
	lim    *Limits
	m      *metrics
}

// New returns a Client. It does not call WeCom; the first call fetches the token. Errors:
// invalid Config, or collectors that cannot be registered.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("validating wecom client config: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("registering wecom client metrics: %w", err)
	}
	c := &Client{cfg: cfg, hc: cfg.HTTPClient, log: cfg.Logger, lim: cfg.Limits, m: m}
	c.tokens = newTokenSource(NewTokenKey(cfg.CorpID, cfg.Secret), cfg.Store, c.fetchToken, cfg.Now)
	return c, nil
}

// CorpID returns the client's corp id.
func (c *Client) CorpID() string { return c.cfg.CorpID }

// AccessToken returns a valid access token, fetching one if needed (for callers that must
// build a URL themselves; never log it).
func (c *Client) AccessToken(ctx context.Context) (string, error) {
	t, err := c.tokens.token(ctx, "")
	return t.AccessToken, err
}

// status is the errcode/errmsg every answer carries; every response type embeds it.
type status struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

func (s *status) st() *status { return s }

// answer is what do decodes into.
type answer interface{ st() *status }

type tokenAnswer struct {
	status
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

// fetchToken calls gettoken (with retries for transport trouble and -1).
func (c *Client) fetchToken(ctx context.Context) (Token, error) {
	q := url.Values{"corpid": {c.cfg.CorpID}, "corpsecret": {c.cfg.Secret}}
	var a tokenAnswer
	err := c.do(ctx, &call{ep: epGetToken, query: q}, &a)
	c.m.tokenFetch(c.cfg.CorpID, err)
	if err != nil {
		c.log.WarnContext(ctx, "wecom gettoken failed", "corp_id", c.cfg.CorpID, "err", err)
		return Token{}, fmt.Errorf("getting access token: %w", err)
	}
	if a.AccessToken == "" || a.ExpiresIn <= 0 {
		return Token{}, errors.New("getting access token: answer without access_token or expires_in")
	}
	t := refreshPlan(c.cfg.Now(), time.Duration(a.ExpiresIn)*time.Second, c.cfg.TokenEarlyRefresh)
	t.AccessToken = a.AccessToken
	c.log.InfoContext(ctx, "wecom access token fetched", "corp_id", c.cfg.CorpID, "token", t)
	return t, nil
}

// attemptResult is the outcome of one HTTP exchange.
type attemptResult struct {
	code      int  // errcode (0 when err != nil)
	sent      bool // the request was written (so a write may have taken effect)
	replayed  bool // net/http wrote it more than once
	transport bool // no usable answer: network error, timeout, 5xx
	err       error
}

// attempt makes one HTTP request for cl with token tok and decodes the answer into out.
func (c *Client) attempt(ctx context.Context, cl *call, tok string, out answer) (res attemptResult) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	q := url.Values{}
	for k, v := range cl.query {
		q[k] = v
	}
	if !cl.ep.noToken {
		q.Set("access_token", tok)
	}
	u, err := url.Parse(c.cfg.BaseURL + "/cgi-bin/" + cl.ep.api)
	if err != nil {
		return attemptResult{err: fmt.Errorf("building url for %s: %w", cl.ep.api, err)}
	}
	u.RawQuery = q.Encode()
	var body io.Reader
	ctype := ""
	switch {
	case cl.raw != nil:
		body, ctype = bytes.NewReader(cl.raw), cl.rawType
	case cl.body != nil:
		b, err := json.Marshal(cl.body)
		if err != nil {
			return attemptResult{err: fmt.Errorf("encoding %s request: %w", cl.ep.api, err)}
		}
		body, ctype = bytes.NewReader(b), "application/json"
	case cl.ep.method == http.MethodPost:
		body, ctype = strings.NewReader("{}"), "application/json"
	}
	var writes atomic.Int32
	// Count the writes: net/http silently re-sends a GET (some WeCom writes are GETs, e.g.
	// user/delete) when a reused connection breaks before any answer. A second write means
	// the first one may have taken effect.
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { writes.Add(1) }}
	defer func() { res.sent, res.replayed = writes.Load() > 0, writes.Load() > 1 }()
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), cl.ep.method, u.String(), body)
	if err != nil {
		return attemptResult{err: fmt.Errorf("building %s request: %w", cl.ep.api, redactURLError(err, u))}
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		res.transport, res.err = true, fmt.Errorf("calling %s: %w", cl.ep.api, redactURLError(err, u))
		return res
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		se := &HTTPStatusError{API: cl.ep.api, Status: resp.StatusCode}
		res.transport, res.err = se.Temporary(), se
		return res
	}
	limit := c.cfg.MaxResponseBytes
	if cl.ep.maxBytes > 0 {
		limit = cl.ep.maxBytes
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		res.transport, res.err = true, fmt.Errorf("reading %s answer: %w", cl.ep.api, redactURLError(err, u))
		return res
	}
	if int64(len(b)) > limit {
		res.err = fmt.Errorf("reading %s answer: more than %d bytes: %w", cl.ep.api, limit, ErrResponseTooLarge)
		return res
	}
	if err := json.Unmarshal(b, out); err != nil {
		// A cut or garbled answer: the status line said 200, but the body is unusable.
		res.transport, res.err = true, fmt.Errorf("decoding %s answer: %w", cl.ep.api, err)
		return res
	}
	st := out.st()
	res.code = st.ErrCode
	if st.ErrCode != 0 {
		res.err = &Error{Code: st.ErrCode, Msg: scrub(st.ErrMsg, tok, c.cfg.Secret), API: cl.ep.api}
	}
	return res
}

// sleep waits d or until ctx ends; it refuses to start a wait that would outlast ctx's
// deadline (returning false), so callers get their error back instead of a timeout.
func sleep(ctx context.Context, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// backoff returns the delay before attempt n+1 (n >= 1): full jitter over an exponential
// ceiling, so that many clients failing together do not retry together.
func (c *Client) backoff(n int) time.Duration {
	ceil := c.cfg.RetryBaseDelay << min(n-1, 20)
	if ceil > c.cfg.RetryMaxDelay || ceil <= 0 {
		ceil = c.cfg.RetryMaxDelay
	}
	if ceil <= 0 {
		return 0
	}
	return ceil/2 + rand.N(ceil/2+1)
}
