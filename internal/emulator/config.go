package emulator

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/wecomsync/wecomsync/internal/crypto"
)

// Defaults applied by New for zero Config fields.
const (
	DefaultRateLimitPerMinute = 10000 // per corp per API (API-FACTS §7.2)
	DefaultConcurrencyLimit   = 1000  // in-flight calls per API before 45033 (undocumented in WeCom)
	DefaultTokenTTL           = 7200 * time.Second
	DefaultCallbackTimeout    = 5 * time.Second
	DefaultCallbackRetries    = 3 // "总共重试三次": at most 4 attempts
	DefaultCallbackRetryDelay = 200 * time.Millisecond
	DefaultLinkedCorpUsers    = 12
)

// Config configures a Server. Zero values mean the documented default.
type Config struct {
	// Addr is the listen address used by Start, e.g. "127.0.0.1:9400" or ":0".
	Addr string
	// CorpID is the main corp's id (also the callback receiveid). Required.
	CorpID string
	// CorpName names the root department. Default "模拟企业".
	CorpName string
	// ContactSecret is the contacts-sync secret: reads and writes, writes not called back. Required.
	ContactSecret string
	// ConsoleSecret acts like the admin console: its writes are called back. Optional.
	ConsoleSecret string
	// AppSecret is a read-only self-built app: writes answer 48002. Optional.
	AppSecret string

	// CallbackURL, CallbackToken and CallbackAESKey configure change_contact callbacks;
	// all three or none.
	CallbackURL    string
	CallbackToken  string
	CallbackAESKey string
	// CallbackMinimal sends only what callback URLs configured after 2022-08-15 get.
	CallbackMinimal bool
	// SkipCallbackVerify skips the GET URL verification Start performs.
	SkipCallbackVerify bool
	// CallbackTimeout bounds each delivery attempt. Default 5s.
	CallbackTimeout time.Duration
	// CallbackRetries is the number of retries after a failed attempt. Default 3; negative = 0.
	CallbackRetries int
	// CallbackRetryDelay is the pause before a retry. Default 200ms; negative = none.
	CallbackRetryDelay time.Duration

	// SeedUsers seeds an org of this many members (when no state file was loaded).
	SeedUsers int
	// SeedRandom seeds the generator, for reproducible orgs. Default 1.
	SeedRandom uint64
	// StatePath, when set, is loaded at New (if present) and saved at Close.
	StatePath string
	// StateInterval, when > 0, also saves the state file periodically.
	StateInterval time.Duration

	// RateLimitPerMinute is the per corp, per API limit answering 45009. Default 10000;
	// negative = unlimited.
	RateLimitPerMinute int
	// ConcurrencyLimit is the per API in-flight limit answering 45033. Default 1000;
	// negative = unlimited.
	ConcurrencyLimit int
	// TokenTTL is access_token validity. Default 7200s.
	TokenTTL time.Duration

	// LinkedCorpID, when set, adds a linked corp with LinkedCorpUsers members (default 12)
	// readable through the linkedcorp APIs.
	LinkedCorpID    string
	LinkedCorpUsers int

	// AppSensitiveRestricted makes the app secret's user/get and user/list omit the
	// 2022-06-20 sensitive fields (avatar, thumb_avatar, gender, mobile, email, biz_mail,
	// qr_code, address).
	AppSensitiveRestricted bool
	// ContactNewIP makes the contacts-sync secret get 48009 on user/list,
	// user/simplelist, department/list and department/get (the 2022-08-15 new-IP rule).
	ContactNewIP bool

	// Faults is the initial fault injection; changeable at run time (SetFaults, /admin/faults).
	Faults Faults

	// Jobs configures the async import/export jobs (see jobs_*.go).
	Jobs JobsConfig

	// Logger receives the emulator's logs. Default: discard.
	Logger *slog.Logger
	// Now is the clock (token expiry, rate windows, CreateTime). Default time.Now.
	Now func() time.Time
	// HTTPClient delivers callbacks. Default: a keep-alive client without a global timeout.
	HTTPClient *http.Client
}

