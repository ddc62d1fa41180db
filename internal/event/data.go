package event

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file encodes an Event's elements as the message's data object,
// straight from the node list with append, because encoding/json on a
// map[string]any costs several times the whole parse.

// class selects which typed fields apply to an event.
type class uint8

const (
	classOther class = 1 << iota // unknown event or change type
	classUser
	classParty
	classTag
	classBatch
	classAll = classOther | classUser | classParty | classTag | classBatch
)

func (e *Event) class() class {
	switch e.Event {
	case EventChangeContact:
		switch e.ChangeType {
		case ChangeCreateUser, ChangeUpdateUser, ChangeDeleteUser:
			return classUser
		case ChangeCreateParty, ChangeUpdateParty, ChangeDeleteParty:
			return classParty
		case ChangeUpdateTag:
			return classTag
		}
	case EventBatchJobResult:
		return classBatch
	}
	return classOther
}

// kind is how a known field's text is encoded.
type kind uint8

const (
	kindSkip       kind = iota + 1 // a message field, not in data
	kindCreateTime                 // in data only when it is not an integer
	kindString
	kindInt
	kindIntList
	kindStringList
	kindExtAttr
	kindBatchJob
)

// spec describes one known element.
type spec struct {
	xml   string // element name as WeCom sends it
	key   string // data key
	kind  kind
	class class // events it is typed in; elsewhere it is a plain element
}

// table is a set of known elements, looked up by XML name or, for spellings
// WeCom does not use (UserId for UserID), by snake_case key.
type table struct {
	specs  []spec
	byXML  map[string]int
	bySnak map[string]int
}

func newTable(specs []spec) *table {
	if len(specs) > 64 {
		panic("event: a field table is limited to 64 entries (a uint64 tracks duplicates)")
	}
	t := &table{specs: specs, byXML: map[string]int{}, bySnak: map[string]int{}}
	for i, s := range specs {
		t.byXML[s.xml] = i
		t.bySnak[s.key] = i
	}
	return t
}

// lookup returns the data key for an element and, when it is a known field
// of class c, its index in t.
func (t *table) lookup(c class, name string) (key string, idx int, known bool) {
	if t == nil {
		return snake(name), -1, false
	}
	i, ok := t.byXML[name]
	if ok {
		key = t.specs[i].key
	} else {
		key = snake(name)
		// Message fields are recognised by their exact name only, the way
		// Event.common reads them; a variant such as <event> stays in data.
		if i, ok = t.bySnak[key]; !ok || t.specs[i].kind == kindSkip || t.specs[i].kind == kindCreateTime {
			return key, -1, false
		}
	}
	if t.specs[i].class&c == 0 {
		return key, -1, false
	}
	return key, i, true
}

var topTable = newTable([]spec{
	{"ToUserName", "to_user_name", kindString, classAll},
	{"FromUserName", "from_user_name", kindString, classAll},
	{"MsgType", "msg_type", kindString, classAll},
	{"CreateTime", "create_time", kindCreateTime, classAll},
	{"Event", "event", kindSkip, classAll},
	{"ChangeType", "change_type", kindSkip, classAll},

	{"UserID", "user_id", kindString, classUser},
	{"NewUserID", "new_user_id", kindString, classUser},
	{"Name", "name", kindString, classUser | classParty},
	{"Department", "department", kindIntList, classUser},
	{"MainDepartment", "main_department", kindInt, classUser},
	{"IsLeaderInDept", "is_leader_in_dept", kindIntList, classUser},
	{"DirectLeader", "direct_leader", kindStringList, classUser},
	{"Position", "position", kindString, classUser},
	{"Mobile", "mobile", kindString, classUser},
	{"Gender", "gender", kindInt, classUser},
	{"Email", "email", kindString, classUser},
	{"BizMail", "biz_mail", kindString, classUser},
	{"Status", "status", kindInt, classUser},
	{"Avatar", "avatar", kindString, classUser},
	{"Alias", "alias", kindString, classUser},
	{"Telephone", "telephone", kindString, classUser},
	{"Address", "address", kindString, classUser},
	{"ExtAttr", "ext_attr", kindExtAttr, classUser},

	{"Id", "id", kindInt, classParty},
	{"ParentId", "parent_id", kindInt, classParty},
	{"Order", "order", kindInt, classParty},

	{"TagId", "tag_id", kindInt, classTag},
	{"AddUserItems", "add_user_items", kindStringList, classTag},
	{"DelUserItems", "del_user_items", kindStringList, classTag},
	{"AddPartyItems", "add_party_items", kindIntList, classTag},
	{"DelPartyItems", "del_party_items", kindIntList, classTag},

	{"BatchJob", "batch_job", kindBatchJob, classBatch},
})

