package wecom

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Error is a non-zero errcode answered by WeCom. API is the endpoint without the
// /cgi-bin/ prefix (e.g. "user/get"). Msg is WeCom's errmsg with any access token or
// secret the client knows removed. Match classes with errors.Is (ErrNotFound, ...) and
// the exact code with errors.As and Code; never parse Msg.
type Error struct {
	Code int
	Msg  string
	API  string
}

// Error returns "wecom <api>: errcode <code>: <msg>".
func (e *Error) Error() string {
	return fmt.Sprintf("wecom %s: errcode %d: %s", e.API, e.Code, e.Msg)
}

// Is reports whether target is one of the error classes the code belongs to.
func (e *Error) Is(target error) bool {
	c, ok := target.(*class)
	if !ok {
		return false
	}
	_, in := c.codes[e.Code]
	return in
}

// class is an error class matched by *Error.Is.
type class struct {
	name  string
	codes map[int]struct{}
}

// Error returns "wecom: <class name>".
func (c *class) Error() string { return "wecom: " + c.name }

func newClass(name string, codes ...int) *class {
	m := make(map[int]struct{}, len(codes))
	for _, c := range codes {
		m[c] = struct{}{}
	}
	return &class{name: name, codes: m}
}

// Error classes for errors.Is. An *Error matches every class its code is listed in.
var (
	// ErrTokenInvalid: the access token is invalid, expired or missing (40014, 42001,
	// 42007, 42009, 41001). The client refreshes and retries these itself; callers see
	// them only when the refreshed token fails too.
	ErrTokenInvalid error = newClass("access token invalid", 40014, 42001, 42007, 42009, 41001)
	// ErrBadCredentials: gettoken refused the corp id or secret (40001, 40013, 41002,
	// 41004). Retrying does not help; fix the configuration.
	ErrBadCredentials error = newClass("bad corp id or secret", 40001, 40013, 41002, 41004)
	// ErrRateLimited: a frequency limit was hit (45009); WeCom blocks the API for the
	// limit's window (60 s for per-minute limits).
	ErrRateLimited error = newClass("rate limited", 45009)
	// ErrConcurrency: too many concurrent calls to one API (45033).
	ErrConcurrency error = newClass("too many concurrent calls", 45033)
	// ErrSystemBusy: WeCom answered -1 (system busy; retry later).
	ErrSystemBusy error = newClass("system busy", -1)
	// ErrNotFound: the user, department, tag, job or record does not exist (60111, 60003,
	// 40068, 40088, 60136, 46004, 40003 userid invalid/unknown).
	ErrNotFound error = newClass("not found", 60111, 60003, 40068, 40088, 60136, 46004, 40003)
	// ErrExists: a unique value is taken (60102 userid, 60104 mobile, 60106 email, 60008
	// department id or name, 40071 tag name, 60145 biz_mail).
	ErrExists error = newClass("already exists", 60102, 60104, 60106, 60008, 40071, 60145)
	// ErrNoPermission: the secret may not call this API or see this entity (48002, 48001,
	// 48008, 48009 new-IP rule, 60011, 50002, 60021, 81011, 301002).
	ErrNoPermission error = newClass("no permission", 48002, 48001, 48008, 48009, 60011, 50002, 60021, 81011, 301002)
	// ErrIPNotAllowed: the caller's IP is not in the corp's trusted IPs (60020).
	ErrIPNotAllowed error = newClass("ip not allowed", 60020)
	// ErrImportRunning: another import job is still running (302008).
	ErrImportRunning error = newClass("import job already running", 302008)
	// ErrJobCleaned: the job's result was cleaned up (40089; only the latest jobs are kept).
	ErrJobCleaned error = newClass("job result cleaned", 40089)
)

// Errors that are not WeCom errcodes.
var (
	// ErrUnknownOutcome: a write was sent but its answer was lost (timeout, broken
	// connection, -1) and the client could not establish by re-reading whether it took
	// effect, so it did not send it again. The error wraps the cause.
	ErrUnknownOutcome = errors.New("wecom: outcome of write unknown")
	// ErrResponseTooLarge: an answer exceeded Config.MaxResponseBytes.
	ErrResponseTooLarge = errors.New("wecom: response too large")
	// ErrURLExpired: an export download URL is no longer valid (they last 2 hours);
	// call export/get_result again for fresh URLs, or export again.
	ErrURLExpired = errors.New("wecom: export download url expired")
	// ErrChecksum: a downloaded export block's MD5 does not match export/get_result's.
	ErrChecksum = errors.New("wecom: export block md5 mismatch")
	// ErrSize: a downloaded export block's length does not match export/get_result's.
	ErrSize = errors.New("wecom: export block size mismatch")
	// ErrHTTPStatus: WeCom answered an HTTP status other than 200 (e.g. 404 for an
	// unknown path, 5xx from a proxy). Wrapped in an *HTTPStatusError.
	ErrHTTPStatus = errors.New("wecom: unexpected http status")
)

// HTTPStatusError is a non-200 HTTP answer to an API call or a download.
type HTTPStatusError struct {
	API    string
	Status int
}

// Error returns "wecom <api>: http status <n>".
func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("wecom %s: http status %d", e.API, e.Status)
}

// Unwrap returns ErrHTTPStatus.
func (e *HTTPStatusError) Unwrap() error { return ErrHTTPStatus }

// Temporary reports whether the status is worth retrying (5xx, 429).
func (e *HTTPStatusError) Temporary() bool { return e.Status >= 500 || e.Status == 429 }

// redactQuery returns u as a string with the values of access_token and corpsecret (and
// any other parameter named like a secret) replaced by "REDACTED".
func redactQuery(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	q := c.Query()
	changed := false
	for k := range q {
		lk := strings.ToLower(k)
		if lk == "access_token" || strings.Contains(lk, "secret") || lk == "sign" || lk == "signature" {
			q.Set(k, "REDACTED")
			changed = true
		}
	}
	if changed {
		c.RawQuery = q.Encode()
	}
	return c.String()
}

// redactURLError rewrites the URL of a *url.Error (transport errors print it) so that no
// token or secret leaks into error strings or logs; other errors are returned unchanged.
func redactURLError(err error, u *url.URL) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: redactQuery(u), Err: ue.Err}
	}
	return err
}

// scrub removes every non-empty secret from s.
func scrub(s string, secrets ...string) string {
	for _, x := range secrets {
		if x != "" && strings.Contains(s, x) {
			s = strings.ReplaceAll(s, x, "REDACTED")
		}
	}
	return s
}
