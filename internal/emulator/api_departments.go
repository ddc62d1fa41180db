package emulator

func (s *Server) departmentRoutes() []Route {
	return []Route{
		{Path: "/cgi-bin/department/create", Method: post, Allow: writeSecrets, Handle: s.deptCreate},
		{Path: "/cgi-bin/department/update", Method: post, Allow: writeSecrets, Handle: s.deptUpdate},
		{Path: "/cgi-bin/department/delete", Method: get, Allow: writeSecrets, Handle: s.deptDelete},
		{Path: "/cgi-bin/department/list", Method: get, Handle: s.deptList},
		{Path: "/cgi-bin/department/simplelist", Method: get, Handle: s.deptSimpleList},
		{Path: "/cgi-bin/department/get", Method: get, Handle: s.deptGet},
	}
}

func (s *Server) deptCreate(c *Call) (any, error) {
	var in DepartmentInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	var id int
	err := s.update(c, func(tx *Tx) error {
		var err error
		id, err = tx.CreateDepartment(in)
		return err
	})
	if err != nil {
		return nil, err
	}
	return struct {
		base
		ID int `json:"id"`
	}{base{0, "created"}, id}, nil
}

func (s *Server) deptUpdate(c *Call) (any, error) {
	var in DepartmentInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if err := s.update(c, func(tx *Tx) error { return tx.UpdateDepartment(in) }); err != nil {
		return nil, err
	}
	return base{0, "updated"}, nil
}

func (s *Server) deptDelete(c *Call) (any, error) {
	id, err := readDeptParam(c, "id")
	if err != nil {
		return nil, err
	}
	if err := s.update(c, func(tx *Tx) error { return tx.DeleteDepartment(id) }); err != nil {
		return nil, err
	}
	return base{0, "deleted"}, nil
}

// optionalDeptParam reads an optional ?id= (0 when absent).
func optionalDeptParam(c *Call) (int, error) {
	if c.Query("id") == "" {
		return 0, nil
	}
	return readDeptParam(c, "id")
}

func (s *Server) deptList(c *Call) (any, error) {
	if err := s.newIPBlocked(c); err != nil {
		return nil, err
	}
	id, err := optionalDeptParam(c)
	if err != nil {
		return nil, err
	}
	deps, ok := s.dir.Departments(id)
	if !ok {
		return nil, apiErr(CodeDeptNotFound, "department not found")
	}
	return struct {
		base
		Department []Department `json:"department"`
	}{okBase, deps}, nil
}

type simpleDept struct {
	ID       int    `json:"id"`
	ParentID int    `json:"parentid"`
	Order    uint32 `json:"order"`
}

func (s *Server) deptSimpleList(c *Call) (any, error) {
	id, err := optionalDeptParam(c)
	if err != nil {
		return nil, err
	}
	deps, ok := s.dir.Departments(id)
	if !ok {
		return nil, apiErr(CodeDeptNotFound, "department not found")
	}
	out := make([]simpleDept, len(deps))
	for i, d := range deps {
		out[i] = simpleDept{d.ID, d.ParentID, d.Order}
	}
	return struct {
		base
		DepartmentID []simpleDept `json:"department_id"`
	}{okBase, out}, nil
}

func (s *Server) deptGet(c *Call) (any, error) {
	if err := s.newIPBlocked(c); err != nil {
		return nil, err
	}
	id, err := readDeptParam(c, "id")
	if err != nil {
		return nil, err
	}
	d, ok := s.dir.Department(id)
	if !ok {
		return nil, apiErr(CodeDeptNotFound, "department not found")
	}
	return struct {
		base
		Department Department `json:"department"`
	}{okBase, d}, nil
}
