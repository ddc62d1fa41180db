package event

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAppendString(t *testing.T) {
	t.Parallel()

	t.Run("MatchesEncodingJSONWithoutHTMLEscaping", func(t *testing.T) {
		t.Parallel()
		for _, s := range []string{
			"", "plain ascii text that is long enough for words", "a\"b\\c\nd\re\tf\x00g\x1fh\x7f",
			"张三 产品经理 广州市", "<xml><![CDATA[x]]></xml> & more", "\u2028 and \u2029 mid \u2028",
			"12345678\"12345678\\1234567\x01", "bad \xff utf8 \xe2\x80 end", "\xe2\x80\xa8", "\xe2\x82\xac euro",
		} {
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(false)
			require.NoError(t, enc.Encode(s))
			require.Equal(t, bytes.TrimSuffix(want.Bytes(), []byte("\n")), appendString(nil, s), "%q", s)
		}
	})
}

func TestSnake(t *testing.T) {
	t.Parallel()

	t.Run("ConvertsWeComNames", func(t *testing.T) {
		t.Parallel()
		for in, want := range map[string]string{
			"UserID": "user_id", "NewUserID": "new_user_id", "MainDepartment": "main_department",
			"IsLeaderInDept": "is_leader_in_dept", "OpenUserID": "open_user_id", "AgentID": "agent_id",
			"MsgId": "msg_id", "Location_X": "location_x", "URL": "url", "user_id": "user_id",
			"ToUserName": "to_user_name", "Item": "item", "SuiteId": "suite_id", "A1B": "a1_b",
		} {
			require.Equal(t, want, snake(in), in)
		}
	})
}

func BenchmarkAppendString(b *testing.B) {
	s := "<xml>\n\t<ToUserName><![CDATA[toUser]]></ToUserName>\n\t<Name><![CDATA[张三]]></Name>\n\t<Avatar><![CDATA[http://wx.qlogo.cn/mmopen/ajNVdqHZLLA3WJ6DSZUfiakYe37PKnQhBIeOQBO4czqrnZDS79FH5Wm5m4X69TBicnHFlhiafvDwklOpZeXYQQ2icg/0]]></Avatar>\n</xml>"
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = appendString(buf[:0], s)
	}
}
