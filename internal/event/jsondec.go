package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// A JSON decoder without reflection for what the worker reads of every event: the bus
// message (DecodeMessage) and its data object (the typed accessors). It fails on the
// inputs encoding/json fails on, and otherwise gives what encoding/json gives (into
// Message's fields; into map[string]any with UseNumber for data):
// FuzzDecodeMessage and FuzzDecodeData compare the two. (After an error the fields it
// set differ: encoding/json validates first and sets nothing on a syntax error, and
// goes on past a type error; callers discard the message on any error.) It takes less
// than half of encoding/json's time, most of which went to reflection and to validating
// the input in a separate pass.

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

// jsonDec reads one JSON text from b.
type jsonDec struct {
	b     []byte
	i     int
	depth int
}

func (d *jsonDec) fail(what string) error {
	if d.i >= len(d.b) {
		return fmt.Errorf("invalid JSON: unexpected end of input, %s", what)
	}
	return fmt.Errorf("invalid JSON: unexpected %q at offset %d, %s", d.b[d.i], d.i, what)
}

func (d *jsonDec) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// end reports an error unless only whitespace is left.
func (d *jsonDec) end() error {
	d.ws()
	if d.i != len(d.b) {
		return d.fail("expected the end after the top-level value")
	}
	return nil
}

// value decodes any value: map[string]any, []any, string, json.Number, bool or nil.
func (d *jsonDec) value() (any, error) {
	d.ws()
	if d.i >= len(d.b) {
		return nil, d.fail("expected a value")
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.str()
	case c == '-' || c >= '0' && c <= '9':
		n, err := d.number()
		return json.Number(n), err
	case c == 't':
		return true, d.lit("true")
	case c == 'f':
		return false, d.lit("false")
	case c == 'n':
		return nil, d.lit("null")
	}
	return nil, d.fail("expected a value")
}

func (d *jsonDec) push() error {
	if d.depth++; d.depth > maxJSONDepth {
		return errors.New("invalid JSON: exceeded max depth")
	}
	return nil
}

func (d *jsonDec) object() (map[string]any, error) {
	if err := d.push(); err != nil {
		return nil, err
	}
	d.i++ // {
	m := map[string]any{}
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		d.depth--
		return m, nil
	}
	for {
		k, err := d.key()
		if err != nil {
			return nil, err
		}
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		m[k] = v
		if more, err := d.next('}'); err != nil || !more {
			return m, err
		}
	}
}

// key reads `"name":`.
func (d *jsonDec) key() (string, error) {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return "", d.fail("expected a string key")
	}
	k, err := d.str()
	if err != nil {
		return "", err
	}
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != ':' {
		return "", d.fail("expected ':' after a key")
	}
	d.i++
	return k, nil
}

// next reads ',' (more is true) or the closing byte (the container ends).
func (d *jsonDec) next(closing byte) (more bool, err error) {
	d.ws()
	if d.i < len(d.b) {
		switch d.b[d.i] {
		case ',':
			d.i++
			return true, nil
		case closing:
			d.i++
			d.depth--
			return false, nil
		}
	}
	return false, d.fail("expected ',' or '" + string(closing) + "'")
}

func (d *jsonDec) array() ([]any, error) {
	if err := d.push(); err != nil {
		return nil, err
	}
	d.i++ // [
	a := []any{}
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		d.depth--
		return a, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		if more, err := d.next(']'); err != nil || !more {
			return a, err
		}
	}
}

func (d *jsonDec) lit(want string) error {
	if len(d.b)-d.i < len(want) || string(d.b[d.i:d.i+len(want)]) != want {
		return d.fail("expected " + want)
	}
	d.i += len(want)
	return nil
}

// number reads a number's literal text, checked against JSON's grammar.
func (d *jsonDec) number() (string, error) {
	start := d.i
	if d.b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.b) && d.b[d.i] == '0':
		d.i++
	case d.i < len(d.b) && d.b[d.i] >= '1' && d.b[d.i] <= '9':
		d.digits()
	default:
		return "", d.fail("expected a digit")
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if d.digits() == 0 {
			return "", d.fail("expected a digit after the decimal point")
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if d.digits() == 0 {
			return "", d.fail("expected a digit in the exponent")
		}
	}
	return string(d.b[start:d.i]), nil
}

