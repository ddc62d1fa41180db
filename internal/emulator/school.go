package emulator

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// School (家校沟通) department types (API-FACTS §8).
const (
	SchoolClass  = 1 // 班级
	SchoolGrade  = 2 // 年级
	SchoolStage  = 3 // 学段
	SchoolCampus = 4 // 校区
	SchoolRoot   = 5 // 学校 (the root, id 1; list only)
)

// SchoolAdmin is a school department administrator: Type 1 校区负责人, 2 年级负责人,
// 3 班主任, 4 任课老师, 5 学段负责人; Subject only for 3 and 4.
type SchoolAdmin struct {
	UserID  string `json:"userid"`
	Type    int    `json:"type"`
	Subject string `json:"subject,omitempty"`
}

// SchoolDepartment is one school department as school/department/list returns it.
type SchoolDepartment struct {
	Name             string        `json:"name"`
	ParentID         int           `json:"parentid"`
	ID               int           `json:"id"`
	Type             int           `json:"type"`
	RegisterYear     int           `json:"register_year"`
	StandardGrade    int           `json:"standard_grade"`
	Order            uint32        `json:"order"`
	DepartmentAdmins []SchoolAdmin `json:"department_admins"`
	IsGraduated      int           `json:"is_graduated"`
	OpenGroupChat    int           `json:"open_group_chat"`
	GroupChatID      string        `json:"group_chat_id"`
}

// schoolStore is the school contact tree, separate from the corp directory (as in WeCom,
// where 家校通讯录 is its own tree). Its changes are not called back (ASSUMPTION).
type schoolStore struct {
	mu    sync.Mutex
	depts map[int]*SchoolDepartment
	maxID int
}

func newSchoolStore() *schoolStore {
	return &schoolStore{depts: map[int]*SchoolDepartment{
		1: {Name: "学校", ID: 1, Type: SchoolRoot, DepartmentAdmins: []SchoolAdmin{}},
	}, maxID: 1}
}

// allowedParent says which parent types a school department type may have: a class only
// under a grade; a grade under the root, a campus or a stage; a stage under the root or a
// campus; a campus under the root.
func allowedParent(typ, parentType int) bool {
	switch typ {
	case SchoolClass:
		return parentType == SchoolGrade
	case SchoolGrade:
		return parentType == SchoolRoot || parentType == SchoolCampus || parentType == SchoolStage
	case SchoolStage:
		return parentType == SchoolRoot || parentType == SchoolCampus
	case SchoolCampus:
		return parentType == SchoolRoot
	}
	return false
}

// adminFits says which admin type fits which department type.
func adminFits(adminType, deptType int) bool {
	switch adminType {
	case 1:
		return deptType == SchoolCampus
	case 2:
		return deptType == SchoolGrade
	case 3, 4:
		return deptType == SchoolClass
	case 5:
		return deptType == SchoolStage
	}
	return false
}

func (s *Server) schoolRoutes() []Route {
	return []Route{
		{Path: "/cgi-bin/school/department/create", Method: post, Allow: writeSecrets, Handle: s.schoolCreate},
		{Path: "/cgi-bin/school/department/update", Method: post, Allow: writeSecrets, Handle: s.schoolUpdate},
		{Path: "/cgi-bin/school/department/delete", Method: get, Allow: writeSecrets, Handle: s.schoolDelete},
		{Path: "/cgi-bin/school/department/list", Method: get, Handle: s.schoolList},
		// ASSUMPTION: the seed documents 班级毕业 as POST /school/department/graduate on the
		// epaas host with {"department_id"}; API-FACTS calls it UNCONFIRMED. We serve it on
		// this host's /cgi-bin/ prefix: the class (type 1) gets is_graduated = 1.
		{Path: "/cgi-bin/school/department/graduate", Method: post, Allow: writeSecrets, Handle: s.schoolGraduate},
		{Path: "/cgi-bin/school/set_upgrade_info", Method: post, Allow: writeSecrets, Handle: s.schoolUpgradeInfo},
	}
}

type schoolAdminInput struct {
	Op      int    `json:"op"`
	UserID  string `json:"userid"`
	Type    int    `json:"type"`
	Subject string `json:"subject"`
}

type schoolInput struct {
	ID               *FlexInt           `json:"id"`
	NewID            *FlexInt           `json:"new_id"`
	Name             *string            `json:"name"`
	ParentID         *FlexInt           `json:"parentid"`
	Type             *FlexInt           `json:"type"`
	RegisterYear     *FlexInt           `json:"register_year"`
	StandardGrade    *FlexInt           `json:"standard_grade"`
	Order            *FlexInt           `json:"order"`
	DepartmentAdmins []schoolAdminInput `json:"department_admins"`
}

const schoolNameForbidden = `-:*?"<>/,`

func checkSchoolName(name string) error {
	if name == "" || runeLen(name) > 32 {
		return apiErr(CodeDeptNameLength, "invalid department name length")
	}
	if strings.ContainsAny(name, schoolNameForbidden) {
		return apiErr(CodeDeptNameChars, "department name contains invalid character")
	}
	return nil
}

