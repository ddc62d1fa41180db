package emulator

// Parsing of the batch import CSV files (API-FACTS §4.3): UTF-8 with an optional BOM, the
// official Chinese headers, optional columns. File-level problems are *APIError values
// the whole job fails with (40092, 302003, 302004, 302006, 302007); cell problems become
// per-row errors and the job carries on.

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Member columns.
const (
	colName = iota + 1
	colUserID
	colMobile
	colEmail
	colDept
	colPosition
	colGender
	colLeader
	colOrder
	colAlias
	colAddress
	colTelephone
	colDisable
	colDirectLeader
	colBizMail
	colIgnore
)

// memberHeaders maps the member template's headers (and common variants) to columns.
// Headers not listed here are extension attributes (text attributes named after the
// header), except the template's explanatory "禁用项说明" column, which is ignored.
var memberHeaders = map[string]int{
	"姓名": colName, "帐号": colUserID, "账号": colUserID, "UserID": colUserID, "userid": colUserID,
	"手机号": colMobile, "手机": colMobile, "邮箱": colEmail, "个人邮箱": colEmail,
	"所在部门": colDept, "部门": colDept, "职位": colPosition, "职务": colPosition, "性别": colGender,
	"是否部门内领导": colLeader, "排序": colOrder, "别名": colAlias, "地址": colAddress, "座机": colTelephone,
	"禁用": colDisable, "直属上级": colDirectLeader, "企业邮箱": colBizMail, "英文名": colIgnore,
}

// memberRow is one parsed data row of a member file.
type memberRow struct {
	userID string
	in     UserInput
	depts  []int         // the 所在部门 ids (unknown ones are created at apply time)
	attrs  []ExtAttrItem // extension-attribute columns
	err    *APIError     // a cell that could not be parsed: the row fails with it
}

// readCSV decodes an import file into records: UTF-8 (40092 otherwise), BOM stripped,
// blank lines and rows of empty cells skipped, cells trimmed.
func readCSV(data []byte) ([][]string, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) {
		return nil, apiErr(CodeInvalidImportFile, "import file must be utf-8")
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	var out [][]string
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, apiErr(CodeInvalidImportFile, "invalid csv: %v", err)
		}
		blank := true
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
			blank = blank && rec[i] == ""
		}
		if !blank {
			out = append(out, rec)
		}
	}
	if len(out) < 2 {
		return nil, apiErr(CodeInvalidImportFile, "import file is empty")
	}
	return out, nil
}

// normHeader trims a header cell and drops a trailing parenthesised note ("姓名（必填）").
func normHeader(h string) string {
	h = strings.TrimSpace(h)
	for _, open := range []string{"（", "("} {
		if i := strings.Index(h, open); i > 0 && (strings.HasSuffix(h, ")") || strings.HasSuffix(h, "）")) {
			h = strings.TrimSpace(h[:i])
		}
	}
	return h
}

