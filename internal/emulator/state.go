package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// State is the whole directory of one corp in a stable JSON shape, served by
// GET /admin/state and used as the -state file:
//
//	{"corp_id":"...",
//	 "users":[{user/get fields: "userid","name",...,"department":[..],"order":[..],
//	           "is_leader_in_dept":[..],"direct_leader":[..],"main_department":N,"extattr":{...}}],
//	 "departments":[{"id","name","name_en","parentid","order","department_leader":[..]}],
//	 "tags":[{"tagid","tagname","users":[userids],"parties":[department ids]}]}
//
// Users are sorted by lowercase userid, departments by id, tags by tagid; lists inside
// tags and department_leader are sorted too, so two States compare with a plain equality.
type State struct {
	CorpID      string       `json:"corp_id"`
	Users       []*User      `json:"users"`
	Departments []Department `json:"departments"`
	Tags        []Tag        `json:"tags"`
}

// Snapshot returns the directory as a State. It holds the read lock while copying
// pointers (members are immutable), so it is cheap even for 200,000 members.
func (d *Directory) Snapshot() State {
	d.mu.RLock()
	defer d.mu.RUnlock()
	st := State{CorpID: d.corpID, Users: make([]*User, 0, len(d.users)), Departments: make([]Department, 0, len(d.depts))}
	keys := make([]string, 0, len(d.users))
	for k := range d.users {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		st.Users = append(st.Users, d.users[k])
	}
	ids := make([]int, 0, len(d.depts))
	for id := range d.depts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		st.Departments = append(st.Departments, d.withLeaders(d.depts[id]))
	}
	st.Tags = make([]Tag, 0, len(d.tags))
	for _, t := range d.tags {
		st.Tags = append(st.Tags, d.tagView(t))
	}
	slices.SortFunc(st.Tags, func(a, b Tag) int { return a.TagID - b.TagID })
	return st
}

// Load replaces the directory's content with st. It checks that the root exists and that
// every parent and member department is known, and returns an error (changing nothing)
// otherwise. No events are recorded.
func (d *Directory) Load(st State) error {
	deps := map[int]Department{}
	for _, dep := range st.Departments {
		deps[dep.ID] = dep
	}
	if _, ok := deps[rootDepartmentID]; !ok {
		return errors.New("state has no root department 1")
	}
	for _, dep := range st.Departments {
		if _, ok := deps[dep.ParentID]; dep.ID != rootDepartmentID && !ok {
			return fmt.Errorf("department %d has unknown parent %d", dep.ID, dep.ParentID)
		}
	}
	for _, u := range st.Users {
		for _, id := range u.Departments {
			if _, ok := deps[id]; !ok {
				return fmt.Errorf("user %s is in unknown department %d", u.UserID, id)
			}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reset()
	// Parents first, so children attach to them.
	pending := slices.Clone(st.Departments)
	slices.SortFunc(pending, func(a, b Department) int { return depthIn(deps, a.ID) - depthIn(deps, b.ID) })
	for _, dep := range pending {
		d.insertDept(dep)
	}
	for _, u := range st.Users {
		cp := *u
		if cp.DirectLeader == nil {
			cp.DirectLeader = []string{}
		}
		if cp.ExtAttr.Attrs == nil {
			cp.ExtAttr.Attrs = []ExtAttrItem{}
		}
		d.insertUser(&cp)
	}
	for _, t := range st.Tags {
		d.insertTag(t)
	}
	return nil
}

func depthIn(deps map[int]Department, id int) int {
	n := 0
	for id != 0 && n < 100 {
		n++
		id = deps[id].ParentID
	}
	return n
}

// SaveFile writes the directory's State to path atomically (temp file + rename).
func (d *Directory) SaveFile(path string) error {
	st := d.Snapshot()
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("creating state file: %w", err)
	}
	defer os.Remove(tmp.Name())
	enc := json.NewEncoder(tmp)
	if err := enc.Encode(st); err != nil {
		tmp.Close()
		return fmt.Errorf("writing state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("renaming state file: %w", err)
	}
	return nil
}

// LoadFile loads a State written by SaveFile. It returns (false, nil) when the file does
// not exist, and an error when it is unreadable, malformed or for another corp.
func (d *Directory) LoadFile(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("opening state file: %w", err)
	}
	defer f.Close()
	var st State
	if err := json.NewDecoder(f).Decode(&st); err != nil {
		return false, fmt.Errorf("decoding state file %s: %w", path, err)
	}
	if st.CorpID != "" && !strings.EqualFold(st.CorpID, d.corpID) {
		return false, fmt.Errorf("state file %s is for corp %s, not %s", path, st.CorpID, d.corpID)
	}
	if err := d.Load(st); err != nil {
		return false, fmt.Errorf("loading state file %s: %w", path, err)
	}
	return true, nil
}
