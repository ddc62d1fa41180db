package event_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"testing"
	"time"

	"github.com/wecomsync/wecomsync/internal/event"
)

// BenchmarkParseCreateUser measures Parse of the official create_user sample;
// the target is a few microseconds per callback.
func BenchmarkParseCreateUser(b *testing.B) {
	raw := []byte(sampleCreateUser)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := event.Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewMessageMarshal measures what the callback server does after
// Parse: NewMessage (SHA-256 id, data encoding) and the JSON body.
func BenchmarkNewMessageMarshal(b *testing.B) {
	raw := []byte(sampleCreateUser)
	e, err := event.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 11, 21, 3, 4, 5, 123456789, time.UTC)
	b.Run("MarshalJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := event.NewMessage(e, raw, "acme", "wwcorp", at)
			if _, err := m.MarshalJSON(); err != nil {
				b.Fatal(err)
			}
		}
	})
	// encoding/json calls MarshalJSON and then re-scans its output; this is
	// what a caller pays for plain json.Marshal(m).
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := event.NewMessage(e, raw, "acme", "wwcorp", at)
			if _, err := json.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParseSubjectNewMessageMarshal is the whole per-callback cost of
// this package on the callback path.
func BenchmarkParseSubjectNewMessageMarshal(b *testing.B) {
	raw := []byte(sampleCreateUser)
	at := time.Date(2026, 11, 21, 3, 4, 5, 123456789, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		e, err := event.Parse(raw)
		if err != nil {
			b.Fatal(err)
		}
		_ = e.Subject("wwcorp")
		m := event.NewMessage(e, raw, "acme", "wwcorp", at)
		if _, err := m.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodingXMLCreateUser is the reflection decoder this package
// avoids, for comparison only.
func BenchmarkEncodingXMLCreateUser(b *testing.B) {
	raw := []byte(sampleCreateUser)
	type item struct {
		Name string
		Type int
		Text struct{ Value string }
		Web  struct{ Title, Url string }
	}
	type user struct {
		ToUserName, FromUserName, MsgType, Event, ChangeType string
		CreateTime                                           int64
		UserID, Name, Department, IsLeaderInDept, DirectLeader, Position, Mobile,
		Email, BizMail, Avatar, Alias, Telephone, Address string
		MainDepartment, Gender, Status int
		ExtAttr                        struct{ Item []item }
	}
	b.ReportAllocs()
	for b.Loop() {
		var u user
		if err := xml.Unmarshal(raw, &u); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeMessageUser measures what the worker does with each event: decode the
// bus message and read its member change. encoding_json is the same work by reflection
// (the message, then data into a map with UseNumber, as the accessors did before).
func BenchmarkDecodeMessageUser(b *testing.B) {
	raw := []byte(sampleCreateUser)
	e, err := event.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	body := event.NewMessage(e, raw, "acme", "wwcorp", time.Date(2026, 11, 21, 3, 4, 5, 123456789, time.UTC)).AppendJSON(nil)
	b.Run("DecodeMessage", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var m event.Message
			if err := event.DecodeMessage(body, &m); err != nil {
				b.Fatal(err)
			}
			if _, err := m.User(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var m plainMessage
			if err := json.Unmarshal(body, &m); err != nil {
				b.Fatal(err)
			}
			d := json.NewDecoder(bytes.NewReader(m.Data))
			d.UseNumber()
			var data map[string]any
			if err := d.Decode(&data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
