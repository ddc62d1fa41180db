package jobs

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

// Import modes of a member import.
const (
	ModeSync    = "sync"    // batch/syncuser: create and update, never delete
	ModeReplace = "replace" // batch/replaceuser: the file is the whole directory
)

// DefaultMaxDeleteShare is the share of members a replace import may delete without
// --allow-deletes (WORKER_IMPORT_MAX_DELETE_SHARE). WeCom's own guard (45026) only stops
// deletions above 20% (or 80% of small corps); ours is stricter.
const DefaultMaxDeleteShare = 0.10

// validUserID reports whether s is a valid WeCom userid: 1–64 bytes of [0-9A-Za-z_-@.],
// starting with a letter or digit.
func validUserID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
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

// validMobile accepts what WeCom does for 手机号: digits with an optional "+cc-" prefix.
func validMobile(s string) bool {
	s = strings.TrimPrefix(s, "+")
	if i := strings.IndexByte(s, '-'); i > 0 && i <= 4 {
		s = s[i+1:]
	}
	if len(s) < 5 || len(s) > 20 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func validEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && at < len(s)-1 && !strings.ContainsAny(s, " ,;") && len(s) <= 64 &&
		strings.Contains(s[at+1:], ".")
}

// UserCheckOptions tunes ValidateUsers.
type UserCheckOptions struct {
	// ExtraDepartments are department ids that will exist when the import runs although
	// the mirror does not have them yet (e.g. created by a department import before it).
	ExtraDepartments []int64
}

