package emulator

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Limits enforced by the directory (API-FACTS §3.2–3.4).
const (
	maxDeptDepth        = 15
	maxUserDepartments  = 100
	maxTagMembers       = 30000
	maxDirectLeaders    = 5
	rootDepartmentID    = 1
	maxBatchDeleteUsers = 200
)

// Directory is one corp's contact directory in memory: users, a department tree rooted at
// id 1, and tags. All methods are safe for concurrent use; reads share an RWMutex, writes
// go through Update (or the one-call wrappers) and are serialised. It is built for
// 200,000 users: lookups are map based and no write scans all users.
type Directory struct {
	mu       sync.RWMutex
	corpID   string
	users    map[string]*User  // key: lower(userid)
	mobiles  map[string]string // mobile -> user key
	emails   map[string]string // lower(email) -> user key
	openids  map[string]string // openid (convert_to_openid) -> user key
	depts    map[int]*deptNode
	tags     map[int]*tagNode
	maxDept  int
	maxTag   int
	sortMu   sync.Mutex // guards sorted/sortedDirty while d.mu is held for reading
	sorted   []string   // user keys in order, for user/list_id cursors
	sortDirt bool
}

type deptNode struct {
	dept     Department // DepartmentLeader is not stored; it is derived on read
	children map[int]struct{}
	members  map[string]struct{} // user keys with this department (direct members)
}

type tagNode struct {
	id      int
	name    string
	users   map[string]struct{} // user keys
	parties map[int]struct{}
}

// NewDirectory returns a directory for corpID holding only the root department (id 1,
// named after the corp).
func NewDirectory(corpID, rootName string) *Directory {
	d := &Directory{corpID: corpID}
	d.reset()
	d.insertDept(Department{ID: rootDepartmentID, Name: rootName, ParentID: 0, Order: 100000000})
	return d
}

func (d *Directory) reset() {
	d.users = make(map[string]*User)
	d.mobiles = make(map[string]string)
	d.emails = make(map[string]string)
	d.openids = make(map[string]string)
	d.depts = make(map[int]*deptNode)
	d.tags = make(map[int]*tagNode)
	d.maxDept, d.maxTag = 0, 0
	d.sorted, d.sortDirt = nil, true
}

// CorpID returns the corp id the directory belongs to.
func (d *Directory) CorpID() string { return d.corpID }

// Tx is the write view of a Directory inside Update. Its methods validate like WeCom and
// return an *APIError (and change nothing) when the input is invalid; on success they
// apply the change and record its ChangeEvents. A Tx must not be used after Update returns.
type Tx struct {
	d      *Directory
	events []ChangeEvent
}

// Update runs fn with the directory locked for writing and returns the events of every
// change fn applied, plus fn's error. It is not atomic: changes applied before fn fails
// stay applied (a bulk import reports per-row errors and carries on). It blocks readers
// for the duration of fn.
func (d *Directory) Update(fn func(tx *Tx) error) ([]ChangeEvent, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	tx := &Tx{d: d}
	err := fn(tx)
	return tx.events, err
}

// UpdateNotify is Update, but hands the events to notify before releasing the lock, so
// the events of concurrent writers are queued in the order their changes were applied.
// notify must not block (Server.Notify only enqueues) and must not use the Directory.
func (d *Directory) UpdateNotify(fn func(tx *Tx) error, notify func([]ChangeEvent)) ([]ChangeEvent, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	tx := &Tx{d: d}
	err := fn(tx)
	if len(tx.events) > 0 && notify != nil {
		notify(tx.events)
	}
	return tx.events, err
}

// CreateUser creates a member (see Tx.CreateUser) and returns its events.
func (d *Directory) CreateUser(in UserInput) ([]ChangeEvent, error) {
	return d.Update(func(tx *Tx) error { return tx.CreateUser(in) })
}

// UpdateUser updates a member (see Tx.UpdateUser) and returns its events.
func (d *Directory) UpdateUser(in UserInput) ([]ChangeEvent, error) {
	return d.Update(func(tx *Tx) error { return tx.UpdateUser(in) })
}

