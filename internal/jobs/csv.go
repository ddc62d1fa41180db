package jobs

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Member columns, by their documented English names (the README's import table). The
// official template's Chinese headers map onto the same columns (API-FACTS §4.3).
const (
	ColUserID     = "userid"
	ColName       = "name"
	ColMobile     = "mobile"
	ColEmail      = "email"
	ColDepartment = "department"
	ColPosition   = "position"
	ColGender     = "gender"
	ColIsLeader   = "is_leader"
	ColOrder      = "order"
	ColAlias      = "alias"
	ColAddress    = "address"
	ColTelephone  = "telephone"
	ColDisabled   = "disabled"
)

// UserColumns lists the member columns in the official template's order.
var UserColumns = []string{ColName, ColUserID, ColMobile, ColEmail, ColDepartment, ColPosition, ColGender,
	ColIsLeader, ColOrder, ColAlias, ColAddress, ColTelephone, ColDisabled}

// officialUserHeader is the official template header of each column.
var officialUserHeader = map[string]string{
	ColName: "姓名", ColUserID: "帐号", ColMobile: "手机号", ColEmail: "邮箱", ColDepartment: "所在部门",
	ColPosition: "职位", ColGender: "性别", ColIsLeader: "是否部门内领导", ColOrder: "排序", ColAlias: "别名",
	ColAddress: "地址", ColTelephone: "座机", ColDisabled: "禁用",
}

// userHeaderAliases maps every accepted header (English, official Chinese and common
// variants) to its column.
var userHeaderAliases = map[string]string{
	"姓名": ColName, "帐号": ColUserID, "账号": ColUserID, "手机号": ColMobile, "手机": ColMobile,
	"邮箱": ColEmail, "个人邮箱": ColEmail, "所在部门": ColDepartment, "部门": ColDepartment, "职位": ColPosition,
	"职务": ColPosition, "性别": ColGender, "是否部门内领导": ColIsLeader, "排序": ColOrder, "别名": ColAlias,
	"地址": ColAddress, "座机": ColTelephone, "禁用": ColDisabled,
}

// Department columns (English) and their official headers.
const (
	ColDeptName   = "name"
	ColDeptID     = "id"
	ColDeptParent = "parent_id"
	ColDeptOrder  = "order"
)

var deptHeaderAliases = map[string]string{
	"部门名称": ColDeptName, "部门ID": ColDeptID, "部门id": ColDeptID, "父部门ID": ColDeptParent, "父部门id": ColDeptParent,
	"排序": ColDeptOrder, "name": ColDeptName, "id": ColDeptID, "parent_id": ColDeptParent, "parentid": ColDeptParent,
	"order": ColDeptOrder,
}

// UserRow is one member of an import: the CSV row at Line (1-based, header = 1; 0 for
// rows given by a program). Empty strings and nil slices are empty cells; in a sync
// import, only the file's columns are updated in WeCom.
type UserRow struct {
	Line        int
	UserID      string
	Name        string
	Mobile      string
	Email       string
	Departments []int64
	Position    string
	// Gender is "", "1" (male) or "2" (female).
	Gender string
	// IsLeader has one 0/1 per department (empty for none).
	IsLeader []int
	// Order has one sort order per department, or one for all (empty for none).
	Order     []uint32
	Alias     string
	Address   string
	Telephone string
	// Disabled is nil for an empty cell.
	Disabled *bool
}

// DepartmentRow is one department of a department import (batch/replaceparty).
type DepartmentRow struct {
	Line     int
	ID       int64
	Name     string
	ParentID int64
	// Order is the sort order; 0 leaves it unchanged.
	Order int64
}

// UserFile is a parsed member CSV: the columns it has (English names) and its rows.
type UserFile struct {
	Columns []string
	Rows    []UserRow
}

// Has reports whether the file has column col.
func (f *UserFile) Has(col string) bool {
	for _, c := range f.Columns {
		if c == col {
			return true
		}
	}
	return false
}

// Problem is one validation failure: the CSV line (1 = header, 0 = the file as a
// whole or a row without a line), the column when one is at fault, and what is wrong.
type Problem struct {
	Line    int    `json:"line"`
	Column  string `json:"column,omitempty"`
	Message string `json:"message"`
}

// String formats the problem as "line N: column: message".
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Column != "" {
		b.WriteString(p.Column + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ValidationError carries every problem found in an import; nothing was uploaded.
type ValidationError struct {
	Problems []Problem
}

// Error summarises the problems, listing up to 20 of them.
func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "import file has %d problem(s)", len(e.Problems))
	for i, p := range e.Problems {
		if i == 20 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Problems)-20)
			break
		}
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