// ValidateUsers checks the rows of f against the WeCom rules and the mirror of corpID,
// and returns every problem with its line: userids (1–64 bytes of [0-9A-Za-z_-@.],
// first character a letter or digit, unique case-insensitively), names (1–64
// characters), departments (given, and known to the mirror or in opts), mobile/email
// (well-formed, unique in the file and not used by another member in the mirror, and
// one of them given for a member the mirror does not have), is_leader/order arity. It
// blocks on two or three mirror queries.
func ValidateUsers(ctx context.Context, view *MirrorView, corpID string, f *UserFile, opts UserCheckOptions) ([]Problem, error) {
	var probs []Problem
	bad := func(r *UserRow, col, format string, a ...any) {
		probs = append(probs, Problem{Line: r.Line, Column: col, Message: fmt.Sprintf(format, a...)})
	}
	depts, err := view.Departments(ctx, corpID)
	if err != nil {
		return nil, err
	}
	for _, d := range opts.ExtraDepartments {
		depts[d] = MirrorDepartment{ID: d}
	}
	ids := make([]string, 0, len(f.Rows))
	var mobiles, emails []string
	for i := range f.Rows {
		ids = append(ids, f.Rows[i].UserID)
		if m := f.Rows[i].Mobile; m != "" {
			mobiles = append(mobiles, m)
		}
		if e := f.Rows[i].Email; e != "" {
			emails = append(emails, strings.ToLower(e))
		}
	}
	existing, err := view.UsersByID(ctx, corpID, ids)
	if err != nil {
		return nil, err
	}
	mobileOwner, emailOwner, err := view.ContactOwners(ctx, corpID, mobiles, emails)
	if err != nil {
		return nil, err
	}
	firstID := make(map[string]int, len(f.Rows))
	firstMobile := map[string]int{}
	firstEmail := map[string]int{}
	for i := range f.Rows {
		r := &f.Rows[i]
		low := strings.ToLower(r.UserID)
		switch {
		case r.UserID == "":
			bad(r, ColUserID, "userid (帐号) is empty")
		case len(r.UserID) > 64:
			bad(r, ColUserID, "userid %q is longer than 64 bytes", r.UserID)
		case !validUserID(r.UserID):
			bad(r, ColUserID, "userid %q may only contain letters, digits and _-@. and must start with a letter or digit", r.UserID)
		}
		if r.UserID != "" {
			if l, dup := firstID[low]; dup {
				bad(r, ColUserID, "userid %q repeats line %d (userids are case-insensitive)", r.UserID, l)
			} else {
				firstID[low] = r.Line
			}
		}
		if n := utf8.RuneCountInString(r.Name); f.Has(ColName) && n == 0 {
			bad(r, ColName, "name (姓名) is empty")
		} else if n > 64 {
			bad(r, ColName, "name is %d characters long, at most 64 are allowed", n)
		}
		if f.Has(ColDepartment) && len(r.Departments) == 0 {
			bad(r, ColDepartment, "no department (所在部门) given")
		}
		if len(r.Departments) > 100 {
			bad(r, ColDepartment, "%d departments, at most 100 are allowed", len(r.Departments))
		}
		seenDept := map[int64]bool{}
		for _, d := range r.Departments {
			if seenDept[d] {
				bad(r, ColDepartment, "department %d listed twice", d)
			}
			seenDept[d] = true
			if _, ok := depts[d]; !ok {
				bad(r, ColDepartment, "department %d does not exist (not in the mirror nor in this import)", d)
			}
		}
		if len(r.IsLeader) > 0 && len(r.IsLeader) != len(r.Departments) {
			bad(r, ColIsLeader, "%d is_leader values for %d departments", len(r.IsLeader), len(r.Departments))
		}
		if len(r.Order) > 1 && len(r.Order) != len(r.Departments) {
			bad(r, ColOrder, "%d order values for %d departments", len(r.Order), len(r.Departments))
		}
		if r.Mobile != "" {
			if !validMobile(r.Mobile) {
				bad(r, ColMobile, "mobile %q is not a phone number", r.Mobile)
			}
			if l, dup := firstMobile[r.Mobile]; dup {
				bad(r, ColMobile, "mobile %s is also on line %d", r.Mobile, l)
			} else {
				firstMobile[r.Mobile] = r.Line
			}
			if o, ok := mobileOwner[r.Mobile]; ok && !strings.EqualFold(o, r.UserID) && !movesAway(f, o, ColMobile) {
				bad(r, ColMobile, "mobile %s belongs to member %s", r.Mobile, o)
			}
		}
		if r.Email != "" {
			le := strings.ToLower(r.Email)
			if !validEmail(r.Email) {
				bad(r, ColEmail, "email %q is not an email address", r.Email)
			}
			if l, dup := firstEmail[le]; dup {
				bad(r, ColEmail, "email %s is also on line %d", r.Email, l)
			} else {
				firstEmail[le] = r.Line
			}
			if o, ok := emailOwner[le]; ok && !strings.EqualFold(o, r.UserID) && !movesAway(f, o, ColEmail) {
				bad(r, ColEmail, "email %s belongs to member %s", r.Email, o)
			}
		}
		if _, known := existing[low]; !known && r.UserID != "" && r.Mobile == "" && r.Email == "" {
			bad(r, "mobile/email", "new member %s needs a mobile or an email", r.UserID)
		}
	}
	slices.SortStableFunc(probs, func(a, b Problem) int { return a.Line - b.Line })
	return probs, nil
}

// movesAway reports whether the file gives member owner a different value in col (so the
// value it holds in the mirror is freed by the same import). Rare; a linear scan.
func movesAway(f *UserFile, owner, col string) bool {
	if !f.Has(col) {
		return false
	}
	for i := range f.Rows {
		if strings.EqualFold(f.Rows[i].UserID, owner) {
			return true // its row sets col (to something else, or we would not be here)
		}
	}
	return false
}

// Plan is what an import would do, diffed against the mirror: counts and the first
// entries of each kind.
type Plan struct {
	Mode    string   `json:"mode"`
	Create  int      `json:"create"`
	Update  int      `json:"update"`
	Same    int      `json:"unchanged"`
	Delete  int      `json:"delete"`
	Members int      `json:"members_now"`
	Creates []string `json:"creates,omitempty"`
	Updates []string `json:"updates,omitempty"`
	Deletes []string `json:"deletes,omitempty"`
	// Kept lists departments a replaceparty keeps although the file lacks them (they
	// still have members).
	Kept []string `json:"kept,omitempty"`
}