// parseMemberCSV parses a batch/syncuser or batch/replaceuser file. Required columns:
// 姓名, 帐号, 所在部门 and at least one of 手机号/邮箱 (40092 otherwise, or for an empty
// file); a duplicate 帐号 (case-insensitive) is 302003. Cell rules: 所在部门, 是否部门内领导,
// 排序 and 直属上级 are ";"-separated; 性别 男/女 or 1/2; 禁用 1/0 (or 禁用/启用). An empty
// cell clears a text field (职位, 别名, 地址, 座机, 手机号, 邮箱) and leaves 性别, 禁用,
// 排序 and 企业邮箱 unchanged (ASSUMPTION: WeCom does not document empty cells).
func parseMemberCSV(data []byte) ([]memberRow, error) {
	recs, err := readCSV(data)
	if err != nil {
		return nil, err
	}
	cols := make([]int, len(recs[0]))
	names := make([]string, len(recs[0]))
	seen := map[int]bool{}
	seenName := map[string]bool{}
	for i, h := range recs[0] {
		h = normHeader(h)
		names[i] = h
		switch c, ok := memberHeaders[h]; {
		case h == "" || strings.HasPrefix(h, "禁用项说明"):
			cols[i] = colIgnore
		case ok:
			if seen[c] && c != colIgnore {
				return nil, apiErr(CodeInvalidImportFile, "duplicate column %s", h)
			}
			seen[c] = true
			cols[i] = c
		default:
			if seenName[h] {
				return nil, apiErr(CodeInvalidImportFile, "duplicate column %s", h)
			}
			seenName[h] = true // an extension attribute column
		}
	}
	if !seen[colName] || !seen[colUserID] || !seen[colDept] || !seen[colMobile] && !seen[colEmail] {
		return nil, apiErr(CodeInvalidImportFile, "import file lacks a required column (姓名, 帐号, 所在部门, 手机号/邮箱)")
	}
	rows := make([]memberRow, 0, len(recs)-1)
	ids := make(map[string]bool, len(recs)-1)
	for _, rec := range recs[1:] {
		row := parseMemberRow(rec, cols, names)
		if row.userID != "" {
			k := lower(row.userID)
			if ids[k] {
				return nil, apiErr(CodeDupUserID, "duplicate userid in import file: %s", row.userID)
			}
			ids[k] = true
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func parseMemberRow(rec []string, cols []int, names []string) memberRow {
	var row memberRow
	fail := func(code int, format string, a ...any) {
		if row.err == nil {
			row.err = apiErr(code, format, a...)
		}
	}
	in := &row.in
	var orders []uint32
	for i, col := range cols {
		v := ""
		if i < len(rec) {
			v = rec[i]
		}
		switch col {
		case colName:
			in.Name = ptr(v)
		case colUserID:
			row.userID, in.UserID = v, v
		case colMobile:
			in.Mobile = ptr(v)
		case colEmail:
			in.Email = ptr(v)
		case colDept:
			ds, ok := splitInts(v)
			if !ok || len(ds) == 0 {
				fail(CodeInvalidDeptList, "invalid department list: %q", v)
				continue
			}
			for _, d := range ds {
				if d < 1 {
					fail(CodeInvalidDeptList, "invalid department id: %d", d)
				}
			}
			row.depts = ds
			in.Department = ptr(ds)
		case colPosition:
			in.Position = ptr(v)
		case colGender:
			switch v {
			case "":
			case "男", "1":
				in.Gender = ptr(FlexString("1"))
			case "女", "2":
				in.Gender = ptr(FlexString("2"))
			default:
				fail(CodeInvalidParameter, "invalid gender: %q", v)
			}
		case colLeader:
			if v == "" {
				continue
			}
			ls, ok := splitInts(v)
			if !ok {
				fail(CodeInvalidParameter, "invalid is_leader_in_dept: %q", v)
				continue
			}
			in.IsLeaderInDept = ptr(ls)
		case colOrder:
			if v == "" {
				continue
			}
			for _, p := range splitList(v) {
				n, err := strconv.ParseUint(p, 10, 32)
				if err != nil {
					fail(CodeInvalidParameter, "invalid order: %q", v)
					break
				}
				orders = append(orders, uint32(n))
			}
		case colAlias:
			in.Alias = ptr(v)
		case colAddress:
			in.Address = ptr(v)
		case colTelephone:
			in.Telephone = ptr(v)
		case colDisable:
			switch v {
			case "":
			case "1", "禁用":
				in.Enable = ptr(FlexInt(0))
			case "0", "启用":
				in.Enable = ptr(FlexInt(1))
			default:
				fail(CodeInvalidParameter, "invalid 禁用 value: %q", v)
			}
		case colDirectLeader:
			in.DirectLeader = ptr(splitList(v))
		case colBizMail:
			if v != "" {
				in.BizMail = ptr(v)
			}
		case colIgnore:
		default: // extension attribute
			row.attrs = append(row.attrs, ExtAttrItem{Type: 0, Name: names[i], Text: &ExtText{Value: v}})
		}
	}
	if len(orders) > 0 {
		// One 排序 value for several departments applies to each of them.
		if len(orders) == 1 && len(row.depts) > 1 {
			for len(orders) < len(row.depts) {
				orders = append(orders, orders[0])
			}
		}
		in.Order = ptr(orders)
	}
	if row.userID == "" {
		fail(CodeMissingUserID, "missing userid")
	}
	return row
}

// splitList splits a ";"-separated cell (full-width "；" too), dropping empty items.
func splitList(v string) []string {
	v = strings.ReplaceAll(v, "；", ";")
	out := []string{}
	for _, p := range strings.Split(v, ";") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func splitInts(v string) ([]int, bool) {
	parts := splitList(v)
	out := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

// partyRow is one row of a department file.
type partyRow struct {
	id, parent int
	name       string
	order      uint32
	hasOrder   bool // 排序 given and not 0 ("empty/0 = don't change")
}

// parsePartyCSV parses a batch/replaceparty file (部门名称, 部门ID, 父部门ID required; 排序
// optional; other columns ignored). Errors: 40092 empty file or missing column, 302006
// duplicate 部门ID, 302007 two departments with the same name under one parent, 302004 a
// file that is not a tree rooted at department 1 (empty or non-numeric ids, an empty name,
// a parent neither 1 nor in the file, a cycle, a root row with a parent).
func parsePartyCSV(data []byte) ([]partyRow, error) {
	recs, err := readCSV(data)
	if err != nil {
		return nil, err
	}
	idx := map[string]int{}
	for i, h := range recs[0] {
		h = normHeader(h)
		if _, dup := idx[h]; dup {
			return nil, apiErr(CodeInvalidImportFile, "duplicate column %s", h)
		}
		idx[h] = i
	}
	ci, okID := idx["部门ID"]
	cn, okName := idx["部门名称"]
	cp, okParent := idx["父部门ID"]
	co, okOrder := idx["排序"]
	if !okID || !okName || !okParent {
		return nil, apiErr(CodeInvalidImportFile, "import file lacks a required column (部门名称, 部门ID, 父部门ID)")
	}
	cell := func(rec []string, i int) string {
		if i < len(rec) {
			return rec[i]
		}
		return ""
	}
	tree := apiErr(CodeInvalidTree, "invalid department tree")
	rows := make([]partyRow, 0, len(recs)-1)
	byID := map[int]int{}
	names := map[[2]string]bool{}
	for _, rec := range recs[1:] {
		var r partyRow
		id, err1 := strconv.Atoi(cell(rec, ci))
		parent, err2 := strconv.Atoi(cell(rec, cp))
		r.id, r.parent, r.name = id, parent, cell(rec, cn)
		if err1 != nil || err2 != nil || id < 1 || parent < 0 || r.name == "" {
			return nil, tree
		}
		if (id == rootDepartmentID) != (parent == 0) {
			return nil, tree
		}
		if okOrder {
			if v := cell(rec, co); v != "" {
				n, err := strconv.ParseUint(v, 10, 32)
				if err != nil {
					return nil, tree
				}
				r.order, r.hasOrder = uint32(n), n != 0
			}
		}
		if _, dup := byID[id]; dup {
			return nil, apiErr(CodeDupPartyID, "duplicate partyid in import file: %d", id)
		}
		key := [2]string{strconv.Itoa(parent), r.name}
		if names[key] {
			return nil, apiErr(CodeDupSiblingName, "duplicate department name under one parent: %s", r.name)
		}
		names[key] = true
		byID[id] = len(rows)
		rows = append(rows, r)
	}
	// Every parent must be the root or a row of the file, without cycles.
	for _, r := range rows {
		seen := 0
		for p := r.parent; p != 0 && p != rootDepartmentID; {
			i, ok := byID[p]
			if !ok || seen > len(rows) {
				return nil, tree
			}
			p = rows[i].parent
			seen++
		}
	}
	return rows, nil
}
