package event_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/event"
)

// contactXML returns a compact change_contact callback with the given
// change type and extra elements.
func contactXML(changeType, body string) string {
	return "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>" +
		"<CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType>" +
		"<Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[" + changeType + "]]></ChangeType>" +
		body + "</xml>"
}

func parse(t *testing.T, s string) *event.Event {
	t.Helper()
	e, err := event.Parse([]byte(s))
	require.NoError(t, err)
	return e
}

func TestParse(t *testing.T) {
	t.Parallel()

	t.Run("ReadsCommonFieldsOfTheCreateUserSample", func(t *testing.T) {
		t.Parallel()
		e := parse(t, sampleCreateUser)
		require.Equal(t, "toUser", e.ToUserName)
		require.Equal(t, "sys", e.FromUserName)
		require.Equal(t, int64(1403610513), e.CreateTime)
		require.Equal(t, "event", e.MsgType)
		require.Equal(t, event.EventChangeContact, e.Event)
		require.Equal(t, event.ChangeCreateUser, e.ChangeType)
		v, ok := e.Lookup("Department")
		require.True(t, ok)
		require.Equal(t, "1,2,3", v)
		_, ok = e.Lookup("NewUserID")
		require.False(t, ok)
	})

	t.Run("ExposesNestedElementsAsFields", func(t *testing.T) {
		t.Parallel()
		fields := parse(t, sampleCreateUser).Fields()
		require.Len(t, fields, 23)
		ext := fields[len(fields)-1]
		require.Equal(t, "ExtAttr", ext.Name)
		require.Equal(t, []event.Field{
			{Name: "Item", Children: []event.Field{
				{Name: "Name", Value: "爱好"},
				{Name: "Type", Value: "0"},
				{Name: "Text", Children: []event.Field{{Name: "Value", Value: "旅游"}}},
			}},
			{Name: "Item", Children: []event.Field{
				{Name: "Name", Value: "卡号"},
				{Name: "Type", Value: "1"},
				{Name: "Web", Children: []event.Field{
					{Name: "Title", Value: "企业微信"},
					{Name: "Url", Value: "https://work.weixin.qq.com"},
				}},
			}},
		}, ext.Children)
	})

	t.Run("ParsesEveryOfficialSample", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name, xml, event, changeType string
		}{
			{"create_user", sampleCreateUser, event.EventChangeContact, event.ChangeCreateUser},
			{"update_user", sampleUpdateUser, event.EventChangeContact, event.ChangeUpdateUser},
			{"delete_user", sampleDeleteUser, event.EventChangeContact, event.ChangeDeleteUser},
			{"create_party", sampleCreateParty, event.EventChangeContact, event.ChangeCreateParty},
			{"update_party", sampleUpdateParty, event.EventChangeContact, event.ChangeUpdateParty},
			{"delete_party", sampleDeleteParty, event.EventChangeContact, event.ChangeDeleteParty},
			{"update_tag", sampleUpdateTag, event.EventChangeContact, event.ChangeUpdateTag},
			{"batch_job_result import", sampleBatchJobImport, event.EventBatchJobResult, ""},
			{"batch_job_result export", sampleBatchJobExport, event.EventBatchJobResult, ""},
		} {
			e := parse(t, tc.xml)
			require.Equal(t, tc.event, e.Event, tc.name)
			require.Equal(t, tc.changeType, e.ChangeType, tc.name)
			require.Equal(t, "event", e.MsgType, tc.name)
			require.NotZero(t, e.CreateTime, tc.name)
		}
	})

	t.Run("AcceptsCDATAAndPlainValuesAlike", func(t *testing.T) {
		t.Parallel()
		cdata := parse(t, `<xml><ChangeType><![CDATA[create_party]]></ChangeType><Id><![CDATA[2]]></Id><Name><![CDATA[R&D]]></Name></xml>`)
		plain := parse(t, `<xml><ChangeType>create_party</ChangeType><Id>2</Id><Name>R&amp;D</Name></xml>`)
		require.Equal(t, cdata.Fields(), plain.Fields())
		require.Equal(t, "create_party", plain.ChangeType)
	})

	t.Run("AcceptsAnyWhitespaceBetweenElements", func(t *testing.T) {
		t.Parallel()
		compact := parse(t, strings.NewReplacer("\n", "", "\t", "").Replace(sampleCreateUser))
		crlf := parse(t, strings.ReplaceAll(sampleCreateUser, "\n", "\r\n  "))
		require.Equal(t, compact.Fields(), parse(t, sampleCreateUser).Fields())
		require.Equal(t, compact.Fields(), crlf.Fields())
	})

	t.Run("KeepsCDATAContentVerbatim", func(t *testing.T) {
		t.Parallel()
		e := parse(t, "<xml><Name><![CDATA[ <b>&amp; x\n]]></Name></xml>")
		v, _ := e.Lookup("Name")
		require.Equal(t, " <b>&amp; x\n", v)
	})

	t.Run("TakesOnlyTheCDATAOfAPrettyPrintedLeaf", func(t *testing.T) {
		t.Parallel()
		e := parse(t, "<xml><Name>\n\t\t<![CDATA[张三]]>\n\t</Name><Alias> a <![CDATA[b]]> c </Alias></xml>")
		v, _ := e.Lookup("Name")
		require.Equal(t, "张三", v)
		v, _ = e.Lookup("Alias")
		require.Equal(t, " a b c ", v, "text around CDATA that is not whitespace is kept")
	})

	t.Run("DecodesEntityReferencesInPlainText", func(t *testing.T) {
		t.Parallel()
		e := parse(t, `<xml><Name>&lt;a&gt; &amp; &quot;b&quot; &apos;c&apos; &#20013;&#x6587;</Name></xml>`)
		v, _ := e.Lookup("Name")
		require.Equal(t, `<a> & "b" 'c' 中文`, v)
	})

	t.Run("SkipsCommentsAndProcessingInstructions", func(t *testing.T) {
		t.Parallel()
		e := parse(t, "\uFEFF<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE xml [<!ELEMENT xml ANY>]>\n<!-- head -->"+
			"<xml><!-- c --><?pi x?><Name>a<!-- inside -->b</Name><Event><![CDATA[x]]><!-- c --></Event></xml>\n<!-- tail -->\n")
		v, _ := e.Lookup("Name")
		require.Equal(t, "ab", v)
		require.Equal(t, "x", e.Event)
	})

	t.Run("IgnoresAttributesAndAcceptsSelfClosingElements", func(t *testing.T) {
		t.Parallel()
		e := parse(t, `<xml version="1"><Name a='>' b="/>"/><Alias x="1">al</Alias><Empty></Empty></xml>`)
		v, ok := e.Lookup("Name")
		require.True(t, ok)
		require.Empty(t, v)
		v, _ = e.Lookup("Alias")
		require.Equal(t, "al", v)
		_, ok = e.Lookup("Empty")
		require.True(t, ok)
		require.Empty(t, parse(t, `<xml/>`).Fields())
	})

	t.Run("TrimsWhitespaceAroundEventNames", func(t *testing.T) {
		t.Parallel()
		e := parse(t, "<xml><Event>\n change_contact \n</Event><ChangeType> create_user\t</ChangeType><CreateTime> 42 </CreateTime></xml>")
		require.Equal(t, event.EventChangeContact, e.Event)
		require.Equal(t, event.ChangeCreateUser, e.ChangeType)
		require.Equal(t, int64(42), e.CreateTime)
	})

	t.Run("TakesTheFirstOfRepeatedCommonFields", func(t *testing.T) {
		t.Parallel()
		e := parse(t, "<xml><Event>a</Event><Event>b</Event></xml>")
		require.Equal(t, "a", e.Event)
	})

	t.Run("LeavesCreateTimeZeroWhenNotANumber", func(t *testing.T) {
		t.Parallel()
		require.Zero(t, parse(t, "<xml><CreateTime>soon</CreateTime></xml>").CreateTime)
	})

	t.Run("DoesNotAliasTheInput", func(t *testing.T) {
		t.Parallel()
		raw := []byte(sampleDeleteUser)
		e, err := event.Parse(raw)
		require.NoError(t, err)
		for i := range raw {
			raw[i] = 'x'
		}
		v, _ := e.Lookup("UserID")
		require.Equal(t, "zhangsan", v)
		require.Equal(t, event.ChangeDeleteUser, e.ChangeType)
	})

	t.Run("RejectsMalformedInputWithErrMalformed", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name, xml, says string
		}{
			{"empty", "", "no root element"},
			{"whitespace only", " \n\t", "no root element"},
			{"garbage", "hello, world", "text before the root element"},
			{"binary", "\x00\x01\x02<xml>", "text before the root element"},
			{"json", `{"xml":1}`, "text before the root element"},
			{"other root", "<root><UserID>a</UserID></root>", "root element is <root>, want <xml>"},
			{"no root name", "< xml></xml>", "at the start of a tag name"},
			{"truncated sample", sampleCreateUser[:len(sampleCreateUser)/2], "unclosed CDATA section in <BizMail>"},
			{"truncated sample at a line end", sampleCreateUser[:strings.Index(sampleCreateUser, "<Gender>")], "unexpected end of input inside <xml>"},
			{"truncated in a tag", "<xml><Name", "unexpected end of input in tag <Name>"},
			{"truncated after open root", "<xml>", "unexpected end of input inside <xml>"},
			{"truncated end tag", "<xml></xml", "unterminated end tag </xml>"},
			{"unclosed CDATA", "<xml><Name><![CDATA[abc</Name></xml>", "unclosed CDATA section in <Name>"},
			{"mismatched end tag", "<xml><Name>a</Alias></xml>", "end tag </Alias> does not match <Name>"},
			{"unclosed element", "<xml><Name>a</xml>", "end tag </xml> does not match <Name>"},
			{"bad entity", "<xml><Name>a & b</Name></xml>", "invalid entity reference in <Name>"},
			{"unknown entity", "<xml><Name>&nbsp;</Name></xml>", "invalid entity reference"},
			{"bad char ref", "<xml><Name>&#0;</Name></xml>", "invalid entity reference"},
			{"upper-case hex char ref", "<xml><Name>&#X41;</Name></xml>", "invalid entity reference"},
			{"surrogate char ref", "<xml><Name>&#xD800;</Name></xml>", "invalid entity reference"},
			{"unclosed comment", "<xml><!-- x</xml>", "unclosed comment"},
			{"comment closed by its own opening", "<xml><!-->x</xml>", "unclosed comment"},
			{"unclosed processing instruction", "<?xml version='1.0'", "unclosed processing instruction"},
			{"unclosed doctype", "<!DOCTYPE xml [", "unclosed DOCTYPE"},
			{"content after root", "<xml></xml>trailing", "content after </xml>"},
			{"two roots", "<xml></xml><xml></xml>", "content after </xml>"},
			{"bad tag name", "<xml><Na\"me>x</Na\"me></xml>", "invalid character"},
			{"unterminated attribute", `<xml a="1></xml>`, "unterminated attribute value"},
			{"declaration in content", "<xml><!ENTITY x 'y'></xml>", "unexpected markup declaration"},
			{"too deep", strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40), "root element is <a>"},
			{"too deep under xml", "<xml>" + strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40) + "</xml>", "nested deeper than 32"},
		} {
			_, err := event.Parse([]byte(tc.xml))
			require.ErrorIs(t, err, event.ErrMalformed, tc.name)
			require.ErrorContains(t, err, tc.says, tc.name)
		}
	})
}
