package status

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"
)

//go:embed page.html
var pageFS embed.FS

// page is parsed once; html/template escapes every value by its context (text,
// attribute), so corp ids, reasons and errors cannot inject markup.
var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"num":      num,
	"when":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"clip":     clip,
	"pct":      pct,
	"lagText":  lagText,
	"lagClass": lagClass,
	"drift":    driftText,
	"outcome":  outcome,
	"join":     strings.Join,
}).ParseFS(pageFS, "page.html"))

// view is what the template renders: the snapshot and the handler's clock.
type view struct {
	*Snapshot
	Refresh int
	now     time.Time
}

// Ago is a compact "how long ago" for t ("just now", "42s ago", "3m ago", "5h ago",
// "2d ago").
func (v view) Ago(t time.Time) string {
	d := v.now.Sub(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h ago"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d ago"
}

// Short is t's time of day ("15:04:05Z") when t is on the page's (UTC) day, and its
// date and time otherwise.
func (v view) Short(t time.Time) string {
	t = t.UTC()
	if t.Format(time.DateOnly) == v.now.UTC().Format(time.DateOnly) {
		return t.Format("15:04:05Z")
	}
	return t.Format("2006-01-02 15:04Z")
}

// render writes the HTML page of s.
func (h *Handler) render(w io.Writer, s *Snapshot) error {
	return page.Execute(w, view{Snapshot: s, Refresh: max(1, int(h.cfg.Refresh/time.Second)), now: s.GeneratedAt})
}

// num formats an integer with thousands separators ("12,345").
func num(v any) string {
	var s string
	switch n := v.(type) {
	case int:
		s = strconv.Itoa(n)
	case int64:
		s = strconv.FormatInt(n, 10)
	case uint64:
		s = strconv.FormatUint(n, 10)
	default:
		return fmt.Sprint(v)
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// clip shortens s to n runes with an ellipsis.
func clip(n int, s string) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// pct is done/total as a whole percentage (0 when the total is unknown).
func pct(done, total int64) int64 {
	if total <= 0 {
		return 0
	}
	return min(100, done*100/total)
}

// lagText is the lag as the page says it: "up to date", "12 behind" (exact) or
// "≤ 12 behind" (an upper bound).
func lagText(l Lag) string {
	switch l.State {
	case LagUpToDate:
		return "up to date"
	case LagBehind:
		if l.Exact {
			return num(l.Events) + " behind"
		}
		return "≤ " + num(l.Events) + " behind"
	}
	return "unknown"
}

func lagClass(l Lag) string {
	switch l.State {
	case LagUpToDate:
		return "ok"
	case LagBehind:
		return "warn"
	}
	return "muted"
}

// driftText is a merge's changes: "none" or "users +1 ~2 −0; departments …".
func driftText(d *Drift) string {
	if d == nil {
		return ""
	}
	if d.Total == 0 {
		return "no drift"
	}
	var parts []string
	for _, e := range []struct {
		name string
		c    [3]int
	}{{"users", [3]int{d.Users.Created, d.Users.Updated, d.Users.Deleted}},
		{"departments", [3]int{d.Departments.Created, d.Departments.Updated, d.Departments.Deleted}},
		{"tags", [3]int{d.Tags.Created, d.Tags.Updated, d.Tags.Deleted}}} {
		if e.c != [3]int{} {
			parts = append(parts, fmt.Sprintf("%s +%d ~%d −%d", e.name, e.c[0], e.c[1], e.c[2]))
		}
	}
	return fmt.Sprintf("%d healed: %s", d.Total, strings.Join(parts, "; "))
}

// outcome is a one-line result of a job for the tables: drift, import counts or error.
func outcome(j JobRun) string {
	if j.Error != "" {
		return j.Error
	}
	if j.Drift != nil {
		return driftText(j.Drift)
	}
	if len(j.Summary) > 0 && j.Summary[0] == '{' {
		return clip(200, string(j.Summary))
	}
	return ""
}
