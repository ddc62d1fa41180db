package event

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrMalformed is wrapped by every error Parse returns: the input is not
// well-formed XML with an <xml> root element.
var ErrMalformed = errors.New("malformed xml")

// maxDepth bounds element nesting; WeCom nests at most three levels
// (ExtAttr/Item/Text), so deeper input is hostile and rejected to keep the
// recursive scanner's stack small.
const maxDepth = 32

// Event is one parsed callback. The common fields are exposed directly; every
// top-level element (common ones included) is available through Lookup and
// Fields. MsgType, Event, ChangeType and CreateTime are trimmed of
// surrounding whitespace, and the common fields have invalid UTF-8 bytes
// replaced by U+FFFD (as JSON encoding would). An Event is immutable after
// Parse and safe for concurrent reads.
type Event struct {
	// ToUserName is the corp id the callback was addressed to.
	ToUserName string
	// FromUserName is the sender, "sys" for contact events.
	FromUserName string
	// CreateTime is the event time in unix seconds; 0 when absent or not an integer.
	CreateTime int64
	// MsgType is "event" for every event callback.
	MsgType string
	// Event is the event name, such as "change_contact"; "" when absent.
	Event string
	// ChangeType is the change_contact change type, such as "create_user"; "" when absent.
	ChangeType string

	raw   string // the decrypted XML; every node string points into it unless decoded
	nodes []node // all elements below the root, in document order (pre-order)
}

// node is one element. The children of nodes[i] are nodes[i+1:nodes[i].end],
// walked sibling by sibling with j = nodes[j].end.
type node struct {
	name  string
	value string // decoded text of a leaf; "" for an element with children
	end   int
}

// Field is one element of a callback as carried on the wire.
type Field struct {
	// Name is the XML element name, such as "MainDepartment".
	Name string
	// Value is the decoded text (CDATA and entities resolved); "" when the
	// element has children.
	Value string
	// Children are the child elements, for nested elements such as ExtAttr.
	Children []Field
}

// Parse parses the decrypted XML of a callback. It never panics. It returns
// an error wrapping ErrMalformed, naming the problem and its byte offset, when
// raw is not well-formed XML with an <xml> root (empty, truncated, an unclosed
// CDATA section, mismatched tags, a bad entity reference, ...). An unknown
// Event or ChangeType is not an error. Parse copies raw once; the returned
// Event does not alias it.
func Parse(raw []byte) (*Event, error) {
	p := parser{s: string(raw)}
	// One '<' per tag: about half of them open an element, so this sizes the
	// node slice in one allocation for typical input.
	p.nodes = make([]node, 0, bytes.Count(raw, []byte{'<'})/2+1)
	if err := p.document(); err != nil {
		return nil, err
	}
	e := &Event{raw: p.s, nodes: p.nodes}
	e.common()
	return e, nil
}

// common fills the exported common fields from the first occurrence of each.
func (e *Event) common() {
	var seen uint8
	for j := 0; j < len(e.nodes); j = e.nodes[j].end {
		n := &e.nodes[j]
		var bit uint8
		switch n.name {
		case "ToUserName":
			bit = 1
		case "FromUserName":
			bit = 2
		case "CreateTime":
			bit = 4
		case "MsgType":
			bit = 8
		case "Event":
			bit = 16
		case "ChangeType":
			bit = 32
		default:
			continue
		}
		if seen&bit != 0 {
			continue
		}
		seen |= bit
		// The common fields go into the message envelope as they are, so
		// make them valid UTF-8 the way JSON encoding would; otherwise a
		// message would not survive a JSON round trip unchanged.
		switch bit {
		case 1:
			e.ToUserName = validUTF8(n.value)
		case 2:
			e.FromUserName = validUTF8(n.value)
		case 4:
			e.CreateTime, _ = parseInt(trimSpace(n.value))
		case 8:
			e.MsgType = validUTF8(trimSpace(n.value))
		case 16:
			e.Event = validUTF8(trimSpace(n.value))
		case 32:
			e.ChangeType = validUTF8(trimSpace(n.value))
		}
	}
}

// Lookup returns the text of the first top-level element with the given XML
// name (for example "UserID") and whether there is one. The text of an
// element with children is "".
func (e *Event) Lookup(name string) (string, bool) {
	if e == nil {
		return "", false
	}
	for j := 0; j < len(e.nodes); j = e.nodes[j].end {
		if e.nodes[j].name == name {
			return e.nodes[j].value, true
		}
	}
	return "", false
}