func (d *jsonDec) digits() int {
	n := 0
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
		n++
	}
	return n
}

// str reads a string (d.b[d.i] is its opening quote) as encoding/json unquotes it:
// invalid UTF-8 and unpaired surrogate escapes become U+FFFD.
func (d *jsonDec) str() (string, error) {
	d.i++
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c == '"' {
			raw := d.b[start:d.i]
			d.i++
			if utf8.Valid(raw) {
				return string(raw), nil
			}
			return string(fixUTF8(nil, raw)), nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		d.i++
	}
	out := make([]byte, 0, d.i-start+16)
	out = fixUTF8(out, d.b[start:d.i])
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(out), nil
		case c < 0x20:
			return "", d.fail("control character in a string")
		case c == '\\':
			if d.i+1 >= len(d.b) {
				d.i++
				return "", d.fail("expected an escape")
			}
			d.i++
			switch e := d.b[d.i]; e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				out = append(out, unescaped[e])
				d.i++
			case 'u':
				r, ok := hex4(d.b[d.i+1:])
				if !ok {
					d.i++
					return "", d.fail("expected four hex digits")
				}
				d.i += 5
				if utf16.IsSurrogate(r) {
					if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
						if r2, ok := hex4(d.b[d.i+2:]); ok {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								out = utf8.AppendRune(out, dec)
								d.i += 6
								continue
							}
						}
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", d.fail("invalid escape")
			}
		default:
			s := d.i
			for d.i < len(d.b) && d.b[d.i] != '"' && d.b[d.i] != '\\' && d.b[d.i] >= 0x20 {
				d.i++
			}
			out = fixUTF8(out, d.b[s:d.i])
		}
	}
	return "", d.fail("unterminated string")
}

// unescaped maps the letter of a one-letter escape to the byte it stands for.
var unescaped = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// fixUTF8 appends b to dst with each invalid UTF-8 byte replaced by U+FFFD.
func fixUTF8(dst, b []byte) []byte {
	if utf8.Valid(b) {
		return append(dst, b...)
	}
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, b[:n]...)
		}
		b = b[n:]
	}
	return dst
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skip checks and skips one value, returning its text.
func (d *jsonDec) skip() ([]byte, error) {
	d.ws()
	start := d.i
	if d.i >= len(d.b) {
		return nil, d.fail("expected a value")
	}
	var err error
	switch c := d.b[d.i]; {
	case c == '{':
		err = d.skipObject()
	case c == '[':
		err = d.skipArray()
	case c == '"':
		err = d.skipString()
	case c == '-' || c >= '0' && c <= '9':
		_, err = d.number()
	case c == 't':
		err = d.lit("true")
	case c == 'f':
		err = d.lit("false")
	case c == 'n':
		err = d.lit("null")
	default:
		err = d.fail("expected a value")
	}
	return d.b[start:d.i], err
}

func (d *jsonDec) skipObject() error {
	if err := d.push(); err != nil {
		return err
	}
	d.i++ // {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		d.depth--
		return nil
	}
	for {
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return d.fail("expected a string key")
		}
		if err := d.skipString(); err != nil {
			return err
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return d.fail("expected ':' after a key")
		}
		d.i++
		if _, err := d.skip(); err != nil {
			return err
		}
		if more, err := d.next('}'); err != nil || !more {
			return err
		}
	}
}

func (d *jsonDec) skipArray() error {
	if err := d.push(); err != nil {
		return err
	}
	d.i++ // [
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		d.depth--
		return nil
	}
	for {
		if _, err := d.skip(); err != nil {
			return err
		}
		if more, err := d.next(']'); err != nil || !more {
			return err
		}
	}
}

// skipString checks a string's escapes and skips it.
func (d *jsonDec) skipString() error {
	d.i++
	for d.i < len(d.b) {
		switch c := d.b[d.i]; {
		case c == '"':
			d.i++
			return nil
		case c < 0x20:
			return d.fail("control character in a string")
		case c == '\\':
			if d.i+1 >= len(d.b) {
				d.i++
				return d.fail("expected an escape")
			}
			switch d.b[d.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i += 2
			case 'u':
				if _, ok := hex4(d.b[d.i+2:]); !ok {
					d.i += 2
					return d.fail("expected four hex digits")
				}
				d.i += 6
			default:
				d.i++
				return d.fail("invalid escape")
			}
		default:
			d.i++
		}
	}
	return d.fail("unterminated string")
}

