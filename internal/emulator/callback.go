package emulator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wecomsync/wecomsync/internal/crypto"
)

// CallbackTarget is where and how a callback is delivered: the URL and the Token /
// EncodingAESKey configured for it, encrypting for ReceiveID (the corp id).
type CallbackTarget struct {
	URL     string
	crypter *crypto.Crypter
	token   string
}

// NewCallbackTarget builds a target; it fails when the AES key is malformed or the URL is
// not absolute. A job's own callback{url,token,encodingaeskey} uses receiveID = corp id
// (ASSUMPTION, API-FACTS §9.4).
func NewCallbackTarget(rawURL, token, encodingAESKey, receiveID string) (*CallbackTarget, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("callback URL %q must be an absolute http(s) URL", rawURL)
	}
	c, err := crypto.New(token, encodingAESKey, receiveID)
	if err != nil {
		return nil, fmt.Errorf("creating callback crypter: %w", err)
	}
	return &CallbackTarget{URL: rawURL, crypter: c, token: token}, nil
}

// CallbackStats counts callback deliveries.
type CallbackStats struct {
	Enqueued   int64 `json:"enqueued"`   // messages queued
	Sent       int64 `json:"sent"`       // deliveries answered with HTTP 200 (duplicates count twice)
	Retried    int64 `json:"retried"`    // retry attempts after a failed attempt
	Failed     int64 `json:"failed"`     // messages given up after the last retry
	Dropped    int64 `json:"dropped"`    // messages dropped by fault injection
	Duplicated int64 `json:"duplicated"` // messages delivered a second time by fault injection
	Reordered  int64 `json:"reordered"`  // swaps made by fault injection
	Pending    int64 `json:"pending"`    // queued or being delivered now
}

type outMsg struct {
	target *CallbackTarget
	xml    []byte
}

// sender delivers callbacks strictly in order through one queue: the next message waits
// until the previous one was delivered or finally failed (WeCom's per-corp ordering).
type sender struct {
	s      *Server
	def    *CallbackTarget
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []outMsg
	closed bool
	ctx    context.Context
	cancel context.CancelFunc

	enqueued, sent, retried, failed, dropped, duplicated, reordered, pending atomic.Int64
}

func newSender(s *Server, def *CallbackTarget) *sender {
	q := &sender{s: s, def: def}
	q.cond = sync.NewCond(&q.mu)
	q.ctx, q.cancel = context.WithCancel(context.Background())
	return q
}

func (q *sender) enqueue(m outMsg) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.queue = append(q.queue, m)
	q.enqueued.Add(1)
	q.pending.Add(1)
	q.cond.Signal()
}

// next blocks until a message is available (applying reorder faults) or the sender is
// closed and empty.
func (q *sender) next() (outMsg, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.queue) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.queue) == 0 {
		return outMsg{}, false
	}
	f := q.s.faults.Load()
	if f.CallbackReorderRate > 0 && len(q.queue) > 1 && mrand.Float64() < f.CallbackReorderRate {
		w := f.CallbackReorderWindow
		if w < 2 {
			w = 3
		}
		j := 1 + mrand.IntN(min(w, len(q.queue))-1)
		q.queue[0], q.queue[j] = q.queue[j], q.queue[0]
		q.reordered.Add(1)
	}
	m := q.queue[0]
	q.queue[0] = outMsg{}
	q.queue = q.queue[1:]
	if len(q.queue) == 0 {
		q.queue = nil // let the backing array go
	}
	return m, true
}

func (q *sender) run() {
	for {
		m, ok := q.next()
		if !ok {
			return
		}
		f := q.s.faults.Load()
		switch {
		case f.CallbackDropRate > 0 && mrand.Float64() < f.CallbackDropRate:
			q.dropped.Add(1)
		default:
			q.deliver(m)
			if f.CallbackDuplicateRate > 0 && mrand.Float64() < f.CallbackDuplicateRate {
				q.duplicated.Add(1)
				q.deliver(m)
			}
		}
		q.pending.Add(-1)
	}
}