// ErrInvalidFile is matched (errors.Is) by every *ValidationError.
var ErrInvalidFile = errors.New("invalid import file")

// Is makes errors.Is(err, ErrInvalidFile) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidFile }

// readRecords decodes CSV data (UTF-8, optional BOM) into trimmed records with their
// 1-based line numbers, skipping blank lines.
func readRecords(data []byte) ([][]string, []int, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) {
		return nil, nil, errors.New("file is not UTF-8 (save it as CSV UTF-8)")
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	r.ReuseRecord = false
	var recs [][]string
	var lines []int
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading csv: %w", err)
		}
		line, _ := r.FieldPos(0)
		blank := true
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
			blank = blank && rec[i] == ""
		}
		if !blank {
			recs = append(recs, rec)
			lines = append(lines, line)
		}
	}
	return recs, lines, nil
}

// normHeader trims a header and drops a parenthesised note ("姓名（必填）") and a BOM.
func normHeader(h string) string {
	h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
	for _, open := range []string{"（", "("} {
		if i := strings.Index(h, open); i > 0 && (strings.HasSuffix(h, ")") || strings.HasSuffix(h, "）")) {
			h = strings.TrimSpace(h[:i])
		}
	}
	return h
}

// ParseUsersCSV parses a member CSV with the official Chinese headers or the English
// column names (mixed is fine; unknown columns and the template's 禁用项说明 note are
// reported). It returns the file and every cell-level problem found (bad numbers,
// genders, flags); the rules that need the whole file or the mirror are checked by
// ValidateUsers. An error is returned only for a file that is not CSV at all.
func ParseUsersCSV(data []byte) (*UserFile, []Problem, error) {
	recs, lines, err := readRecords(data)
	if err != nil {
		return nil, nil, err
	}
	var probs []Problem
	if len(recs) == 0 {
		return &UserFile{}, []Problem{{Line: 0, Message: "file is empty"}}, nil
	}
	cols := make([]string, len(recs[0]))
	f := &UserFile{}
	seen := map[string]bool{}
	for i, h := range recs[0] {
		h = normHeader(h)
		c, ok := userHeaderAliases[h]
		if !ok {
			c, ok = strings.ToLower(h), false
			for _, uc := range UserColumns {
				if uc == c {
					ok = true
				}
			}
		}
		switch {
		case strings.HasPrefix(h, "禁用项说明") || h == "":
			continue // the template's explanatory column
		case !ok:
			probs = append(probs, Problem{Line: lines[0], Column: h, Message: "unknown column (extension attributes are not supported by this importer)"})
			continue
		case seen[c]:
			probs = append(probs, Problem{Line: lines[0], Column: h, Message: "duplicate column"})
			continue
		}
		seen[c] = true
		cols[i] = c
	}
	for _, c := range UserColumns {
		if seen[c] {
			f.Columns = append(f.Columns, c)
		}
	}
	for _, req := range []string{ColUserID, ColName, ColDepartment} {
		if !seen[req] {
			probs = append(probs, Problem{Line: lines[0], Column: req, Message: "required column missing (" + officialUserHeader[req] + ")"})
		}
	}
	if !seen[ColMobile] && !seen[ColEmail] {
		probs = append(probs, Problem{Line: lines[0], Column: "mobile/email", Message: "a mobile (手机号) or email (邮箱) column is required"})
	}
	f.Rows = make([]UserRow, 0, len(recs)-1)
	for ri, rec := range recs[1:] {
		line := lines[ri+1]
		row := UserRow{Line: line}
		bad := func(col, format string, a ...any) {
			probs = append(probs, Problem{Line: line, Column: col, Message: fmt.Sprintf(format, a...)})
		}
		if len(rec) > len(cols) {
			bad("", "row has %d cells, the header %d", len(rec), len(cols))
		}
		for i, c := range cols {
			if c == "" {
				continue
			}
			v := ""
			if i < len(rec) {
				v = rec[i]
			}
			switch c {
			case ColUserID:
				row.UserID = v
			case ColName:
				row.Name = v
			case ColMobile:
				row.Mobile = v
			case ColEmail:
				row.Email = v
			case ColDepartment:
				for _, p := range splitList(v) {
					n, err := strconv.ParseInt(p, 10, 64)
					if err != nil || n < 1 {
						bad(c, "department %q is not a department id", p)
						continue
					}
					row.Departments = append(row.Departments, n)
				}
			case ColPosition:
				row.Position = v
			case ColGender:
				switch v {
				case "":
				case "男", "1", "male", "m", "M":
					row.Gender = "1"
				case "女", "2", "female", "f", "F":
					row.Gender = "2"
				default:
					bad(c, "gender %q must be 男/女, 1/2 or male/female", v)
				}
			case ColIsLeader:
				for _, p := range splitList(v) {
					switch p {
					case "0", "否", "false":
						row.IsLeader = append(row.IsLeader, 0)
					case "1", "是", "true":
						row.IsLeader = append(row.IsLeader, 1)
					default:
						bad(c, "is_leader %q must be 0 or 1 per department", p)
					}
				}
			case ColOrder:
				for _, p := range splitList(v) {
					n, err := strconv.ParseUint(p, 10, 32)
					if err != nil {
						bad(c, "order %q must be a number from 0 to 4294967295", p)
						continue
					}
					row.Order = append(row.Order, uint32(n))
				}
			case ColAlias:
				row.Alias = v
			case ColAddress:
				row.Address = v
			case ColTelephone:
				row.Telephone = v
			case ColDisabled:
				switch v {
				case "":
				case "1", "禁用", "true", "yes":
					row.Disabled = new(bool)
					*row.Disabled = true
				case "0", "启用", "false", "no":
					row.Disabled = new(bool)
				default:
					bad(c, "disabled %q must be 0 or 1", v)
				}
			}
		}
		f.Rows = append(f.Rows, row)
	}
	return f, probs, nil
}