// applyAdmins applies admin ops (op 0 add/update by userid+type, 1 delete) to dep.
func (s *Server) applyAdmins(dep *SchoolDepartment, ops []schoolAdminInput) error {
	admins := slices.Clone(dep.DepartmentAdmins)
	for _, op := range ops {
		if op.UserID == "" {
			return apiErr(CodeMissingUserID, "missing userid")
		}
		if _, ok := s.dir.User(op.UserID); !ok {
			return apiErr(CodeUserNotFound, "userid not found:%s", op.UserID)
		}
		if !adminFits(op.Type, dep.Type) {
			return apiErr(CodeInvalidParameter, "admin type %d does not fit department type %d", op.Type, dep.Type)
		}
		if op.Subject != "" && (op.Type != 3 && op.Type != 4 || runeLen(op.Subject) > 15) {
			return apiErr(CodeInvalidParameter, "invalid subject")
		}
		i := slices.IndexFunc(admins, func(a SchoolAdmin) bool { return lower(a.UserID) == lower(op.UserID) && a.Type == op.Type })
		switch op.Op {
		case 0:
			a := SchoolAdmin{UserID: op.UserID, Type: op.Type, Subject: op.Subject}
			if i >= 0 {
				admins[i] = a
			} else {
				admins = append(admins, a)
			}
		case 1:
			if i >= 0 {
				admins = slices.Delete(admins, i, i+1)
			}
		default:
			return apiErr(CodeInvalidParameter, "invalid op")
		}
	}
	dep.DepartmentAdmins = admins
	return nil
}

func (s *Server) schoolCreate(c *Call) (any, error) {
	var in schoolInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	st := s.school
	st.mu.Lock()
	defer st.mu.Unlock()
	if in.Type == nil || in.Type.Int() < SchoolClass || in.Type.Int() > SchoolCampus {
		return nil, apiErr(CodeSchoolDeptType, "invalid school department type")
	}
	typ := in.Type.Int()
	if in.ParentID == nil {
		return nil, apiErr(CodeParentNotFound, "parent department not found")
	}
	parent, ok := st.depts[in.ParentID.Int()]
	if !ok {
		return nil, apiErr(CodeParentNotFound, "parent department not found")
	}
	if !allowedParent(typ, parent.Type) {
		return nil, apiErr(CodeSchoolParentType, "parent department type mismatch")
	}
	dep := &SchoolDepartment{ParentID: parent.ID, Type: typ, DepartmentAdmins: []SchoolAdmin{}}
	if typ == SchoolGrade {
		dep.RegisterYear = s.now().Year() // auto-computed when omitted
		if in.RegisterYear != nil && in.RegisterYear.Int() != 0 {
			if y := in.RegisterYear.Int(); y < 1970 || y > 2100 {
				return nil, apiErr(CodeInvalidParameter, "invalid register_year")
			}
			dep.RegisterYear = in.RegisterYear.Int()
		}
		if in.StandardGrade != nil {
			dep.StandardGrade = in.StandardGrade.Int()
		}
	}
	switch {
	case typ == SchoolGrade && in.RegisterYear != nil && in.StandardGrade != nil && dep.StandardGrade != 0:
		// The name is ignored for a standard grade: WeCom derives it (ASSUMPTION: "<year>级").
		dep.Name = fmt.Sprintf("%d级", dep.RegisterYear)
	case in.Name == nil:
		return nil, apiErr(CodeDeptNameLength, "invalid department name length")
	default:
		if err := checkSchoolName(*in.Name); err != nil {
			return nil, err
		}
		dep.Name = *in.Name
	}
	dep.ID = st.maxID + 1
	if in.ID != nil && in.ID.Int() != 0 {
		if in.ID.Int() <= 1 {
			return nil, apiErr(CodeInvalidDeptID, "invalid department id")
		}
		if _, taken := st.depts[in.ID.Int()]; taken {
			return nil, apiErr(CodeDeptExists, "department existed")
		}
		dep.ID = in.ID.Int()
	}
	if in.Order != nil {
		dep.Order = uint32(*in.Order)
	}
	if err := s.applyAdmins(dep, in.DepartmentAdmins); err != nil {
		return nil, err
	}
	st.depts[dep.ID] = dep
	st.maxID = max(st.maxID, dep.ID)
	return struct {
		base
		ID int `json:"id"`
	}{base{0, "created"}, dep.ID}, nil
}