// Fields returns every top-level element in document order, with nested
// children. It allocates a fresh tree on each call.
func (e *Event) Fields() []Field {
	if e == nil {
		return nil
	}
	return fields(e.nodes, 0, len(e.nodes))
}

func fields(nodes []node, from, to int) []Field {
	var out []Field
	for j := from; j < to; j = nodes[j].end {
		f := Field{Name: nodes[j].name, Value: nodes[j].value}
		if nodes[j].end > j+1 {
			f.Children = fields(nodes, j+1, nodes[j].end)
		}
		out = append(out, f)
	}
	return out
}

// parser is a recursive-descent scanner over the whole input string.
type parser struct {
	s     string
	pos   int
	nodes []node
}

// piece is a run of element content: plain text (entities not yet decoded)
// or the inside of a CDATA section.
type piece struct {
	s     string
	cdata bool
}

func (p *parser) fail(format string, args ...any) error {
	return fmt.Errorf("parsing event xml at byte %d: %s: %w", p.pos, fmt.Sprintf(format, args...), ErrMalformed)
}

func (p *parser) document() error {
	if strings.HasPrefix(p.s, "\uFEFF") {
		p.pos = 3
	}
	if err := p.misc(true); err != nil {
		return err
	}
	if p.pos >= len(p.s) {
		return p.fail("no root element")
	}
	if p.s[p.pos] != '<' {
		return p.fail("text before the root element")
	}
	p.pos++
	name, err := p.name()
	if err != nil {
		return err
	}
	if name != "xml" {
		return p.fail("root element is <%s>, want <xml>", clip(name))
	}
	closed, err := p.attrs(name)
	if err != nil {
		return err
	}
	if !closed {
		if err := p.content(name, 0, nil); err != nil {
			return err
		}
	}
	if err := p.misc(false); err != nil {
		return err
	}
	if p.pos < len(p.s) {
		return p.fail("content after </xml>")
	}
	return nil
}