// DeleteUsers deletes members (see Tx.DeleteUsers) and returns their events.
func (d *Directory) DeleteUsers(userids ...string) ([]ChangeEvent, error) {
	return d.Update(func(tx *Tx) error { return tx.DeleteUsers(userids...) })
}

// ---- reads ----

// User returns the member with userid (case-insensitive) and whether it exists.
func (d *Directory) User(userid string) (*User, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	u, ok := d.users[lower(userid)]
	return u, ok
}

// UserCount returns the number of members.
func (d *Directory) UserCount() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.users)
}

// CountStatus returns the number of members with this status.
func (d *Directory) CountStatus(status int) int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := 0
	for _, u := range d.users {
		if u.Status == status {
			n++
		}
	}
	return n
}

// UserByMobile returns the member with this mobile.
func (d *Directory) UserByMobile(mobile string) (*User, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	k, ok := d.mobiles[mobile]
	if !ok {
		return nil, false
	}
	return d.users[k], true
}

// UserByEmail returns the member with this email (or biz_mail), case-insensitive.
func (d *Directory) UserByEmail(email string) (*User, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	k, ok := d.emails[lower(email)]
	if !ok {
		return nil, false
	}
	return d.users[k], true
}

// UserByOpenID returns the member whose convert_to_openid value is openid.
func (d *Directory) UserByOpenID(openid string) (*User, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	k, ok := d.openids[openid]
	if !ok {
		return nil, false
	}
	return d.users[k], true
}

// Department returns the department with its derived leaders, and whether it exists.
func (d *Directory) Department(id int) (Department, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	n, ok := d.depts[id]
	if !ok {
		return Department{}, false
	}
	return d.withLeaders(n), true
}

// Departments returns department id and all its descendants (id 0 = the whole tree) in
// tree order (parents before children, siblings by descending order then id), with
// derived leaders; ok is false when id does not exist.
func (d *Directory) Departments(id int) (out []Department, ok bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if id == 0 {
		id = rootDepartmentID
	}
	if _, ok := d.depts[id]; !ok {
		return nil, false
	}
	for _, did := range d.subtree(id) {
		out = append(out, d.withLeaders(d.depts[did]))
	}
	return out, true
}

// DepartmentUsers returns the direct members of department id, or of its whole subtree
// when fetchChild, each once, sorted by userid; ok is false when id does not exist.
func (d *Directory) DepartmentUsers(id int, fetchChild bool) (out []*User, ok bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	n, ok := d.depts[id]
	if !ok {
		return nil, false
	}
	var keys []string
	if !fetchChild {
		keys = make([]string, 0, len(n.members))
		for k := range n.members {
			keys = append(keys, k)
		}
	} else {
		seen := make(map[string]struct{})
		for _, did := range d.subtree(id) {
			for k := range d.depts[did].members {
				if _, dup := seen[k]; !dup {
					seen[k] = struct{}{}
					keys = append(keys, k)
				}
			}
		}
	}
	sort.Strings(keys)
	out = make([]*User, len(keys))
	for i, k := range keys {
		out[i] = d.users[k]
	}
	return out, true
}

// DeptUser is one user/list_id row: a member and one of its departments.
type DeptUser struct {
	UserID     string `json:"userid"`
	Department int    `json:"department"`
}