// Faults describes injected failures. Rates are probabilities in [0,1].
type Faults struct {
	// ErrorRate answers -1 (system busy) to this share of REST calls.
	ErrorRate float64 `json:"error_rate"`
	// FreqLimitRate answers 45009 to this share of REST calls.
	FreqLimitRate float64 `json:"freq_limit_rate"`
	// ConcurrencyRate answers 45033 to this share of REST calls.
	ConcurrencyRate float64 `json:"concurrency_rate"`
	// LatencyMS delays every REST call by this many milliseconds.
	LatencyMS int `json:"latency_ms"`
	// CallbackDropRate silently drops this share of callbacks.
	CallbackDropRate float64 `json:"callback_drop_rate"`
	// CallbackDuplicateRate delivers this share of callbacks twice.
	CallbackDuplicateRate float64 `json:"callback_duplicate_rate"`
	// CallbackReorderRate swaps the next callback with a later one in the queue (within
	// CallbackReorderWindow, default 3) this share of the time.
	CallbackReorderRate   float64 `json:"callback_reorder_rate"`
	CallbackReorderWindow int     `json:"callback_reorder_window"`
}

func (f Faults) validate() error {
	for name, r := range map[string]float64{"error_rate": f.ErrorRate, "freq_limit_rate": f.FreqLimitRate,
		"concurrency_rate": f.ConcurrencyRate, "callback_drop_rate": f.CallbackDropRate,
		"callback_duplicate_rate": f.CallbackDuplicateRate, "callback_reorder_rate": f.CallbackReorderRate} {
		if r < 0 || r > 1 {
			return fmt.Errorf("fault %s must be between 0 and 1, got %v", name, r)
		}
	}
	if f.LatencyMS < 0 || f.CallbackReorderWindow < 0 {
		return errors.New("fault latency_ms and callback_reorder_window must not be negative")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.CorpName == "" {
		c.CorpName = "模拟企业"
	}
	if c.CallbackTimeout == 0 {
		c.CallbackTimeout = DefaultCallbackTimeout
	}
	if c.CallbackRetries == 0 {
		c.CallbackRetries = DefaultCallbackRetries
	} else if c.CallbackRetries < 0 {
		c.CallbackRetries = 0
	}
	if c.CallbackRetryDelay == 0 {
		c.CallbackRetryDelay = DefaultCallbackRetryDelay
	} else if c.CallbackRetryDelay < 0 {
		c.CallbackRetryDelay = 0
	}
	if c.SeedRandom == 0 {
		c.SeedRandom = 1
	}
	if c.RateLimitPerMinute == 0 {
		c.RateLimitPerMinute = DefaultRateLimitPerMinute
	}
	if c.ConcurrencyLimit == 0 {
		c.ConcurrencyLimit = DefaultConcurrencyLimit
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	if c.LinkedCorpUsers == 0 {
		c.LinkedCorpUsers = DefaultLinkedCorpUsers
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 90 * time.Second}}
	}
	return c
}

func (c Config) validate() error {
	if c.CorpID == "" {
		return errors.New("corp id must be set")
	}
	if c.ContactSecret == "" {
		return errors.New("contact secret must be set")
	}
	secrets := map[string]string{}
	for name, s := range map[string]string{"contact": c.ContactSecret, "console": c.ConsoleSecret, "app": c.AppSecret} {
		if s == "" {
			continue
		}
		if other, dup := secrets[s]; dup {
			return fmt.Errorf("the %s and %s secrets must differ", name, other)
		}
		secrets[s] = name
	}
	n := 0
	for _, v := range []string{c.CallbackURL, c.CallbackToken, c.CallbackAESKey} {
		if v != "" {
			n++
		}
	}
	if n != 0 && n != 3 {
		return errors.New("callback URL, token and AES key must be set together")
	}
	if c.CallbackAESKey != "" {
		if _, err := crypto.DecodeAESKey(c.CallbackAESKey); err != nil {
			return fmt.Errorf("callback AES key must be 43 characters of base64, got %d characters", len(c.CallbackAESKey))
		}
	}
	if c.SeedUsers < 0 || c.LinkedCorpUsers < 0 {
		return errors.New("seed user counts must not be negative")
	}
	if c.LinkedCorpID != "" && c.LinkedCorpID == c.CorpID {
		return errors.New("linked corp id must differ from the corp id")
	}
	return c.Faults.validate()
}
