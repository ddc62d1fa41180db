package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"sync"

	"github.com/wecomsync/wecomsync/internal/mirror"
	"github.com/wecomsync/wecomsync/internal/wecom"
)

// DirectoryClient is the part of *wecom.Client (one corp, its contacts-sync secret) the
// worker reads the directory with.
type DirectoryClient interface {
	GetUser(ctx context.Context, userid string) (*wecom.User, error)
	GetDepartment(ctx context.Context, id int) (*wecom.Department, error)
	SimpleListDepartments(ctx context.Context, id int) ([]wecom.SimpleDepartment, error)
	ListIDs(ctx context.Context, limit int) iter.Seq2[wecom.DeptUser, error]
	ListTags(ctx context.Context) ([]wecom.TagSummary, error)
	GetTag(ctx context.Context, tagID int) (*wecom.Tag, error)
}

// WeCom is the worker's view of the configured corps' WeCom directories: it implements
// mirror.Lookup for every corp and returns a mirror.SyncSource per corp. Create it with
// NewWeCom.
type WeCom struct {
	clients map[string]DirectoryClient
	conc    int
}

// NewWeCom returns a WeCom over one client per corp id (cmd/worker gives every client
// the Postgres token store, so all processes share one token per corp). concurrency
// bounds the calls a sync makes at once per corp (the user/get fan-out; the client paces
// them within WeCom's rate limits, and WeCom answers 45033 past its concurrency limit).
func NewWeCom(clients map[string]DirectoryClient, concurrency int) *WeCom {
	return &WeCom{clients: clients, conc: max(concurrency, 1)}
}

func (w *WeCom) client(corpID string) (DirectoryClient, error) {
	c, ok := w.clients[corpID]
	if !ok {
		// Events of a corp the worker has no secret for: store what they carry.
		return nil, fmt.Errorf("no WeCom credentials configured for corp %s: %w", corpID, mirror.ErrLookupNotPermitted)
	}
	return c, nil
}

// classify maps the client's error classes to the mirror's sentinels, keeping the
// original error: gone (60111, 60003, 40003, ...; and 60123, an invalid department id) is
// mirror.ErrNotFound; refused (48009 for the contacts-sync secret on a new IP, 60011
// outside visibility, 48002 no API right, 60020 untrusted IP, ...) is
// mirror.ErrLookupNotPermitted. Anything else is transient for the mirror.
func classify(err error) error {
	var we *wecom.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, wecom.ErrNotFound), errors.As(err, &we) && we.Code == 60123:
		return fmt.Errorf("%w: %w", mirror.ErrNotFound, err)
	case errors.Is(err, wecom.ErrNoPermission), errors.Is(err, wecom.ErrIPNotAllowed):
		return fmt.Errorf("%w: %w", mirror.ErrLookupNotPermitted, err)
	}
	return err
}

// userFromWeCom converts user/get's answer. The contacts-sync secret is given every
// field (the 2022 sensitive-field rule applies to apps), so nothing is marked unknown
// except per-department order or leader flags WeCom did not list for every department.
func userFromWeCom(g *wecom.User) *mirror.User {
	u := &mirror.User{UserID: g.UserID, Name: g.Name, Alias: g.Alias, Position: g.Position, Mobile: g.Mobile,
		Email: g.Email, BizMail: g.BizMail, Status: g.Status, MainDepartment: int64(g.MainDepartment),
		Avatar: g.Avatar, Telephone: g.Telephone, Address: g.Address, OpenUserID: g.OpenUserID}
	u.Gender, _ = strconv.Atoi(g.Gender.String())
	if g.ExtAttr != nil {
		u.ExtAttr, _ = json.Marshal(g.ExtAttr)
	}
	u.Raw, _ = json.Marshal(g)
	orders := len(g.Order) == len(g.Department)
	leaders := len(g.IsLeaderInDept) == len(g.Department)
	if !orders {
		u.Unknown = append(u.Unknown, mirror.FieldOrder)
	}
	if !leaders {
		u.Unknown = append(u.Unknown, mirror.FieldIsLeader)
	}
	u.Departments = make([]mirror.Membership, len(g.Department))
	for i, d := range g.Department {
		m := mirror.Membership{DepartmentID: int64(d)}
		if orders {
			m.Order = int64(g.Order[i])
		}
		if leaders {
			m.IsLeader = g.IsLeaderInDept[i] == 1
		}
		u.Departments[i] = m
	}
	return u
}