func (s *Server) schoolUpdate(c *Call) (any, error) {
	var in schoolInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	st := s.school
	st.mu.Lock()
	defer st.mu.Unlock()
	if in.ID == nil {
		return nil, apiErr(CodeInvalidDeptID, "invalid department id")
	}
	old, ok := st.depts[in.ID.Int()]
	if !ok {
		return nil, apiErr(CodeDeptNotFound, "department not found")
	}
	dep := *old
	if in.Name != nil {
		if err := checkSchoolName(*in.Name); err != nil {
			return nil, err
		}
		dep.Name = *in.Name
	}
	if in.ParentID != nil && in.ParentID.Int() != dep.ParentID {
		if dep.Type == SchoolRoot {
			return nil, apiErr(CodeDeptCycle, "department cycle: the root cannot move")
		}
		parent, ok := st.depts[in.ParentID.Int()]
		if !ok {
			return nil, apiErr(CodeParentNotFound, "parent department not found")
		}
		if !allowedParent(dep.Type, parent.Type) {
			return nil, apiErr(CodeSchoolParentType, "parent department type mismatch")
		}
		dep.ParentID = parent.ID
	}
	if dep.Type == SchoolGrade {
		if in.RegisterYear != nil {
			if y := in.RegisterYear.Int(); y < 1970 || y > 2100 {
				return nil, apiErr(CodeInvalidParameter, "invalid register_year")
			}
			dep.RegisterYear = in.RegisterYear.Int()
		}
		if in.StandardGrade != nil {
			dep.StandardGrade = in.StandardGrade.Int() // 0 converts to a non-standard grade
		}
	}
	if in.Order != nil {
		dep.Order = uint32(*in.Order)
	}
	if err := s.applyAdmins(&dep, in.DepartmentAdmins); err != nil {
		return nil, err
	}
	if in.NewID != nil && in.NewID.Int() != 0 && in.NewID.Int() != dep.ID {
		nid := in.NewID.Int()
		if nid <= 1 || dep.ID == 1 {
			return nil, apiErr(CodeInvalidDeptID, "invalid new_id")
		}
		if _, taken := st.depts[nid]; taken {
			return nil, apiErr(CodeDeptExists, "department existed")
		}
		for _, ch := range st.depts {
			if ch.ParentID == dep.ID {
				ch.ParentID = nid
			}
		}
		delete(st.depts, dep.ID)
		dep.ID = nid
		st.maxID = max(st.maxID, nid)
	}
	st.depts[dep.ID] = &dep
	return base{0, "updated"}, nil
}

func (s *Server) schoolDelete(c *Call) (any, error) {
	id, err := readDeptParam(c, "id")
	if err != nil {
		return nil, err
	}
	st := s.school
	st.mu.Lock()
	defer st.mu.Unlock()
	if id == 1 {
		return nil, apiErr(CodeDeleteRoot, "not allow to delete root department")
	}
	if _, ok := st.depts[id]; !ok {
		return nil, apiErr(CodeDeptNotFound, "department not found")
	}
	for _, d := range st.depts {
		if d.ParentID == id {
			return nil, apiErr(CodeDeptHasChildren, "department contains sub-department")
		}
	}
	delete(st.depts, id)
	return base{0, "deleted"}, nil
}

func (s *Server) schoolList(c *Call) (any, error) {
	root := 1
	if c.Query("id") != "" {
		id, err := readDeptParam(c, "id")
		if err != nil {
			return nil, err
		}
		root = id
	}
	st := s.school
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.depts[root]; !ok {
		return nil, apiErr(CodeDeptNotFound, "department not found")
	}
	out := []SchoolDepartment{}
	queue := []int{root}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		d := *st.depts[id]
		d.DepartmentAdmins = slices.Clone(d.DepartmentAdmins)
		out = append(out, d)
		var kids []int
		for _, ch := range st.depts {
			if ch.ParentID == id && ch.ID != id {
				kids = append(kids, ch.ID)
			}
		}
		slices.Sort(kids)
		queue = append(queue, kids...)
	}
	return struct {
		base
		Departments []SchoolDepartment `json:"departments"`
	}{okBase, out}, nil
}

func (s *Server) schoolGraduate(c *Call) (any, error) {
	var in struct {
		DepartmentID *FlexInt `json:"department_id"`
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if in.DepartmentID == nil {
		return nil, apiErr(CodeInvalidDeptID, "invalid department id")
	}
	st := s.school
	st.mu.Lock()
	defer st.mu.Unlock()
	d, ok := st.depts[in.DepartmentID.Int()]
	if !ok {
		return nil, apiErr(CodeDeptNotFound, "department not found")
	}
	if d.Type != SchoolClass {
		return nil, apiErr(CodeSchoolDeptType, "invalid school department type: only a class can graduate")
	}
	nd := *d
	nd.IsGraduated = 1
	st.depts[nd.ID] = &nd
	return okBase, nil
}

func (s *Server) schoolUpgradeInfo(c *Call) (any, error) {
	var in struct {
		UpgradeTime   *FlexInt `json:"upgrade_time"`
		UpgradeSwitch *FlexInt `json:"upgrade_switch"`
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	now := s.now()
	next := now.AddDate(0, 0, 1)
	if in.UpgradeTime != nil {
		// Only month and day are used: the next such date from now.
		t := time.Unix(int64(*in.UpgradeTime), 0).In(now.Location())
		next = time.Date(now.Year(), t.Month(), t.Day(), 0, 0, 0, 0, now.Location())
		if !next.After(now) {
			next = next.AddDate(1, 0, 0)
		}
	}
	return struct {
		base
		NextUpgradeTime int64 `json:"next_upgrade_time"`
	}{okBase, next.Unix()}, nil
}
