package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wecomsync/wecomsync/internal/event"
)

// editor makes console edits on the emulator, as an administrator would in the WeCom
// admin console, and remembers when each was made so the event's latency can be printed.
type editor struct {
	base    string
	corp    string
	token   string
	client  *http.Client
	users   []string
	depts   []int
	tags    []int
	created []string
	count   int

	mu      sync.Mutex
	pending map[string]time.Time // edits made, by change type and key
	applied map[string]inflight  // edits stored, by mirror entity, op and key
}

func newEditor(ctx context.Context, base, corp, consoleSecret string) (*editor, error) {
	e := &editor{base: base, corp: corp, client: &http.Client{Timeout: 10 * time.Second}, pending: map[string]time.Time{}, applied: map[string]inflight{}}
	var tok struct {
		ErrCode     int    `json:"errcode"`
		ErrMsg      string `json:"errmsg"`
		AccessToken string `json:"access_token"`
	}
	if err := e.call(ctx, http.MethodGet, "/cgi-bin/gettoken?corpid="+url.QueryEscape(corp)+"&corpsecret="+url.QueryEscape(consoleSecret), nil, &tok); err != nil {
		return nil, err
	}
	if tok.ErrCode != 0 {
		return nil, fmt.Errorf("gettoken: errcode %d %s", tok.ErrCode, tok.ErrMsg)
	}
	e.token = tok.AccessToken
	var st struct {
		Users []struct {
			UserID string `json:"userid"`
		} `json:"users"`
		Departments []struct {
			ID int `json:"id"`
		} `json:"departments"`
		Tags []struct {
			TagID int `json:"tagid"`
		} `json:"tags"`
	}
	if err := e.call(ctx, http.MethodGet, "/admin/state", nil, &st); err != nil {
		return nil, err
	}
	for _, u := range st.Users {
		e.users = append(e.users, u.UserID)
	}
	for _, d := range st.Departments {
		e.depts = append(e.depts, d.ID)
	}
	for _, t := range st.Tags {
		e.tags = append(e.tags, t.TagID)
	}
	if len(e.users) == 0 || len(e.depts) == 0 {
		return nil, fmt.Errorf("the emulator's org is empty")
	}
	return e, nil
}