// ListIDs returns up to limit (member, department) rows after cursor in a stable order
// (by lowercase userid, then the member's department order) and the cursor of the next
// page, "" when done. An unparsable cursor is a 40058 *APIError.
func (d *Directory) ListIDs(cursor string, limit int) ([]DeptUser, string, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	startKey, startIdx := "", 0
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		k, idx, found := strings.Cut(string(raw), "\x00")
		n, aerr := strconv.Atoi(idx)
		if err != nil || !found || aerr != nil {
			return nil, "", apiErr(CodeInvalidParameter, "invalid cursor")
		}
		startKey, startIdx = k, n
	}
	d.sortMu.Lock()
	if d.sortDirt {
		d.sorted = d.sorted[:0]
		for k := range d.users {
			d.sorted = append(d.sorted, k)
		}
		sort.Strings(d.sorted)
		d.sortDirt = false
	}
	sorted := d.sorted
	d.sortMu.Unlock()
	i := sort.SearchStrings(sorted, startKey)
	if i < len(sorted) && sorted[i] != startKey {
		startIdx = 0 // the cursor's member is gone: continue with the next one
	}
	rows := make([]DeptUser, 0, min(limit, 1024))
	for ; i < len(sorted); i++ {
		u := d.users[sorted[i]]
		for j := startIdx; j < len(u.Departments); j++ {
			if len(rows) == limit {
				next := base64.RawURLEncoding.EncodeToString([]byte(sorted[i] + "\x00" + strconv.Itoa(j)))
				return rows, next, nil
			}
			rows = append(rows, DeptUser{UserID: u.UserID, Department: u.Departments[j]})
		}
		startIdx = 0
	}
	return rows, "", nil
}

// Tags returns all tags sorted by id, members included.
func (d *Directory) Tags() []Tag {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]Tag, 0, len(d.tags))
	for _, t := range d.tags {
		out = append(out, d.tagView(t))
	}
	slices.SortFunc(out, func(a, b Tag) int { return a.TagID - b.TagID })
	return out
}

// Tag returns one tag with its members, and whether it exists.
func (d *Directory) Tag(id int) (Tag, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	t, ok := d.tags[id]
	if !ok {
		return Tag{}, false
	}
	return d.tagView(t), true
}

func (d *Directory) tagView(t *tagNode) Tag {
	v := Tag{TagID: t.id, TagName: t.name, Users: make([]string, 0, len(t.users)), Parties: make([]int, 0, len(t.parties))}
	for k := range t.users {
		v.Users = append(v.Users, d.users[k].UserID)
	}
	for p := range t.parties {
		v.Parties = append(v.Parties, p)
	}
	sort.Strings(v.Users)
	sort.Ints(v.Parties)
	return v
}

// withLeaders returns the department with DepartmentLeader derived from its members.
func (d *Directory) withLeaders(n *deptNode) Department {
	dep := n.dept
	dep.DepartmentLeader = []string{}
	for k := range n.members {
		u := d.users[k]
		for i, id := range u.Departments {
			if id == dep.ID && i < len(u.IsLeaderInDept) && u.IsLeaderInDept[i] == 1 {
				dep.DepartmentLeader = append(dep.DepartmentLeader, u.UserID)
			}
		}
	}
	sort.Strings(dep.DepartmentLeader)
	return dep
}

// subtree returns id and its descendants, parents first, siblings by order desc then id.
func (d *Directory) subtree(id int) []int {
	out := []int{id}
	for i := 0; i < len(out); i++ {
		out = append(out, d.sortedChildren(out[i])...)
	}
	return out
}

func (d *Directory) sortedChildren(id int) []int {
	n := d.depts[id]
	kids := make([]int, 0, len(n.children))
	for c := range n.children {
		kids = append(kids, c)
	}
	slices.SortFunc(kids, func(a, b int) int {
		oa, ob := d.depts[a].dept.Order, d.depts[b].dept.Order
		if oa != ob {
			if oa > ob {
				return -1
			}
			return 1
		}
		return a - b
	})
	return kids
}

func (d *Directory) depth(id int) int {
	n := 0
	for id != 0 {
		n++
		id = d.depts[id].dept.ParentID
	}
	return n
}

func (d *Directory) height(id int) int {
	h := 0
	for c := range d.depts[id].children {
		h = max(h, d.height(c))
	}
	return h + 1
}

func (d *Directory) isDescendant(id, ancestor int) bool {
	for id != 0 {
		if id == ancestor {
			return true
		}
		id = d.depts[id].dept.ParentID
	}
	return false
}

// ---- raw inserts (no validation; used by seeding and state loading) ----

