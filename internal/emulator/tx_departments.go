package emulator

import (
	"strings"
)

const deptNameForbidden = `\:*?"<>|`

// CreateDepartment validates in like department/create and adds the department, returning
// its id (in.ID when given, else the largest id so far + 1). Errors (*APIError): 60001
// name empty or longer than 32 characters, 60009 forbidden character, 60004 parent
// missing or unknown, 60123 id not > 1, 60008 id taken or a sibling has the same
// name/name_en, 81002 deeper than 15 levels.
func (tx *Tx) CreateDepartment(in DepartmentInput) (int, error) {
	d := tx.d
	if in.Name == nil {
		return 0, apiErr(CodeDeptNameLength, "invalid department name length")
	}
	if err := checkDeptName(*in.Name); err != nil {
		return 0, err
	}
	if in.ParentID == nil {
		return 0, apiErr(CodeParentNotFound, "parent department not found")
	}
	parent := in.ParentID.Int()
	if _, ok := d.depts[parent]; !ok {
		return 0, apiErr(CodeParentNotFound, "parent department not found")
	}
	id := d.maxDept + 1
	if in.ID != nil && *in.ID != 0 {
		id = in.ID.Int()
		if id <= rootDepartmentID {
			return 0, apiErr(CodeInvalidDeptID, "invalid department id")
		}
		if _, ok := d.depts[id]; ok {
			return 0, apiErr(CodeDeptExists, "department existed")
		}
	}
	if d.depth(parent)+1 > maxDeptDepth {
		return 0, apiErr(CodeDeptTooDeep, "department depth exceed limit")
	}
	nameEn := ""
	if in.NameEn != nil {
		nameEn = *in.NameEn
	}
	if err := d.checkSiblings(parent, 0, *in.Name, nameEn); err != nil {
		return 0, err
	}
	dep := Department{ID: id, Name: *in.Name, NameEn: nameEn, ParentID: parent}
	if in.Order != nil {
		dep.Order = uint32(*in.Order)
	}
	d.insertDept(dep)
	tx.events = append(tx.events, ChangeEvent{ChangeType: ChangeCreateParty, PartyID: id, Party: &dep})
	return id, nil
}

// UpdateDepartment validates in like department/update and changes the given fields,
// moving the department when parentid changes. Errors: 60003 unknown id, 60004 unknown
// parent, 60010 a cycle (moving under itself or a descendant, or moving the root), 81002
// too deep, and CreateDepartment's name errors. An update_party event is recorded only
// when the name or the parent changed.
func (tx *Tx) UpdateDepartment(in DepartmentInput) error {
	d := tx.d
	if in.ID == nil || *in.ID == 0 {
		return apiErr(CodeInvalidDeptID, "invalid department id")
	}
	n, ok := d.depts[in.ID.Int()]
	if !ok {
		return apiErr(CodeDeptNotFound, "department not found")
	}
	old := n.dept
	dep := old
	if in.Name != nil {
		if err := checkDeptName(*in.Name); err != nil {
			return err
		}
		dep.Name = *in.Name
	}
	if in.NameEn != nil {
		dep.NameEn = *in.NameEn
	}
	if in.Order != nil {
		dep.Order = uint32(*in.Order)
	}
	if in.ParentID != nil && in.ParentID.Int() != old.ParentID {
		p := in.ParentID.Int()
		if old.ID == rootDepartmentID {
			return apiErr(CodeDeptCycle, "department cycle: the root cannot move")
		}
		if _, ok := d.depts[p]; !ok {
			return apiErr(CodeParentNotFound, "parent department not found")
		}
		if d.isDescendant(p, old.ID) {
			return apiErr(CodeDeptCycle, "department cycle")
		}
		if d.depth(p)+d.height(old.ID) > maxDeptDepth {
			return apiErr(CodeDeptTooDeep, "department depth exceed limit")
		}
		dep.ParentID = p
	}
	if dep.ParentID != 0 && (dep.Name != old.Name || dep.NameEn != old.NameEn || dep.ParentID != old.ParentID) {
		if err := d.checkSiblings(dep.ParentID, dep.ID, dep.Name, dep.NameEn); err != nil {
			return err
		}
	}
	if dep.ParentID != old.ParentID {
		delete(d.depts[old.ParentID].children, dep.ID)
		d.depts[dep.ParentID].children[dep.ID] = struct{}{}
	}
	n.dept = dep
	ev := ChangeEvent{ChangeType: ChangeUpdateParty, PartyID: dep.ID, Party: &dep,
		NameChanged: dep.Name != old.Name, ParentChanged: dep.ParentID != old.ParentID}
	if ev.NameChanged || ev.ParentChanged {
		tx.events = append(tx.events, ev)
	}
	return nil
}

// DeleteDepartment deletes an empty department. Errors: 60007 root, 60003 unknown, 60006
// has sub-departments, 60005 has members. It is removed from tags without an event.
func (tx *Tx) DeleteDepartment(id int) error {
	d := tx.d
	if id == rootDepartmentID {
		return apiErr(CodeDeleteRoot, "not allow to delete root department")
	}
	n, ok := d.depts[id]
	if !ok {
		return apiErr(CodeDeptNotFound, "department not found")
	}
	if len(n.children) > 0 {
		return apiErr(CodeDeptHasChildren, "department contains sub-department")
	}
	if len(n.members) > 0 {
		return apiErr(CodeDeptHasMembers, "department contains user")
	}
	delete(d.depts[n.dept.ParentID].children, id)
	delete(d.depts, id)
	for _, t := range d.tags {
		delete(t.parties, id)
	}
	tx.events = append(tx.events, ChangeEvent{ChangeType: ChangeDeleteParty, PartyID: id})
	return nil
}

// Department returns the department with id inside the transaction (leaders not derived).
func (tx *Tx) Department(id int) (Department, bool) {
	n, ok := tx.d.depts[id]
	if !ok {
		return Department{}, false
	}
	return n.dept, true
}

// DepartmentIDs returns every department id, parents before children (root first).
func (tx *Tx) DepartmentIDs() []int { return tx.d.subtree(rootDepartmentID) }

// DepartmentHasMembers reports whether department id has direct members.
func (tx *Tx) DepartmentHasMembers(id int) bool {
	n, ok := tx.d.depts[id]
	return ok && len(n.members) > 0
}

func checkDeptName(name string) error {
	if name == "" || runeLen(name) > 32 {
		return apiErr(CodeDeptNameLength, "invalid department name length")
	}
	if strings.ContainsAny(name, deptNameForbidden) {
		return apiErr(CodeDeptNameChars, "department name contains invalid character")
	}
	return nil
}

// checkSiblings reports 60008 when a child of parent other than self has the same name
// or (non-empty) name_en.
func (d *Directory) checkSiblings(parent, self int, name, nameEn string) error {
	for c := range d.depts[parent].children {
		if c == self {
			continue
		}
		s := d.depts[c].dept
		if s.Name == name || nameEn != "" && s.NameEn == nameEn {
			return apiErr(CodeDeptExists, "department existed")
		}
	}
	return nil
}
