package event_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/event"
)

// plainMessage is Message without its methods, so encoding/json decodes it by reflection:
// the reference DecodeMessage must agree with.
type plainMessage event.Message

// messageSeeds are bus messages and near misses for the decoder tests.
func messageSeeds(t testing.TB) [][]byte {
	raw := []byte(contactXML("create_user", `<UserID>zhangsan</UserID><Name><![CDATA[张三 "q" \ 😀]]></Name><Department>1,2</Department><ExtAttr><Item><Name>a</Name><Type>0</Type><Text><Value>v</Value></Text></Item></ExtAttr>`))
	e, err := event.Parse(raw)
	require.NoError(t, err)
	m := event.NewMessage(e, raw, "t", "wwcorp", time.Date(2026, 11, 21, 3, 4, 5, 6, time.UTC))
	good := m.AppendJSON(nil)
	return [][]byte{
		good,
		[]byte(`{"ID":"x","Corp_ID":"c","EVENT":"e","data":{"a":[1,2.5e3,-0,{"b":null}],"c":true},"create_time":-0}`),
		[]byte(`{"id":null,"tenant":"a","tenant":"b","data":null,"received_at":null,"create_time":null}`),
		[]byte(`{"id":"\u00e9\ud83d\ude00\ud800\udc00x\ud800\u0041\udc00","xml":"a\/b\b\f\n\r\t\\\""}`),
		[]byte("{\"id\":\"\xff\xfe\xe4\xb8\",\"tenant\":\"\xe4\xb8\xad\"}"),
		[]byte(`{"create_time":1.5}`), []byte(`{"create_time":"1"}`), []byte(`{"create_time":99999999999999999999}`),
		[]byte(`{"id":1}`), []byte(`{"received_at":"2026-11-21T03:04:05+08:00"}`), []byte(`{"received_at":"yesterday"}`),
		[]byte(`{"received_at":5}`), []byte(`{"data":[1,{"x":"\u12"}]}`), []byte(`{"a":{"b":[}`), []byte(`{"id":"x"} x`),
		[]byte(`null`), []byte(` null `), []byte(`[]`), []byte(`"x"`), []byte(``), []byte(`{`), []byte(`{"id":"x",}`),
		[]byte(`{"id" "x"}`), []byte(`{"id":"a` + "\n" + `"}`), []byte(`{"unknown":[[[{"k":"v"}]]],"id":"y"}`),
		[]byte(`{"data":01}`), []byte(`{"data":-}`), []byte(`{"data":1.}`), []byte(`{"data":1e+}`), []byte(`{"data":tru}`),
		[]byte(`{"ſ":1,"K":2,"id":"\u212a"}`),
	}
}

func TestDecodeMessage(t *testing.T) {
	t.Parallel()

	t.Run("RoundTripsWhatAppendJSONWrites", func(t *testing.T) {
		t.Parallel()
		raw := []byte(contactXML("update_user", `<UserID>lisi</UserID><NewUserID>li.si</NewUserID><Mobile>13800000000</Mobile>`))
		e, err := event.Parse(raw)
		require.NoError(t, err)
		want := event.NewMessage(e, raw, "tenant-1", "wwcorp", time.Date(2026, 11, 21, 3, 4, 5, 123456789, time.UTC))
		var got event.Message
		require.NoError(t, event.DecodeMessage(want.AppendJSON(nil), &got))
		require.Equal(t, *want, got)
		u, err := got.User()
		require.NoError(t, err)
		require.Equal(t, "li.si", u.NewUserID.Value)
	})

	t.Run("AgreesWithEncodingJSON", func(t *testing.T) {
		t.Parallel()
		for _, b := range messageSeeds(t) {
			requireSameMessage(t, b)
		}
	})

	t.Run("RejectsDeepNesting", func(t *testing.T) {
		t.Parallel()
		deep := []byte(`{"data":` + string(bytes.Repeat([]byte("["), 10001)) + string(bytes.Repeat([]byte("]"), 10001)) + `}`)
		var m event.Message
		require.ErrorContains(t, event.DecodeMessage(deep, &m), "max depth")
		requireSameMessage(t, deep)
	})
}

// requireSameMessage decodes b with DecodeMessage and with encoding/json's reflection:
// both fail, or both give the same message.
func requireSameMessage(t *testing.T, b []byte) {
	t.Helper()
	var want plainMessage
	errWant := json.Unmarshal(b, &want)
	var got event.Message
	errGot := event.DecodeMessage(b, &got)
	require.Equal(t, errWant == nil, errGot == nil, "input %q: encoding/json error %v, DecodeMessage error %v", b, errWant, errGot)
	if errWant == nil {
		require.Equal(t, want, plainMessage(got), "input %q", b)
	}
}

// FuzzDecodeMessage checks DecodeMessage against encoding/json on any input.
func FuzzDecodeMessage(f *testing.F) {
	for _, b := range messageSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		requireSameMessage(t, b)
	})
}

// FuzzDecodeData checks the typed accessors' decoding of data against json.Decoder with
// UseNumber (what they used before): both fail, or both give the same map.
func FuzzDecodeData(f *testing.F) {
	for _, b := range messageSeeds(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"user_id":"u","department":[1,2],"ext_attr":[{"name":"a","text":{"value":"v"}}],"gender":1e0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var want map[string]any
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		errWant := d.Decode(&want)
		got, errGot := event.DecodeDataForTest(b)
		require.Equal(t, errWant == nil, errGot == nil, "input %q: encoding/json error %v, decodeData error %v", b, errWant, errGot)
		if errWant == nil {
			require.Equal(t, want, got, "input %q", b)
		}
	})
}