// PlanUsers diffs f against the mirror: creates, updates (with the changed columns) and,
// for ModeReplace, the members that would be deleted; each list holds at most sample
// entries.
func PlanUsers(ctx context.Context, view *MirrorView, corpID, mode string, f *UserFile, sample int) (*Plan, error) {
	ids := make([]string, len(f.Rows))
	keep := make([]string, len(f.Rows))
	for i := range f.Rows {
		ids[i] = f.Rows[i].UserID
		keep[i] = strings.ToLower(f.Rows[i].UserID)
	}
	existing, err := view.UsersByID(ctx, corpID, ids)
	if err != nil {
		return nil, err
	}
	p := &Plan{Mode: mode}
	for i := range f.Rows {
		r := &f.Rows[i]
		m, ok := existing[strings.ToLower(r.UserID)]
		if !ok {
			p.Create++
			if len(p.Creates) < sample {
				p.Creates = append(p.Creates, fmt.Sprintf("%s (%s)", r.UserID, r.Name))
			}
			continue
		}
		if diff := diffUser(f, r, &m); len(diff) > 0 {
			p.Update++
			if len(p.Updates) < sample {
				p.Updates = append(p.Updates, r.UserID+": "+strings.Join(diff, ", "))
			}
		} else {
			p.Same++
		}
	}
	n, total, first, err := view.UsersNotIn(ctx, corpID, keep, sample)
	if err != nil {
		return nil, err
	}
	p.Members = total
	if mode == ModeReplace {
		p.Delete, p.Deletes = n, first
	}
	return p, nil
}

// diffUser lists the columns of the file whose value differs from the mirror's.
func diffUser(f *UserFile, r *UserRow, m *MirrorUser) []string {
	var d []string
	cmp := func(col, file, mirror string) {
		if f.Has(col) && file != mirror {
			d = append(d, fmt.Sprintf("%s %q→%q", col, mirror, file))
		}
	}
	cmp(ColName, r.Name, m.Name)
	cmp(ColMobile, r.Mobile, m.Mobile)
	cmp(ColEmail, r.Email, m.Email)
	cmp(ColPosition, r.Position, m.Position)
	cmp(ColAlias, r.Alias, m.Alias)
	cmp(ColAddress, r.Address, m.Address)
	cmp(ColTelephone, r.Telephone, m.Telephone)
	if f.Has(ColGender) && r.Gender != "" && r.Gender != m.Gender {
		d = append(d, fmt.Sprintf("gender %q→%q", m.Gender, r.Gender))
	}
	if f.Has(ColDepartment) {
		got := slices.Clone(r.Departments)
		slices.Sort(got)
		if !slices.Equal(got, m.Departments) {
			d = append(d, fmt.Sprintf("department %s→%s", joinInts(m.Departments), joinInts(got)))
		}
	}
	if f.Has(ColDisabled) && r.Disabled != nil && *r.Disabled != (m.Status == 2) {
		d = append(d, fmt.Sprintf("disabled→%v", *r.Disabled))
	}
	return d
}

// DeletionGuard decides whether a replace import may delete planned members: with
// AllowDeletes >= 0 up to that many; otherwise up to MaxShare of the current members
// (rounded down). It returns an error saying how to proceed when it refuses.
type DeletionGuard struct {
	MaxShare     float64
	AllowDeletes int // -1 = not given
}

// Check returns nil when plan's deletions are allowed.
func (g DeletionGuard) Check(p *Plan) error {
	if p.Delete == 0 {
		return nil
	}
	if g.AllowDeletes >= 0 {
		if p.Delete > g.AllowDeletes {
			return fmt.Errorf("replace would delete %d members, more than --allow-deletes %d", p.Delete, g.AllowDeletes)
		}
		return nil
	}
	limit := int(math.Floor(g.MaxShare * float64(p.Members)))
	if p.Delete > limit {
		return fmt.Errorf("replace would delete %d of %d members (%.1f%%), more than the allowed %.0f%% (%d); check the file, then pass --allow-deletes %d to confirm",
			p.Delete, p.Members, 100*float64(p.Delete)/float64(max(p.Members, 1)), 100*g.MaxShare, limit, p.Delete)
	}
	return nil
}