func deptFromWeCom(g *wecom.Department) *mirror.Department {
	raw, _ := json.Marshal(g)
	return &mirror.Department{ID: int64(g.ID), Name: g.Name, NameEn: g.NameEn, ParentID: int64(g.ParentID), Order: int64(g.Order), Raw: raw}
}

// User returns userid's full record from user/get. Errors wrap mirror.ErrNotFound when
// the member is gone and mirror.ErrLookupNotPermitted when WeCom refuses.
func (w *WeCom) User(ctx context.Context, corpID, userid string) (*mirror.User, error) {
	c, err := w.client(corpID)
	if err != nil {
		return nil, err
	}
	g, err := c.GetUser(ctx, userid)
	if err != nil {
		return nil, fmt.Errorf("looking up member %s of corp %s: %w", userid, corpID, classify(err))
	}
	return userFromWeCom(g), nil
}

// Department returns department id's full record from department/get. Errors wrap
// mirror.ErrNotFound when it is gone and mirror.ErrLookupNotPermitted when WeCom refuses
// (48009 for the contacts-sync secret on a new IP).
func (w *WeCom) Department(ctx context.Context, corpID string, id int64) (*mirror.Department, error) {
	c, err := w.client(corpID)
	if err != nil {
		return nil, err
	}
	g, err := c.GetDepartment(ctx, int(id))
	if err != nil {
		return nil, fmt.Errorf("looking up department %d of corp %s: %w", id, corpID, classify(err))
	}
	return deptFromWeCom(g), nil
}

// Source returns a mirror.SyncSource reading corpID's whole directory from the API:
// department/simplelist then department/get per department, user/list_id then user/get
// per member (concurrency-limited), and tag/list then tag/get per tag. Records WeCom
// refuses to detail are yielded with what the lists gave and the rest marked unknown;
// records deleted while the sync reads are left out.
func (w *WeCom) Source(corpID string) (mirror.SyncSource, error) {
	c, err := w.client(corpID)
	if err != nil {
		return nil, err
	}
	return &apiSource{corp: corpID, c: c, conc: w.conc}, nil
}

type apiSource struct {
	corp string
	c    DirectoryClient
	conc int
}

// SourceName names the source in the change log.
func (s *apiSource) SourceName() string { return "sync" }

func (s *apiSource) Departments(ctx context.Context) iter.Seq2[*mirror.Department, error] {
	return func(yield func(*mirror.Department, error) bool) {
		list, err := s.c.SimpleListDepartments(ctx, 0)
		if err != nil {
			yield(nil, fmt.Errorf("listing departments of corp %s: %w", s.corp, err))
			return
		}
		for d, err := range fanOut(ctx, list, s.conc, func(ctx context.Context, sd wecom.SimpleDepartment) (*mirror.Department, error) {
			g, err := s.c.GetDepartment(ctx, sd.ID)
			switch err := classify(err); {
			case err == nil:
				return deptFromWeCom(g), nil
			case errors.Is(err, mirror.ErrLookupNotPermitted):
				// simplelist is what the 2022 rules leave the sync secret: names unknown.
				return &mirror.Department{ID: int64(sd.ID), ParentID: int64(sd.ParentID), Order: int64(sd.Order),
					Unknown: []string{mirror.FieldName, mirror.FieldNameEn}}, nil
			case errors.Is(err, mirror.ErrNotFound):
				return nil, nil // deleted since the list: its event (or the next sync) tells
			default:
				return nil, fmt.Errorf("reading department %d of corp %s: %w", sd.ID, s.corp, err)
			}
		}) {
			if d == nil && err == nil {
				continue
			}
			if !yield(d, err) || err != nil {
				return
			}
		}
	}
}