// misc skips whitespace, comments and processing instructions, and in the
// prolog a DOCTYPE declaration.
func (p *parser) misc(prolog bool) error {
	for {
		p.skipSpace()
		rest := p.s[p.pos:]
		switch {
		case strings.HasPrefix(rest, "<?"):
			if err := p.skipPast(2, "?>", "unclosed processing instruction"); err != nil {
				return err
			}
		case strings.HasPrefix(rest, "<!--"):
			if err := p.skipPast(4, "-->", "unclosed comment"); err != nil {
				return err
			}
		case prolog && strings.HasPrefix(rest, "<!DOCTYPE"):
			if err := p.doctype(); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// doctype skips <!DOCTYPE ...>, including an internal subset in brackets.
// Entities it declares are not expanded (a reference to one is an error).
func (p *parser) doctype() error {
	depth := 0
	for i := p.pos + 2; i < len(p.s); i++ {
		switch c := p.s[i]; c {
		case '"', '\'':
			j := strings.IndexByte(p.s[i+1:], c)
			if j < 0 {
				i = len(p.s)
				break
			}
			i += j + 1
		case '[':
			depth++
		case ']':
			depth--
		case '>':
			if depth <= 0 {
				p.pos = i + 1
				return nil
			}
		}
	}
	return p.fail("unclosed DOCTYPE declaration")
}

// skipPast skips a construct whose opening of length open is at p.pos, up
// to and including end.
func (p *parser) skipPast(open int, end, what string) error {
	i := strings.Index(p.s[p.pos+open:], end)
	if i < 0 {
		return p.fail("%s", what)
	}
	p.pos += open + i + len(end)
	return nil
}

func (p *parser) skipSpace() {
	for p.pos < len(p.s) && isSpace(p.s[p.pos]) {
		p.pos++
	}
}

// name reads an element name at p.pos. Names are taken leniently (any bytes
// up to a delimiter) because WeCom only sends ASCII names.
func (p *parser) name() (string, error) {
	start := p.pos
	for p.pos < len(p.s) && !nameEnd[p.s[p.pos]] {
		p.pos++
	}
	if p.pos == start {
		if p.pos >= len(p.s) {
			return "", p.fail("unexpected end of input in a tag")
		}
		return "", p.fail("invalid character %q at the start of a tag name", p.s[p.pos])
	}
	if p.pos < len(p.s) {
		switch c := p.s[p.pos]; {
		case isSpace(c), c == '>', c == '/':
		default:
			return "", p.fail("invalid character %q in tag name", c)
		}
	}
	return p.s[start:p.pos], nil
}

// attrs skips the attributes of a start tag and its closing '>' or '/>'.
// It reports whether the tag was self-closing.
func (p *parser) attrs(name string) (bool, error) {
	for p.pos < len(p.s) {
		switch c := p.s[p.pos]; c {
		case '>':
			p.pos++
			return false, nil
		case '/':
			if p.pos+1 < len(p.s) && p.s[p.pos+1] == '>' {
				p.pos += 2
				return true, nil
			}
			return false, p.fail("unexpected '/' in tag <%s>", clip(name))
		case '"', '\'':
			j := strings.IndexByte(p.s[p.pos+1:], c)
			if j < 0 {
				return false, p.fail("unterminated attribute value in tag <%s>", clip(name))
			}
			p.pos += j + 2
		case '<':
			return false, p.fail("unexpected '<' in tag <%s>", clip(name))
		default:
			p.pos++
		}
	}
	return false, p.fail("unexpected end of input in tag <%s>", clip(name))
}

// element parses one element whose '<' has been consumed.
func (p *parser) element(depth int) error {
	name, err := p.name()
	if err != nil {
		return err
	}
	idx := len(p.nodes)
	p.nodes = append(p.nodes, node{name: name})
	closed, err := p.attrs(name)
	if err != nil {
		return err
	}
	if !closed {
		var v string
		if err := p.content(name, depth, &v); err != nil {
			return err
		}
		p.nodes[idx].value = v
	}
	p.nodes[idx].end = len(p.nodes)
	return nil
}

// content parses an element's content up to and including its end tag.
// Child elements are appended to p.nodes; if there are none and value is not
// nil, the element's text is stored in *value.
func (p *parser) content(name string, depth int, value *string) error {
	var buf [4]piece
	pieces := buf[:0]
	hasChild := false
	for {
		i := strings.IndexByte(p.s[p.pos:], '<')
		if i < 0 {
			p.pos = len(p.s)
			return p.fail("unexpected end of input inside <%s>", clip(name))
		}
		if i > 0 && !hasChild {
			pieces = append(pieces, piece{s: p.s[p.pos : p.pos+i]})
		}
		p.pos += i
		rest := p.s[p.pos:]
		var next byte
		if len(rest) > 1 {
			next = rest[1]
		}
		switch {
		case next == '/':
			p.pos += 2
			// Fast path: the end tag names this element, as it nearly
			// always does; otherwise read the name to report it.
			if n := p.pos + len(name); n < len(p.s) && p.s[p.pos:n] == name && (p.s[n] == '>' || isSpace(p.s[n])) {
				p.pos = n
			} else {
				end, err := p.name()
				if err != nil {
					return err
				}
				if end != name {
					return p.fail("end tag </%s> does not match <%s>", clip(end), clip(name))
				}
			}
			p.skipSpace()
			if p.pos >= len(p.s) || p.s[p.pos] != '>' {
				return p.fail("unterminated end tag </%s>", clip(name))
			}
			p.pos++
			if hasChild || value == nil {
				return nil
			}
			v, ok := text(pieces)
			if !ok {
				return p.fail("invalid entity reference in <%s>", clip(name))
			}
			*value = v
			return nil
		case next == '!' && strings.HasPrefix(rest, "<![CDATA["):
			j := strings.Index(rest[9:], "]]>")
			if j < 0 {
				return p.fail("unclosed CDATA section in <%s>", clip(name))
			}
			if !hasChild {
				pieces = append(pieces, piece{s: rest[9 : 9+j], cdata: true})
			}
			p.pos += 9 + j + 3
		case next == '!' && strings.HasPrefix(rest, "<!--"):
			if err := p.skipPast(4, "-->", "unclosed comment"); err != nil {
				return err
			}
		case next == '?':
			if err := p.skipPast(2, "?>", "unclosed processing instruction"); err != nil {
				return err
			}
		case next == '!':
			return p.fail("unexpected markup declaration inside <%s>", clip(name))
		default:
			if depth >= maxDepth {
				return p.fail("elements nested deeper than %d", maxDepth)
			}
			hasChild = true
			p.pos++
			if err := p.element(depth + 1); err != nil {
				return err
			}
		}
	}
}

// text joins the content pieces of a leaf. When the leaf holds CDATA and the
// rest is whitespace (a pretty-printed sample), only the CDATA counts. It
// reports false for a bad entity reference.
func text(pieces []piece) (string, bool) {
	switch len(pieces) {
	case 0:
		return "", true
	case 1:
		if pieces[0].cdata {
			return pieces[0].s, true
		}
		return decode(pieces[0].s)
	}
	hasCDATA, otherSpace := false, true
	for _, pc := range pieces {
		if pc.cdata {
			hasCDATA = true
		} else if !allSpace(pc.s) {
			otherSpace = false
		}
	}
	if hasCDATA && otherSpace {
		kept := pieces[:0]
		for _, pc := range pieces {
			if pc.cdata {
				kept = append(kept, pc)
			}
		}
		pieces = kept
		if len(pieces) == 1 {
			return pieces[0].s, true
		}
	}
	n := 0
	for _, pc := range pieces {
		n += len(pc.s)
	}
	b := make([]byte, 0, n)
	for _, pc := range pieces {
		if pc.cdata {
			b = append(b, pc.s...)
			continue
		}
		var ok bool
		if b, ok = appendDecoded(b, pc.s); !ok {
			return "", false
		}
	}
	return string(b), true
}

// decode resolves entity references in plain text; it does not allocate when
// there are none.
func decode(s string) (string, bool) {
	if strings.IndexByte(s, '&') < 0 {
		return s, true
	}
	b, ok := appendDecoded(make([]byte, 0, len(s)), s)
	return string(b), ok
}

func appendDecoded(b []byte, s string) ([]byte, bool) {
	for {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			return append(b, s...), true
		}
		b = append(b, s[:i]...)
		s = s[i+1:]
		j := strings.IndexByte(s, ';')
		// The longest valid reference is "#x10FFFF" (8 bytes); leading zeros
		// are allowed by XML but never sent, so cap the search.
		if j <= 0 || j > 12 {
			return b, false
		}
		ref := s[:j]
		s = s[j+1:]
		switch ref {
		case "lt":
			b = append(b, '<')
		case "gt":
			b = append(b, '>')
		case "amp":
			b = append(b, '&')
		case "quot":
			b = append(b, '"')
		case "apos":
			b = append(b, '\'')
		default:
			r, ok := charRef(ref)
			if !ok {
				return b, false
			}
			b = utf8.AppendRune(b, r)
		}
	}
}

// charRef decodes "#123" or "#x7B" into a character allowed by XML 1.0.
func charRef(ref string) (rune, bool) {
	if len(ref) < 2 || ref[0] != '#' {
		return 0, false
	}
	digits, base := ref[1:], 10
	if digits[0] == 'x' {
		digits, base = digits[1:], 16
	}
	if digits == "" {
		return 0, false
	}
	var r rune
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		var d rune
		switch {
		case '0' <= c && c <= '9':
			d = rune(c - '0')
		case base == 16 && 'a' <= c && c <= 'f':
			d = rune(c-'a') + 10
		case base == 16 && 'A' <= c && c <= 'F':
			d = rune(c-'A') + 10
		default:
			return 0, false
		}
		r = r*rune(base) + d
		if r > utf8.MaxRune {
			return 0, false
		}
	}
	switch {
	case r == 0x9, r == 0xA, r == 0xD,
		0x20 <= r && r <= 0xD7FF,
		0xE000 <= r && r <= 0xFFFD,
		0x10000 <= r && r <= utf8.MaxRune:
		return r, true
	}
	return 0, false
}

// nameEnd marks the bytes that end a tag name.
var nameEnd = [256]bool{
	' ': true, '\t': true, '\n': true, '\r': true,
	'/': true, '>': true, '<': true, '=': true,
	'"': true, '\'': true, '&': true,
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

func allSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isSpace(s[i]) {
			return false
		}
	}
	return true
}

func trimSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// parseInt parses a base-10 int64 with an optional sign, without allocating.
func parseInt(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	neg := false
	switch s[0] {
	case '-':
		neg = true
		s = s[1:]
	case '+':
		s = s[1:]
	}
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	// 19 digits cannot overflow uint64, so the only check left is int64 range.
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

// validUTF8 returns s with every byte that is not part of valid UTF-8
// replaced by U+FFFD, as encoding/json does; s itself when it is valid.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return string(b)
}

// clip shortens wire text quoted in error messages.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