// deliver POSTs one message with up to 1+retries attempts, each bounded by the callback
// timeout; any non-200 answer or error counts as a failed attempt.
func (q *sender) deliver(m outMsg) {
	cfg := q.s.cfg
	ts := strconv.FormatInt(q.s.now().Unix(), 10)
	nonce := randomDigits(10)
	body, sig, err := m.target.crypter.EncryptMsg(m.xml, ts, nonce)
	if err != nil {
		q.failed.Add(1)
		q.s.log.Error("encrypting callback", "err", err)
		return
	}
	u := m.target.URL + sep(m.target.URL) + url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {nonce}}.Encode()
	for attempt := 0; attempt <= cfg.CallbackRetries; attempt++ {
		if attempt > 0 {
			q.retried.Add(1)
			if cfg.CallbackRetryDelay > 0 {
				t := time.NewTimer(cfg.CallbackRetryDelay)
				select {
				case <-t.C:
				case <-q.ctx.Done():
					t.Stop()
				}
			}
		}
		if q.ctx.Err() != nil {
			break
		}
		status, err := q.post(u, body)
		if err == nil && status == http.StatusOK {
			q.sent.Add(1)
			return
		}
		q.s.log.Warn("callback delivery attempt failed", "attempt", attempt+1, "status", status, "err", err)
	}
	q.failed.Add(1)
	q.s.log.Error("callback delivery failed", "url", m.target.URL)
}

func (q *sender) post(u string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(q.ctx, q.s.cfg.CallbackTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "text/xml")
	resp, err := q.s.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// close stops intake and lets the queue drain until ctx ends, then aborts delivery.
func (q *sender) close(ctx context.Context) {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	done := make(chan struct{})
	go func() {
		for q.pending.Load() > 0 {
			select {
			case <-ctx.Done():
				q.cancel()
				close(done)
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		close(done)
	}()
	<-done
	q.cancel()
}

func (q *sender) stats() CallbackStats {
	return CallbackStats{Enqueued: q.enqueued.Load(), Sent: q.sent.Load(), Retried: q.retried.Load(),
		Failed: q.failed.Load(), Dropped: q.dropped.Load(), Duplicated: q.duplicated.Load(),
		Reordered: q.reordered.Load(), Pending: q.pending.Load()}
}

// CallbackStats returns the callback counters.
func (s *Server) CallbackStats() CallbackStats { return s.cb.stats() }

// VerifyCallbackURL performs WeCom's GET verification of the configured callback URL:
// msg_signature/timestamp/nonce/echostr with an encrypted random 19-digit echostr, and
// expects HTTP 200 with the decrypted echostr verbatim. It records the result for
// /admin/stats, logs it and returns an error on failure. It blocks up to ctx.
func (s *Server) VerifyCallbackURL(ctx context.Context) error {
	err := s.verifyURL(ctx)
	if err != nil {
		s.verify.Store("failed: " + err.Error())
		s.log.ErrorContext(ctx, "callback URL verification failed", "url", s.cfg.CallbackURL, "err", err)
		return err
	}
	s.verify.Store("ok")
	s.log.InfoContext(ctx, "callback URL verified", "url", s.cfg.CallbackURL)
	return nil
}

func (s *Server) verifyURL(ctx context.Context) error {
	t := s.cb.def
	if t == nil {
		return fmt.Errorf("verifying callback URL: none configured")
	}
	plain := randomDigits(19)
	echostr, err := t.crypter.Encrypt([]byte(plain))
	if err != nil {
		return fmt.Errorf("encrypting echostr: %w", err)
	}
	ts := strconv.FormatInt(s.now().Unix(), 10)
	nonce := randomDigits(10)
	sig := crypto.Signature(t.token, ts, nonce, echostr)
	u := t.URL + sep(t.URL) + url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {nonce}, "echostr": {echostr}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("building verification request: %w", err)
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("requesting %s: %w", t.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("callback URL answered HTTP %d", resp.StatusCode)
	}
	if string(b) != plain {
		return fmt.Errorf("callback URL answered %q, want the decrypted echostr %q verbatim", b, plain)
	}
	return nil
}

// CallbackVerification returns the result of the GET verification: "ok", "failed: ...",
// "pending" or "not configured".
func (s *Server) CallbackVerification() string { return s.verify.Load().(string) }

func sep(u string) string {
	if strings.Contains(u, "?") {
		return "&"
	}
	return "?"
}

func randomDigits(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + mrand.IntN(10))
	}
	if b[0] == '0' {
		b[0] = '1'
	}
	return string(b)
}