func (d *Directory) insertDept(dep Department) {
	dep.DepartmentLeader = nil
	d.depts[dep.ID] = &deptNode{dept: dep, children: map[int]struct{}{}, members: map[string]struct{}{}}
	if p, ok := d.depts[dep.ParentID]; ok && dep.ID != dep.ParentID {
		p.children[dep.ID] = struct{}{}
	}
	d.maxDept = max(d.maxDept, dep.ID)
}

func (d *Directory) insertUser(u *User) {
	if u.OpenUserID == "" {
		u.OpenUserID = openUserID(d.corpID, u.UserID)
	}
	d.index(u)
}

func (d *Directory) insertTag(t Tag) {
	n := &tagNode{id: t.TagID, name: t.TagName, users: map[string]struct{}{}, parties: map[int]struct{}{}}
	for _, u := range t.Users {
		if _, ok := d.users[lower(u)]; ok {
			n.users[lower(u)] = struct{}{}
		}
	}
	for _, p := range t.Parties {
		if _, ok := d.depts[p]; ok {
			n.parties[p] = struct{}{}
		}
	}
	d.tags[t.TagID] = n
	d.maxTag = max(d.maxTag, t.TagID)
}

// index adds u to the user map and every secondary index.
func (d *Directory) index(u *User) {
	k := lower(u.UserID)
	d.users[k] = u
	if u.Mobile != "" {
		d.mobiles[u.Mobile] = k
	}
	if u.Email != "" {
		d.emails[lower(u.Email)] = k
	}
	if u.BizMail != "" {
		d.emails[lower(u.BizMail)] = k
	}
	d.openids[openID(d.corpID, u.OpenUserID)] = k
	for _, id := range u.Departments {
		if n, ok := d.depts[id]; ok {
			n.members[k] = struct{}{}
		}
	}
	d.sortDirt = true
}

// unindex removes u from the user map and every secondary index (not from tags).
func (d *Directory) unindex(u *User) {
	k := lower(u.UserID)
	delete(d.users, k)
	if u.Mobile != "" && d.mobiles[u.Mobile] == k {
		delete(d.mobiles, u.Mobile)
	}
	for _, e := range []string{u.Email, u.BizMail} {
		if e != "" && d.emails[lower(e)] == k {
			delete(d.emails, lower(e))
		}
	}
	delete(d.openids, openID(d.corpID, u.OpenUserID))
	for _, id := range u.Departments {
		if n, ok := d.depts[id]; ok {
			delete(n.members, k)
		}
	}
	d.sortDirt = true
}

// openUserID derives a stable open_userid for a member.
func openUserID(corpID, userid string) string {
	h := sha1.Sum([]byte("open_userid|" + corpID + "|" + lower(userid)))
	return "wo" + hex.EncodeToString(h[:])[:30]
}

// openID derives the convert_to_openid value from the member's open_userid, so it survives
// a userid change.
func openID(corpID, openUserID string) string {
	h := sha1.Sum([]byte("openid|" + corpID + "|" + openUserID))
	return "oDjGHs-" + base64.RawURLEncoding.EncodeToString(h[:])[:21]
}

// OpenID returns the openid convert_to_openid answers for u.
func (d *Directory) OpenID(u *User) string { return openID(d.corpID, u.OpenUserID) }

// ---- validation helpers ----

func validUserID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !alnum {
			return false
		}
		if !alnum && c != '_' && c != '-' && c != '@' && c != '.' {
			return false
		}
	}
	return true
}

func validMobile(s string) bool {
	if len(s) > 32 || len(s) < 5 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == ' ') {
			return false
		}
	}
	return true
}

func validEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	return len(s) >= 6 && len(s) <= 64 && at > 0 && at < len(s)-1 && strings.Count(s, "@") == 1 && !strings.ContainsAny(s, " ,;")
}

func validTelephone(s string) bool {
	if len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == ',') {
			return false
		}
	}
	return true
}

func runeLen(s string) int { return utf8.RuneCountInString(s) }
