package event_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"regexp"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/event"
)

var validSubject = regexp.MustCompile(`^wecom\.events\.[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){1,2}$`)

// FuzzParse checks that Parse never panics, fails only with ErrMalformed,
// and that whatever it accepts becomes a valid subject and a message that
// marshals to valid JSON and round-trips.
func FuzzParse(f *testing.F) {
	for _, s := range allSamples {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		"", "<xml/>", "<xml><Name>&lt;&#20013;&#x41;</Name></xml>",
		contactXML("update_user", "<UserID>u</UserID><Gender>x</Gender><Department>1,,2</Department><ExtAttr> </ExtAttr>"),
		contactXML("create_user", "<UserID>u</UserID><ExtAttr><Item><Type>2</Type><Mini><A>1</A></Mini></Item><Item/></ExtAttr>"),
		"<xml><Event>x.y</Event><A><B>1</B><B>2</B></A><A>3</A></xml>",
		"<?xml version=\"1.0\"?><!DOCTYPE xml><xml><!-- c --><A a='>'/></xml>",
		"<xml><Name><![CDATA[abc", "<xml><BatchJob>  </BatchJob><Event>batch_job_result</Event></xml>",
	} {
		f.Add([]byte(s))
	}
	at := time.Date(2026, 11, 21, 3, 4, 5, 6, time.UTC)
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := event.Parse(raw)
		if err != nil {
			require.ErrorIs(t, err, event.ErrMalformed)
			return
		}
		subject := e.Subject("ww.corp")
		require.Regexp(t, validSubject, subject)
		_ = e.Fields()

		m := event.NewMessage(e, raw, "acme", "ww.corp", at)
		require.Equal(t, subject, m.Subject())
		require.True(t, json.Valid(m.Data), "data %s", m.Data)
		b, err := m.MarshalJSON()
		require.NoError(t, err)
		require.True(t, json.Valid(b), "message %s", b)
		var got event.Message
		require.NoError(t, json.Unmarshal(b, &got))
		require.Equal(t, m.Data, got.Data)
		require.Equal(t, m.ID, got.ID)
		require.Equal(t, m.Event, got.Event)
		require.Equal(t, m.ChangeType, got.ChangeType)
		if utf8.Valid(raw) {
			// Invalid UTF-8 is replaced by U+FFFD, as encoding/json does.
			require.Equal(t, m.XML, got.XML)
		}

		// The accessors may refuse the message, but only with our errors.
		for _, read := range []func() error{
			func() error { _, err := got.User(); return err },
			func() error { _, err := got.Party(); return err },
			func() error { _, err := got.Tag(); return err },
			func() error { _, err := got.BatchJob(); return err },
		} {
			if err := read(); err != nil {
				require.True(t, errors.Is(err, event.ErrWrongKind) || errors.Is(err, event.ErrInvalidData), err.Error())
			}
		}
	})
}

// FuzzParseAcceptsWellFormed checks Parse against encoding/xml: whatever
// encoding/xml reads as one un-prefixed <xml> root (without DOCTYPE, not
// deeper than the scanner's limit) Parse must accept too.
func FuzzParseAcceptsWellFormed(f *testing.F) {
	for _, s := range allSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !wellFormed(raw) {
			return
		}
		_, err := event.Parse(raw)
		require.NoError(t, err, "encoding/xml accepts %q", raw)
	})
}

// wellFormed reports whether encoding/xml reads raw as a document the
// scanner is meant to accept.
func wellFormed(raw []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(raw))
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return depth == 0 && roots == 1
		}
		if err != nil {
			return false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space != "" || (depth == 0 && t.Name.Local != "xml") {
				return false
			}
			if depth == 0 {
				roots++
			}
			if depth++; depth > 30 {
				return false
			}
		case xml.EndElement:
			depth--
		case xml.Directive:
			return false
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return false
			}
		}
	}
}

// FuzzAccessors checks that the typed accessors never panic on any data a
// consumer might receive, and fail only with this package's errors.
func FuzzAccessors(f *testing.F) {
	for _, s := range allSamples {
		e, err := event.Parse([]byte(s))
		require.NoError(f, err)
		m := event.NewMessage(e, []byte(s), "acme", "ww1", time.Time{})
		f.Add(m.Event, m.ChangeType, []byte(m.Data))
	}
	f.Add("change_contact", "create_user", []byte(`{"user_id":1,"ext_attr":[{"text":{"value":1},"web":[]},"x"],"department":[1.5]}`))
	f.Fuzz(func(t *testing.T, ev, changeType string, data []byte) {
		m := &event.Message{ID: "x", Event: ev, ChangeType: changeType, Data: data}
		for _, read := range []func() error{
			func() error { _, err := m.User(); return err },
			func() error { _, err := m.Party(); return err },
			func() error { _, err := m.Tag(); return err },
			func() error { _, err := m.BatchJob(); return err },
		} {
			if err := read(); err != nil {
				require.True(t, errors.Is(err, event.ErrWrongKind) || errors.Is(err, event.ErrInvalidData), err.Error())
			}
		}
	})
}