var extAttrItemTable = newTable([]spec{
	{"Name", "name", kindString, classAll},
	{"Type", "type", kindInt, classAll},
})

var batchJobTable = newTable([]spec{
	{"JobId", "job_id", kindString, classAll},
	{"JobType", "job_type", kindString, classAll},
	{"ErrCode", "err_code", kindInt, classAll},
	{"ErrMsg", "err_msg", kindString, classAll},
})

// appendData appends the data object of the event.
func (e *Event) appendData(dst []byte) []byte {
	return appendObject(dst, e.nodes, 0, len(e.nodes), topTable, e.class())
}

// other is an element that is not a known field: its key and node index.
type other struct {
	key string
	idx int
}

// appendObject appends the elements nodes[from:to] (siblings) as a JSON
// object: known fields of t typed by their kind (first occurrence wins),
// then the other elements sorted by key, repeated keys as arrays.
func appendObject(dst []byte, nodes []node, from, to int, t *table, c class) []byte {
	dst = append(dst, '{')
	var seen uint64
	var buf [8]other
	others := buf[:0]
	first := true
	for j := from; j < to; j = nodes[j].end {
		key, i, known := t.lookup(c, nodes[j].name)
		if !known {
			others = append(others, other{key, j})
			continue
		}
		sp := &t.specs[i]
		if seen&(1<<i) != 0 || sp.kind == kindSkip {
			continue
		}
		seen |= 1 << i
		if sp.kind == kindCreateTime {
			// create_time is a message field; keep only text that is not a
			// number, so nothing the callback carried is lost.
			if _, ok := parseInt(trimSpace(nodes[j].value)); ok {
				continue
			}
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendKey(dst, key)
		dst = appendTyped(dst, nodes, j, sp.kind)
	}
	if len(others) > 1 {
		// Sorting groups repeated keys and keeps the output deterministic;
		// the stable sort keeps repeated elements in document order.
		slices.SortStableFunc(others, func(a, b other) int { return strings.Compare(a.key, b.key) })
	}
	for k := 0; k < len(others); {
		n := 1
		for k+n < len(others) && others[k+n].key == others[k].key {
			n++
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendKey(dst, others[k].key)
		if n == 1 {
			dst = appendPlain(dst, nodes, others[k].idx)
		} else {
			dst = append(dst, '[')
			for x := k; x < k+n; x++ {
				if x > k {
					dst = append(dst, ',')
				}
				dst = appendPlain(dst, nodes, others[x].idx)
			}
			dst = append(dst, ']')
		}
		k += n
	}
	return append(dst, '}')
}

func appendKey(dst []byte, key string) []byte {
	dst = appendString(dst, key)
	return append(dst, ':')
}

// appendPlain appends an element that is not a known field: its text as a
// string, or an object of its children.
func appendPlain(dst []byte, nodes []node, j int) []byte {
	if nodes[j].end > j+1 {
		return appendObject(dst, nodes, j+1, nodes[j].end, nil, 0)
	}
	return appendString(dst, nodes[j].value)
}

// appendTyped appends a known field's value. Text that does not fit the
// kind is appended as its raw string.
func appendTyped(dst []byte, nodes []node, j int, k kind) []byte {
	n := &nodes[j]
	hasChildren := n.end > j+1
	switch k {
	case kindInt:
		if v, ok := parseInt(trimSpace(n.value)); ok && !hasChildren {
			return strconv.AppendInt(dst, v, 10)
		}
	case kindIntList, kindStringList:
		if hasChildren {
			break
		}
		mark := len(dst)
		if out, ok := appendList(dst, n.value, k == kindIntList); ok {
			return out
		}
		dst = dst[:mark]
	case kindExtAttr:
		if hasChildren {
			dst = append(dst, '[')
			for c := j + 1; c < n.end; c = nodes[c].end {
				if c > j+1 {
					dst = append(dst, ',')
				}
				// Every child is an item; WeCom only sends <Item>.
				dst = appendObject(dst, nodes, c+1, nodes[c].end, extAttrItemTable, classAll)
			}
			return append(dst, ']')
		}
		if allSpace(n.value) {
			return append(dst, "[]"...)
		}
	case kindBatchJob:
		if hasChildren {
			return appendObject(dst, nodes, j+1, n.end, batchJobTable, classAll)
		}
		if allSpace(n.value) {
			return append(dst, "{}"...)
		}
	default:
		if hasChildren {
			return appendObject(dst, nodes, j+1, n.end, nil, 0)
		}
	}
	return appendString(dst, n.value)
}

// appendList appends a comma-separated list as a JSON array, skipping empty
// items; it reports false when an item of an integer list is not an integer.
func appendList(dst []byte, s string, ints bool) ([]byte, bool) {
	dst = append(dst, '[')
	first := true
	for s != "" {
		item := s
		if i := strings.IndexByte(s, ','); i >= 0 {
			item, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		item = trimSpace(item)
		if item == "" {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		if ints {
			v, ok := parseInt(item)
			if !ok {
				return dst, false
			}
			dst = strconv.AppendInt(dst, v, 10)
		} else {
			dst = appendString(dst, item)
		}
	}
	return append(dst, ']'), true
}

// snake converts an XML element name to snake_case: "MainDepartment" ->
// "main_department", "UserID" -> "user_id", "Location_X" -> "location_x".
// Names already in snake_case are unchanged.
func snake(name string) string {
	// Names inside ExtAttr items are not in a table; spare the allocation.
	switch name {
	case "Item":
		return "item"
	case "Text":
		return "text"
	case "Value":
		return "value"
	case "Web":
		return "web"
	case "Title":
		return "title"
	case "Url":
		return "url"
	}
	b := make([]byte, 0, len(name)+4)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isUpper(c) {
			if i > 0 {
				prev := name[i-1]
				next := byte(0)
				if i+1 < len(name) {
					next = name[i+1]
				}
				if isLower(prev) || isDigit(prev) || (isUpper(prev) && isLower(next)) {
					b = append(b, '_')
				}
			}
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// with encoding/json; '<', '>' and '&' are not escaped.
func appendString(dst []byte, s string) []byte {
	if !utf8.ValidString(s) {
		return appendStringSlow(dst, s)
	}
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Skip 8 bytes at a time while none of them can need escaping: no
		// control byte, '"', '\\', or 0xE2 (the lead byte of U+2028/U+2029).
		// The bit tricks may report false positives, never false negatives.
		for i+8 <= len(s) {
			w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
				uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
			if (below(w, 0x20)|hasByte(w, '"')|hasByte(w, '\\')|hasByte(w, 0xE2))&hi == 0 {
				i += 8
				continue
			}
			break
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		switch {
		case c < utf8.RuneSelf && jsonSafe[c]:
			i++
			continue
		case c < utf8.RuneSelf:
			dst = append(dst, s[start:i]...)
			dst = appendEscape(dst, c)
		case c == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xA8 || s[i+2] == 0xA9):
			// U+2028 and U+2029 are valid JSON but not valid JavaScript
			// source; escape them like encoding/json.
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[s[i+2]&0xF])
			i += 2
		default:
			i++
			continue
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const (
	lo = 0x0101010101010101
	hi = 0x8080808080808080
)

// below sets the high bit of (at least) every byte of w that is < n (n <= 0x80).
func below(w uint64, n byte) uint64 { return (w - lo*uint64(n)) &^ w }

// hasByte sets the high bit of (at least) every byte of w equal to b.
func hasByte(w uint64, b byte) uint64 { return below(w^(lo*uint64(b)), 1) }

func appendEscape(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
}

// appendStringSlow is appendString for invalid UTF-8: every invalid byte
// becomes U+FFFD.
func appendStringSlow(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = appendEscape(dst, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()
