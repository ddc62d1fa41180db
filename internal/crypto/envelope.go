package crypto

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Envelope is the outer, unencrypted part of a POST callback.
type Envelope struct {
	ToUserName string
	AgentID    string
	Encrypt    string
}

// ParseEnvelope reads a POST body in either form WeCom uses: the XML
// <xml><ToUserName/><Encrypt/><AgentID/></xml> (values plain or CDATA, any element order,
// whitespace between elements) or the JSON {"tousername","encrypt","agentid"} (keys in any
// case). It returns an error wrapping ErrEnvelope when the body is neither or has no
// non-empty Encrypt.
func ParseEnvelope(body []byte) (Envelope, error) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return Envelope{}, fmt.Errorf("%w: empty body", ErrEnvelope)
	}
	switch b[0] {
	case '<':
		return parseXMLEnvelope(b)
	case '{':
		return parseJSONEnvelope(b)
	default:
		return Envelope{}, fmt.Errorf("%w: body is neither XML nor JSON", ErrEnvelope)
	}
}

func parseJSONEnvelope(b []byte) (Envelope, error) {
	var v struct {
		ToUserName string `json:"tousername"`
		Encrypt    string `json:"encrypt"`
		AgentID    any    `json:"agentid"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return Envelope{}, fmt.Errorf("%w: malformed JSON: %v", ErrEnvelope, err)
	}
	if v.Encrypt == "" {
		return Envelope{}, fmt.Errorf("%w: no encrypt field", ErrEnvelope)
	}
	env := Envelope{ToUserName: v.ToUserName, Encrypt: v.Encrypt}
	switch a := v.AgentID.(type) {
	case string:
		env.AgentID = a
	case float64:
		env.AgentID = fmt.Sprintf("%.0f", a)
	}
	return env, nil
}

// parseXMLEnvelope is a small scanner for the flat envelope. encoding/xml would cost more
// than the whole decryption, and the envelope's shape is fixed: a root <xml> holding
// leaf elements whose text is plain or a single CDATA section.
func parseXMLEnvelope(b []byte) (Envelope, error) {
	if bytes.HasPrefix(b, []byte("<?xml")) {
		end := bytes.Index(b, []byte("?>"))
		if end < 0 {
			return Envelope{}, fmt.Errorf("%w: unterminated XML declaration", ErrEnvelope)
		}
		b = bytes.TrimSpace(b[end+2:])
	}
	if !bytes.HasPrefix(b, []byte("<xml>")) {
		return Envelope{}, fmt.Errorf("%w: root element is not <xml>", ErrEnvelope)
	}
	if !bytes.HasSuffix(b, []byte("</xml>")) {
		return Envelope{}, fmt.Errorf("%w: missing </xml> (truncated body?)", ErrEnvelope)
	}
	b = b[len("<xml>") : len(b)-len("</xml>")]
	var env Envelope
	seen := false
	for {
		b = bytes.TrimLeft(b, " \t\r\n")
		if len(b) == 0 {
			break
		}
		name, text, rest, err := nextLeaf(b)
		if err != nil {
			return Envelope{}, err
		}
		b = rest
		switch name {
		case "Encrypt":
			env.Encrypt = text
			seen = true
		case "ToUserName":
			env.ToUserName = text
		case "AgentID":
			env.AgentID = text
		}
	}
	if !seen || env.Encrypt == "" {
		return Envelope{}, fmt.Errorf("%w: no Encrypt element", ErrEnvelope)
	}
	return env, nil
}

// nextLeaf reads one <Name>text</Name> or <Name><![CDATA[text]]></Name> element (or an
// empty <Name/>) from the start of b and returns the rest.
func nextLeaf(b []byte) (name, text string, rest []byte, err error) {
	if len(b) < 3 || b[0] != '<' {
		return "", "", nil, fmt.Errorf("%w: expected an element", ErrEnvelope)
	}
	end := bytes.IndexByte(b, '>')
	if end < 0 {
		return "", "", nil, fmt.Errorf("%w: unterminated tag", ErrEnvelope)
	}
	tag := b[1:end]
	if len(tag) > 0 && tag[len(tag)-1] == '/' {
		return string(bytes.TrimSpace(tag[:len(tag)-1])), "", b[end+1:], nil
	}
	if len(tag) == 0 || bytes.ContainsAny(tag, " \t\r\n/<!?") {
		return "", "", nil, fmt.Errorf("%w: unexpected tag %q", ErrEnvelope, truncate(tag))
	}
	body := b[end+1:]
	var val []byte
	if bytes.HasPrefix(body, []byte("<![CDATA[")) {
		cend := bytes.Index(body, []byte("]]>"))
		if cend < 0 {
			return "", "", nil, fmt.Errorf("%w: unterminated CDATA in <%s>", ErrEnvelope, truncate(tag))
		}
		val = body[len("<![CDATA["):cend]
		body = body[cend+3:]
	} else {
		lt := bytes.IndexByte(body, '<')
		if lt < 0 {
			return "", "", nil, fmt.Errorf("%w: unterminated <%s>", ErrEnvelope, truncate(tag))
		}
		val = bytes.TrimSpace(body[:lt])
		body = body[lt:]
	}
	closing := make([]byte, 0, len(tag)+3)
	closing = append(append(append(closing, "</"...), tag...), '>')
	if !bytes.HasPrefix(body, closing) {
		return "", "", nil, fmt.Errorf("%w: <%s> is not closed where expected", ErrEnvelope, truncate(tag))
	}
	return string(tag), string(val), body[len(closing):], nil
}

func truncate(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "…"
	}
	return string(b)
}