// decodeData decodes a message's data: a JSON object (numbers as json.Number), or null
// (a nil map), as json.Decoder with UseNumber decodes the first value of data into a
// map[string]any.
func decodeData(data []byte) (map[string]any, error) {
	d := jsonDec{b: data}
	d.ws()
	if d.i >= len(d.b) {
		return nil, d.fail("expected an object")
	}
	switch d.b[d.i] {
	case '{':
		return d.object()
	case 'n':
		return nil, d.lit("null")
	}
	if _, err := d.skip(); err != nil {
		return nil, err
	}
	return nil, errors.New("data is not a JSON object")
}

// messageFields are the JSON names of Message's fields, which encoding/json also matches
// case-insensitively.
var messageFields = []string{"id", "tenant", "corp_id", "event", "change_type", "create_time", "received_at", "data", "xml"}

// DecodeMessage decodes a bus message (JSON, as AppendJSON writes it) into m, as
// json.Unmarshal would: fields absent from b, or null in it, are left as they are, keys
// match field names case-insensitively, unknown keys are ignored, and a value of the
// wrong type is an error. It is Message's UnmarshalJSON.
func DecodeMessage(b []byte, m *Message) error {
	d := jsonDec{b: b}
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == 'n' {
		if err := d.lit("null"); err != nil {
			return err
		}
		return d.end()
	}
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		if _, err := d.skip(); err != nil {
			return err
		}
		return errors.New("decoding message: not a JSON object")
	}
	d.i++
	d.depth++
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return d.end()
	}
	for {
		k, err := d.key()
		if err != nil {
			return err
		}
		if err := d.messageField(m, k); err != nil {
			return err
		}
		more, err := d.next('}')
		if err != nil {
			return err
		}
		if !more {
			return d.end()
		}
	}
}

// UnmarshalJSON decodes m with DecodeMessage. (Do not embed Message in another struct
// that is decoded from JSON: this method would be promoted and decode only Message's
// fields.)
func (m *Message) UnmarshalJSON(b []byte) error { return DecodeMessage(b, m) }

func (d *jsonDec) messageField(m *Message, k string) error {
	name := k
	if !isMessageField(name) {
		name = ""
		for _, f := range messageFields {
			if strings.EqualFold(f, k) {
				name = f
				break
			}
		}
	}
	switch name {
	case "id":
		return d.stringField(&m.ID, k)
	case "tenant":
		return d.stringField(&m.Tenant, k)
	case "corp_id":
		return d.stringField(&m.CorpID, k)
	case "event":
		return d.stringField(&m.Event, k)
	case "change_type":
		return d.stringField(&m.ChangeType, k)
	case "xml":
		return d.stringField(&m.XML, k)
	case "create_time":
		raw, err := d.skip()
		if err != nil || string(raw) == "null" {
			return err
		}
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return fmt.Errorf("decoding message: %s is %s, not an integer", k, raw)
		}
		m.CreateTime = n
		return nil
	case "received_at":
		raw, err := d.skip()
		if err != nil {
			return err
		}
		var t time.Time
		if err := t.UnmarshalJSON(raw); err != nil {
			return fmt.Errorf("decoding message: %s: %w", k, err)
		}
		if string(raw) != "null" {
			m.ReceivedAt = t
		}
		return nil
	case "data":
		raw, err := d.skip()
		if err != nil {
			return err
		}
		m.Data = append(m.Data[:0:0], raw...)
		return nil
	}
	_, err := d.skip()
	return err
}

func isMessageField(k string) bool {
	for _, f := range messageFields {
		if f == k {
			return true
		}
	}
	return false
}

// stringField decodes a string (null leaves *dst alone).
func (d *jsonDec) stringField(dst *string, k string) error {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '"' {
		s, err := d.str()
		if err == nil {
			*dst = s
		}
		return err
	}
	raw, err := d.skip()
	if err != nil || string(raw) == "null" {
		return err
	}
	return fmt.Errorf("decoding message: %s is %s, not a string", k, raw)
}