// splitList splits a ";"-separated cell (also accepting "；" and ","), dropping empties.
func splitList(v string) []string {
	if v == "" {
		return nil
	}
	parts := strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == '；' || r == ',' || r == '，' })
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ParseDepartmentsCSV parses a department CSV (部门名称,部门ID,父部门ID,排序 or
// name,id,parent_id,order) and returns its rows and cell-level problems.
func ParseDepartmentsCSV(data []byte) ([]DepartmentRow, []Problem, error) {
	recs, lines, err := readRecords(data)
	if err != nil {
		return nil, nil, err
	}
	if len(recs) == 0 {
		return nil, []Problem{{Line: 0, Message: "file is empty"}}, nil
	}
	var probs []Problem
	cols := make([]string, len(recs[0]))
	seen := map[string]bool{}
	for i, h := range recs[0] {
		h = normHeader(h)
		c, ok := deptHeaderAliases[h]
		if !ok {
			c, ok = deptHeaderAliases[strings.ToLower(h)]
		}
		switch {
		case !ok:
			probs = append(probs, Problem{Line: lines[0], Column: h, Message: "unknown column"})
			continue
		case seen[c]:
			probs = append(probs, Problem{Line: lines[0], Column: h, Message: "duplicate column"})
			continue
		}
		seen[c] = true
		cols[i] = c
	}
	for _, req := range []string{ColDeptName, ColDeptID, ColDeptParent} {
		if !seen[req] {
			probs = append(probs, Problem{Line: lines[0], Column: req, Message: "required column missing"})
		}
	}
	rows := make([]DepartmentRow, 0, len(recs)-1)
	for ri, rec := range recs[1:] {
		line := lines[ri+1]
		row := DepartmentRow{Line: line}
		num := func(col, v string) int64 {
			if v == "" {
				return 0
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				probs = append(probs, Problem{Line: line, Column: col, Message: fmt.Sprintf("%q is not a non-negative number", v)})
				return 0
			}
			return n
		}
		for i, c := range cols {
			v := ""
			if i < len(rec) {
				v = rec[i]
			}
			switch c {
			case ColDeptName:
				row.Name = v
			case ColDeptID:
				row.ID = num(c, v)
			case ColDeptParent:
				row.ParentID = num(c, v)
			case ColDeptOrder:
				row.Order = num(c, v)
			}
		}
		rows = append(rows, row)
	}
	return rows, probs, nil
}

// WriteUsersCSV writes rows as the official UTF-8 member CSV (API-FACTS §4.3) with the
// given columns (English names; the required ones are always written), in template order.
func WriteUsersCSV(w io.Writer, columns []string, rows []UserRow) error {
	has := map[string]bool{ColUserID: true, ColName: true, ColDepartment: true}
	for _, c := range columns {
		has[c] = true
	}
	var cols []string
	for _, c := range UserColumns {
		if has[c] {
			cols = append(cols, c)
		}
	}
	cw := csv.NewWriter(w)
	rec := make([]string, len(cols))
	for i, c := range cols {
		rec[i] = officialUserHeader[c]
	}
	if err := cw.Write(rec); err != nil {
		return fmt.Errorf("writing csv header: %w", err)
	}
	for _, r := range rows {
		for i, c := range cols {
			rec[i] = r.cell(c)
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("writing csv row %s: %w", r.UserID, err)
		}
	}
	cw.Flush()
	return cw.Error()
}

func (r *UserRow) cell(c string) string {
	switch c {
	case ColUserID:
		return r.UserID
	case ColName:
		return r.Name
	case ColMobile:
		return r.Mobile
	case ColEmail:
		return r.Email
	case ColDepartment:
		return joinInts(r.Departments)
	case ColPosition:
		return r.Position
	case ColGender:
		return r.Gender
	case ColIsLeader:
		return joinInts(r.IsLeader)
	case ColOrder:
		return joinInts(r.Order)
	case ColAlias:
		return r.Alias
	case ColAddress:
		return r.Address
	case ColTelephone:
		return r.Telephone
	case ColDisabled:
		switch {
		case r.Disabled == nil:
			return ""
		case *r.Disabled:
			return "1"
		default:
			return "0"
		}
	}
	return ""
}

func joinInts[T int | int64 | uint32](v []T) string {
	var b strings.Builder
	for i, n := range v {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(strconv.FormatInt(int64(n), 10))
	}
	return b.String()
}

// WriteDepartmentsCSV writes rows as the official UTF-8 department CSV.
func WriteDepartmentsCSV(w io.Writer, rows []DepartmentRow) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"部门名称", "部门ID", "父部门ID", "排序"})
	for _, r := range rows {
		order := ""
		if r.Order != 0 {
			order = strconv.FormatInt(r.Order, 10)
		}
		if err := cw.Write([]string{r.Name, strconv.FormatInt(r.ID, 10), strconv.FormatInt(r.ParentID, 10), order}); err != nil {
			return fmt.Errorf("writing csv row %d: %w", r.ID, err)
		}
	}
	cw.Flush()
	return cw.Error()
}
