package emulator

import (
	"bytes"
	"mime/multipart"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMediaUpload(t *testing.T) {
	t.Parallel()
	clk := newJobClock()
	e := setup(t, withClock(clk), immediate())
	tok := e.tok[SecretContact]

	t.Run("AnswersTheDocumentedShape", func(t *testing.T) {
		r := e.upload(t, tok, "file", "wework.txt", []byte("userid,name\n"))
		require.ElementsMatch(t, []string{"errcode", "errmsg", "type", "media_id", "created_at"}, keys(r))
		requireCode(t, r, 0, "")
		require.Equal(t, "file", r["type"])
		require.Equal(t, strconv.FormatInt(clk.Now().Unix(), 10), r["created_at"], "created_at is a string")
		id := r["media_id"].(string)
		require.Len(t, id, 44)
		require.NotEqual(t, id, e.upload(t, tok, "file", "wework.txt", []byte("userid,name\n"))["media_id"])
	})
	t.Run("EchoesTheMediaType", func(t *testing.T) {
		for typ, name := range map[string]string{"image": "a.PNG", "voice": "a.amr", "video": "a.mp4", "file": "a.bin"} {
			r := e.upload(t, tok, typ, name, []byte("0123456789"))
			requireCode(t, r, 0)
			require.Equal(t, typ, r["type"])
		}
	})
	t.Run("AnySecretMayUpload", func(t *testing.T) {
		requireCode(t, e.upload(t, e.tok[SecretApp], "file", "a.csv", []byte("abcdef")), 0)
		requireCode(t, e.upload(t, e.tok[SecretConsole], "file", "a.csv", []byte("abcdef")), 0)
	})
	t.Run("RejectsBadRequests", func(t *testing.T) {
		for _, tc := range []struct {
			name, typ, file string
			size            int
			code            int
		}{
			{"MissingType", "", "a.csv", 10, CodeInvalidMediaType},
			{"UnknownType", "doc", "a.csv", 10, CodeInvalidMediaType},
			{"EmptyFile", "file", "a.csv", 0, CodeEmptyMedia},
			{"FiveBytes", "file", "a.csv", 5, CodeInvalidFileSize},
			{"FileOver20MB", "file", "a.csv", 20<<20 + 1, CodeMediaTooLarge},
			{"ImageOver10MB", "image", "a.jpg", 10<<20 + 1, CodeMediaTooLarge},
			{"VoiceOver2MB", "voice", "a.amr", 2<<20 + 1, CodeMediaTooLarge},
			{"VideoOver10MB", "video", "a.mp4", 10<<20 + 1, CodeMediaTooLarge},
			{"ImageNotJPGOrPNG", "image", "a.txt", 10, CodeInvalidMediaKind},
			{"VoiceNotAMR", "voice", "a.mp3", 10, CodeInvalidMediaKind},
			{"VideoNotMP4", "video", "a.avi", 10, CodeInvalidMediaKind},
		} {
			t.Run(tc.name, func(t *testing.T) {
				requireCode(t, e.upload(t, tok, tc.typ, tc.file, make([]byte, tc.size)), tc.code)
			})
		}
	})
	t.Run("AcceptsSixBytesAnd20MB", func(t *testing.T) {
		requireCode(t, e.upload(t, tok, "file", "a.csv", make([]byte, 6)), 0)
		requireCode(t, e.upload(t, tok, "file", "a.csv", make([]byte, 20<<20)), 0)
	})
	t.Run("RejectsBodiesWithoutTheMediaPart", func(t *testing.T) {
		requireCode(t, e.post(t, "/cgi-bin/media/upload?type=file&access_token="+tok, "application/json", []byte(`{}`)), CodeEmptyMedia)
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, err := mw.CreateFormFile("file", "a.csv")
		require.NoError(t, err)
		_, _ = fw.Write([]byte("abcdefgh"))
		require.NoError(t, mw.Close())
		requireCode(t, e.post(t, "/cgi-bin/media/upload?type=file&access_token="+tok, mw.FormDataContentType(), body.Bytes()), CodeEmptyMedia)
	})
	t.Run("ChecksTheTokenFirst", func(t *testing.T) {
		requireCode(t, e.post(t, "/cgi-bin/media/upload?type=file", "text/plain", nil), CodeMissingToken)
	})
	t.Run("MediaIDExpiresAfterThreeDays", func(t *testing.T) {
		clk := newJobClock()
		e := setup(t, withClock(clk), immediate())
		id := e.mediaID(t, memberCSV("姓名,帐号,手机号,所在部门", "张三,zhangsan,13800000001,1"))
		clk.Add(72*time.Hour - time.Second)
		e.renewTokens(t)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/batch/syncuser", map[string]any{"media_id": id}), 0)
		e.srv.FinishJobs()
		clk.Add(time.Second)
		e.renewTokens(t)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/batch/syncuser", map[string]any{"media_id": id}), CodeInvalidMediaID)
	})
	t.Run("BatchNeedsAKnownMediaID", func(t *testing.T) {
		requireCode(t, e.contact(t, "POST", "/cgi-bin/batch/syncuser", map[string]any{}), CodeMissingMediaID)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/batch/replaceuser", map[string]any{"media_id": "nope"}), CodeInvalidMediaID)
		requireCode(t, e.contact(t, "POST", "/cgi-bin/batch/replaceparty", map[string]any{"media_id": ""}), CodeMissingMediaID)
	})
}