// ValidateDepartments checks a department import (a replaceparty, the whole tree): ids
// positive and unique, names 1–64 characters without \:*?"<>| and unique among siblings,
// every parent in the file or the root (1), no cycles. Departments of the mirror missing
// from the file are only deleted by WeCom when empty; PlanDepartments reports both.
func ValidateDepartments(rows []DepartmentRow) []Problem {
	var probs []Problem
	bad := func(r *DepartmentRow, col, format string, a ...any) {
		probs = append(probs, Problem{Line: r.Line, Column: col, Message: fmt.Sprintf(format, a...)})
	}
	byID := make(map[int64]*DepartmentRow, len(rows))
	siblings := map[string]int{}
	for i := range rows {
		r := &rows[i]
		if r.ID < 1 {
			bad(r, ColDeptID, "department id must be a positive number")
		} else if o, dup := byID[r.ID]; dup {
			bad(r, ColDeptID, "department id %d repeats line %d", r.ID, o.Line)
		} else {
			byID[r.ID] = r
		}
		switch n := utf8.RuneCountInString(r.Name); {
		case n == 0:
			bad(r, ColDeptName, "name (部门名称) is empty")
		case n > 64:
			bad(r, ColDeptName, "name is %d characters long, at most 64 are allowed", n)
		case strings.ContainsAny(r.Name, `\:*?"<>|`):
			bad(r, ColDeptName, `name %q contains one of \:*?"<>|`, r.Name)
		}
		if r.ID != 1 && r.ParentID < 1 {
			bad(r, ColDeptParent, "parent id (父部门ID) must be given")
		}
		if r.Name != "" && r.ID != 1 {
			k := fmt.Sprintf("%d/%s", r.ParentID, r.Name)
			if l, dup := siblings[k]; dup {
				bad(r, ColDeptName, "name %q is also used under parent %d on line %d", r.Name, r.ParentID, l)
			} else {
				siblings[k] = r.Line
			}
		}
	}
	for i := range rows {
		r := &rows[i]
		if r.ID == 1 || r.ParentID < 1 {
			continue
		}
		if _, ok := byID[r.ParentID]; !ok && r.ParentID != 1 {
			bad(r, ColDeptParent, "parent %d is not in the file", r.ParentID)
			continue
		}
		// Walk up; a walk longer than the file is a cycle.
		p, steps := r.ParentID, 0
		for p != 1 && steps <= len(rows) {
			pr, ok := byID[p]
			if !ok {
				break
			}
			p, steps = pr.ParentID, steps+1
		}
		if steps > len(rows) {
			bad(r, ColDeptParent, "department %d is its own ancestor", r.ID)
		}
	}
	slices.SortStableFunc(probs, func(a, b Problem) int { return a.Line - b.Line })
	return probs
}

// PlanDepartments diffs a department import against the mirror.
func PlanDepartments(ctx context.Context, view *MirrorView, corpID string, rows []DepartmentRow, sample int) (*Plan, error) {
	depts, err := view.Departments(ctx, corpID)
	if err != nil {
		return nil, err
	}
	p := &Plan{Mode: "replace"}
	inFile := make(map[int64]bool, len(rows))
	for _, r := range rows {
		inFile[r.ID] = true
		m, ok := depts[r.ID]
		switch {
		case !ok:
			p.Create++
			if len(p.Creates) < sample {
				p.Creates = append(p.Creates, fmt.Sprintf("%d %s (parent %d)", r.ID, r.Name, r.ParentID))
			}
		case m.Name != r.Name || m.ParentID != r.ParentID && r.ID != 1 || r.Order != 0 && m.Order != r.Order:
			p.Update++
			if len(p.Updates) < sample {
				p.Updates = append(p.Updates, fmt.Sprintf("%d %q parent %d → %q parent %d", r.ID, m.Name, m.ParentID, r.Name, r.ParentID))
			}
		default:
			p.Same++
		}
	}
	ids := make([]int64, 0, len(depts))
	for id := range depts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if inFile[id] || id == 1 {
			continue
		}
		d := depts[id]
		if d.Members > 0 {
			if len(p.Kept) < sample {
				p.Kept = append(p.Kept, fmt.Sprintf("%d %s (%d members)", id, d.Name, d.Members))
			}
			continue
		}
		p.Delete++
		if len(p.Deletes) < sample {
			p.Deletes = append(p.Deletes, fmt.Sprintf("%d %s", id, d.Name))
		}
	}
	p.Members = len(depts)
	return p, nil
}