func (e *editor) call(ctx context.Context, method, path string, body, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.base+path, rd)
	if err != nil {
		return err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", strings.SplitN(path, "?", 2)[0], resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// api calls a /cgi-bin write with the console token and checks errcode.
func (e *editor) api(ctx context.Context, path string, body any) (map[string]any, error) {
	var out map[string]any
	method := http.MethodPost
	if body == nil {
		method = http.MethodGet
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	if err := e.call(ctx, method, "/cgi-bin/"+path+sep+"access_token="+e.token, body, &out); err != nil {
		return nil, err
	}
	if code, _ := out["errcode"].(float64); code != 0 {
		return out, fmt.Errorf("%s: errcode %.0f %v", strings.SplitN(path, "?", 2)[0], code, out["errmsg"])
	}
	return out, nil
}

// mark records that an edit producing (changeType, key) was just made.
func (e *editor) mark(changeType, key string) {
	e.mu.Lock()
	e.pending[changeType+"\x00"+key] = time.Now()
	e.mu.Unlock()
}

// inflight is an edit whose callback JetStream has stored, waiting for the mirror.
type inflight struct {
	at     time.Time
	stored time.Duration
	what   string
}

// changeOf maps a change type to the mirror's (entity, op).
var changeOf = map[string][2]string{
	"create_user": {"user", "created"}, "update_user": {"user", "updated"}, "delete_user": {"user", "deleted"},
	"create_party": {"department", "created"}, "update_party": {"department", "updated"}, "delete_party": {"department", "deleted"},
	"update_tag": {"tag", "updated"},
}

// stored notes that the event of an edit reached JetStream.
func (e *editor) stored(changeType, key, what string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := changeType + "\x00" + key
	at, ok := e.pending[k]
	if !ok {
		return
	}
	delete(e.pending, k)
	c := changeOf[changeType]
	e.applied[c[0]+"\x00"+c[1]+"\x00"+key] = inflight{at: at, stored: time.Since(at), what: what}
}

// mirrored returns the latencies (edit → stored, edit → mirror) of the edit behind a mirror
// change, once per edit, or "-" for changes no edit of ours made (the initial sync).
func (e *editor) mirrored(entity, key, op string) (stored, mirrored, what string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := entity + "\x00" + op + "\x00" + key
	f, ok := e.applied[k]
	if !ok {
		return "-", "-", ""
	}
	delete(e.applied, k)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	return ms(f.stored), ms(time.Since(f.at)), f.what
}

// edit makes one random console edit.
func (e *editor) edit(ctx context.Context) error {
	e.count++
	u := e.users[rand.IntN(len(e.users))]
	switch r := rand.IntN(10); {
	case r < 4:
		pos := []string{"工程师", "产品经理", "设计师", "运营", "销售", "财务"}[rand.IntN(6)]
		e.mark("update_user", u)
		_, err := e.api(ctx, "user/update", map[string]any{"userid": u, "position": pos})
		return err
	case r < 6:
		d := e.depts[rand.IntN(len(e.depts))]
		e.mark("update_user", u)
		_, err := e.api(ctx, "user/update", map[string]any{"userid": u, "department": []int{d}, "main_department": d})
		return err
	case r < 8:
		id := fmt.Sprintf("demo%06d", e.count)
		e.mark("create_user", id)
		_, err := e.api(ctx, "user/create", map[string]any{
			"userid": id, "name": "演示" + strconv.Itoa(e.count), "mobile": fmt.Sprintf("199%08d", rand.IntN(1e8)),
			"department": []int{e.depts[rand.IntN(len(e.depts))]},
		})
		if err == nil {
			e.created = append(e.created, id)
		}
		return err
	case r < 9 && len(e.created) > 0:
		id := e.created[0]
		e.created = e.created[1:]
		e.mark("delete_user", id)
		_, err := e.api(ctx, "user/delete?userid="+url.QueryEscape(id), nil)
		return err
	default:
		if len(e.tags) == 0 {
			return nil
		}
		tag := e.tags[rand.IntN(len(e.tags))]
		e.mark("update_tag", strconv.Itoa(tag))
		_, err := e.api(ctx, "tag/addtagusers", map[string]any{"tagid": tag, "userlist": []string{u}})
		return err
	}
}

// describe summarises an event for the demo's output: its key and what changed.
func describe(m *event.Message) (key, what string) {
	switch {
	case strings.HasSuffix(m.ChangeType, "_user"):
		u, err := m.User()
		if err != nil {
			return "?", err.Error()
		}
		var parts []string
		if v, ok := u.Position.Get(); ok {
			parts = append(parts, "position="+v)
		}
		if v, ok := u.Department.Get(); ok {
			parts = append(parts, fmt.Sprintf("department=%v", v))
		}
		if v, ok := u.Name.Get(); ok {
			parts = append(parts, "name="+v)
		}
		if v, ok := u.NewUserID.Get(); ok {
			parts = append(parts, "new_userid="+v)
		}
		return u.UserID, strings.Join(parts, " ")
	case strings.HasSuffix(m.ChangeType, "_party"):
		p, err := m.Party()
		if err != nil {
			return "?", err.Error()
		}
		return strconv.FormatInt(p.ID, 10), ""
	case m.ChangeType == "update_tag":
		t, err := m.Tag()
		if err != nil {
			return "?", err.Error()
		}
		add, _ := t.AddUserItems.Get()
		return strconv.FormatInt(t.TagID, 10), fmt.Sprintf("add_users=%v", add)
	default:
		return "", m.Event
	}
}