func (s *apiSource) Users(ctx context.Context) iter.Seq2[*mirror.User, error] {
	return func(yield func(*mirror.User, error) bool) {
		depts := map[string][]int64{}
		var order []string
		for du, err := range s.c.ListIDs(ctx, 0) {
			if err != nil {
				yield(nil, fmt.Errorf("listing members of corp %s: %w", s.corp, err))
				return
			}
			if _, ok := depts[du.UserID]; !ok {
				order = append(order, du.UserID)
			}
			depts[du.UserID] = append(depts[du.UserID], int64(du.Department))
		}
		for u, err := range fanOut(ctx, order, s.conc, func(ctx context.Context, userid string) (*mirror.User, error) {
			g, err := s.c.GetUser(ctx, userid)
			switch err := classify(err); {
			case err == nil:
				return userFromWeCom(g), nil
			case errors.Is(err, mirror.ErrLookupNotPermitted):
				// list_id gives the departments only.
				m := &mirror.User{UserID: userid, Unknown: append([]string(nil), mirror.UserFields...)}
				for _, d := range depts[userid] {
					m.Departments = append(m.Departments, mirror.Membership{DepartmentID: d})
				}
				return m, nil
			case errors.Is(err, mirror.ErrNotFound):
				return nil, nil
			default:
				return nil, fmt.Errorf("reading member %s of corp %s: %w", userid, s.corp, err)
			}
		}) {
			if u == nil && err == nil {
				continue
			}
			if !yield(u, err) || err != nil {
				return
			}
		}
	}
}

func (s *apiSource) Tags(ctx context.Context) iter.Seq2[*mirror.Tag, error] {
	return func(yield func(*mirror.Tag, error) bool) {
		list, err := s.c.ListTags(ctx)
		if err != nil {
			yield(nil, fmt.Errorf("listing tags of corp %s: %w", s.corp, err))
			return
		}
		for t, err := range fanOut(ctx, list, s.conc, func(ctx context.Context, ts wecom.TagSummary) (*mirror.Tag, error) {
			g, err := s.c.GetTag(ctx, ts.TagID)
			if err != nil {
				if errors.Is(classify(err), mirror.ErrNotFound) {
					return nil, nil
				}
				return nil, fmt.Errorf("reading tag %d of corp %s: %w", ts.TagID, s.corp, err)
			}
			t := &mirror.Tag{ID: int64(ts.TagID), Name: ts.TagName}
			for _, u := range g.UserList {
				t.UserIDs = append(t.UserIDs, u.UserID)
			}
			for _, p := range g.PartyList {
				t.Departments = append(t.Departments, int64(p))
			}
			return t, nil
		}) {
			if t == nil && err == nil {
				continue
			}
			if !yield(t, err) || err != nil {
				return
			}
		}
	}
}

// fanOut calls f for every key with at most n calls at a time and yields the results in
// key order (so a sync is deterministic). It stops at the first error, or when the
// consumer stops, cancelling the calls in flight.
func fanOut[K, V any](ctx context.Context, keys []K, n int, f func(context.Context, K) (V, error)) iter.Seq2[V, error] {
	return func(yield func(V, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		type result struct {
			v   V
			err error
		}
		// Each key gets a one-slot channel; a window of n keys runs ahead of the consumer,
		// which bounds memory as well as concurrency.
		slots := make([]chan result, len(keys))
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		start := func(i int) {
			slots[i] = make(chan result, 1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := f(ctx, keys[i])
				slots[i] <- result{v, err}
			}()
		}
		next := 0
		for ; next < len(keys) && next < n; next++ {
			start(next)
		}
		for i := range keys {
			r := <-slots[i]
			slots[i] = nil
			if next < len(keys) {
				start(next)
				next++
			}
			if !yield(r.v, r.err) || r.err != nil {
				return
			}
		}
	}
}
