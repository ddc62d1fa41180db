package emulator

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/crypto"
)

// exportKey is the documented sample key (API-FACTS §5.1).
const exportKey = "IJUiXNpvGbODwKEBSEsAeOAPAhkqHqNCF6g19t9wfg2"

// startExport submits an export with the contact token and returns its jobid.
func (e *env) startExport(t *testing.T, api string, body map[string]any) string {
	t.Helper()
	if _, ok := body["encoding_aeskey"]; !ok {
		body["encoding_aeskey"] = exportKey
	}
	r := e.contact(t, "POST", "/cgi-bin/export/"+api, body)
	requireCode(t, r, 0, "ok")
	id := r["jobid"].(string)
	require.LessOrEqual(t, len(id), 64)
	return id
}

type exportFile struct {
	URL  string
	Size int64
	MD5  string
}

// exportResult returns get_result's status and data_list.
func (e *env) exportResult(t *testing.T, id string) (int, []exportFile) {
	t.Helper()
	status, body := e.raw(t, "GET", "/cgi-bin/export/get_result?jobid="+id, e.tok[SecretContact], nil)
	require.Equal(t, http.StatusOK, status)
	var r struct {
		ErrCode  int          `json:"errcode"`
		Status   int          `json:"status"`
		DataList []exportFile `json:"data_list"`
	}
	require.NoError(t, json.Unmarshal(body, &r), "%s", body)
	require.Zero(t, r.ErrCode, "%s", body)
	return r.Status, r.DataList
}

func download(t *testing.T, url string, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// fetchBlocks downloads, checks size and md5 of, and decrypts every block.
func fetchBlocks(t *testing.T, files []exportFile) [][]byte {
	t.Helper()
	key, err := crypto.DecodeAESKey(exportKey)
	require.NoError(t, err)
	var out [][]byte
	for _, f := range files {
		status, ct := download(t, f.URL)
		require.Equal(t, http.StatusOK, status)
		require.EqualValues(t, f.Size, len(ct))
		sum := md5.Sum(ct)
		require.Equal(t, hex.EncodeToString(sum[:]), f.MD5)
		plain, err := io.ReadAll(crypto.NewFileDecrypter(bytes.NewReader(ct), key))
		require.NoError(t, err)
		require.True(t, json.Valid(plain), "%s", plain)
		out = append(out, plain)
	}
	return out
}

// listField concatenates the JSON array field of every block.
func listField(t *testing.T, blocks [][]byte, field string) []json.RawMessage {
	t.Helper()
	var all []json.RawMessage
	for _, b := range blocks {
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(b, &m))
		var items []json.RawMessage
		require.NoError(t, json.Unmarshal(m[field], &items), "%s", b)
		all = append(all, items...)
	}
	return all
}

func apiList(t *testing.T, e *env, path, field string) []json.RawMessage {
	t.Helper()
	status, body := e.raw(t, "GET", path, e.tok[SecretContact], nil)
	require.Equal(t, http.StatusOK, status)
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &m))
	var items []json.RawMessage
	require.NoError(t, json.Unmarshal(m[field], &items), "%s", body)
	return items
}

// requireSameJSON compares item lists value by value (key order and spacing aside).
func requireSameJSON(t *testing.T, want, got []json.RawMessage) {
	t.Helper()
	require.Equal(t, len(want), len(got))
	for i := range want {
		require.JSONEq(t, string(want[i]), string(got[i]), "item %d", i)
	}
}

func TestExportContent(t *testing.T) {
	t.Parallel()
	e := setup(t, immediate(), withSeed(120))

	t.Run("SimpleUserIsUserSimplelist", func(t *testing.T) {
		_, files := e.exportResult(t, e.startExport(t, "simple_user", map[string]any{}))
		require.Len(t, files, 1)
		blocks := fetchBlocks(t, files)
		requireSameJSON(t, apiList(t, e, "/cgi-bin/user/simplelist?department_id=1&fetch_child=1", "userlist"), listField(t, blocks, "userlist"))
	})
	t.Run("UserIsUserList", func(t *testing.T) {
		_, files := e.exportResult(t, e.startExport(t, "user", map[string]any{"block_size": 1000000}))
		blocks := fetchBlocks(t, files)
		got := listField(t, blocks, "userlist")
		require.Len(t, got, 120)
		requireSameJSON(t, apiList(t, e, "/cgi-bin/user/list?department_id=1&fetch_child=1", "userlist"), got)
	})
	t.Run("DepartmentIsDepartmentList", func(t *testing.T) {
		_, files := e.exportResult(t, e.startExport(t, "department", map[string]any{}))
		blocks := fetchBlocks(t, files)
		requireSameJSON(t, apiList(t, e, "/cgi-bin/department/list", "department"), listField(t, blocks, "department"))
	})
	t.Run("TagUserIsTagGet", func(t *testing.T) {
		_, files := e.exportResult(t, e.startExport(t, "taguser", map[string]any{"tagid": 1}))
		blocks := fetchBlocks(t, files)
		require.Len(t, blocks, 1)
		status, want := e.raw(t, "GET", "/cgi-bin/tag/get?tagid=1", e.tok[SecretContact], nil)
		require.Equal(t, http.StatusOK, status)
		var w map[string]any
		require.NoError(t, json.Unmarshal(want, &w))
		delete(w, "errcode")
		delete(w, "errmsg")
		wb, _ := json.Marshal(w)
		require.JSONEq(t, string(wb), string(blocks[0]))
	})
	t.Run("CompletionIsCalledBack", func(t *testing.T) {
		e := setup(t, immediate())
		for api, typ := range map[string]string{"simple_user": "export_simple_user", "user": "export_user",
			"department": "export_department", "taguser": "export_taguser"} {
			id := e.startExport(t, api, map[string]any{"tagid": 1})
			ev := e.recv.next(t)
			require.Equal(t, "batch_job_result", ev["Event"])
			require.Equal(t, "sys", ev["FromUserName"])
			require.Equal(t, id, ev["BatchJob/JobId"])
			require.Equal(t, typ, ev["BatchJob/JobType"])
			require.Equal(t, "0", ev["BatchJob/ErrCode"])
		}
	})
}

func TestExportBlocks(t *testing.T) {
	t.Parallel()
	e := setup(t, immediate(), withSeed(25000))

	t.Run("SplitsByBlockSize", func(t *testing.T) {
		_, files := e.exportResult(t, e.startExport(t, "simple_user", map[string]any{"block_size": 10000}))
		require.Len(t, files, 3)
		blocks := fetchBlocks(t, files)
		for i, n := range []int{10000, 10000, 5000} {
			require.Len(t, listField(t, blocks[i:i+1], "userlist"), n, "block %d", i)
		}
		requireSameJSON(t, apiList(t, e, "/cgi-bin/user/simplelist?department_id=1&fetch_child=1", "userlist"), listField(t, blocks, "userlist"))
	})
	t.Run("TagUserCountsUsersAndDepartments", func(t *testing.T) {
		r := e.contact(t, "POST", "/cgi-bin/tag/create", map[string]any{"tagname": "大标签", "tagid": 500})
		requireCode(t, r, 0)
		for i := 0; i < 10010; i += 1000 {
			var batch []string
			for j := i + 1; j <= min(i+1000, 10010); j++ {
				batch = append(batch, fmt.Sprintf("u%06d", j))
			}
			requireCode(t, e.contact(t, "POST", "/cgi-bin/tag/addtagusers", map[string]any{"tagid": 500, "userlist": batch}), 0)
		}
		requireCode(t, e.contact(t, "POST", "/cgi-bin/tag/addtagusers", map[string]any{"tagid": 500, "partylist": []int{1, 2}}), 0)
		_, files := e.exportResult(t, e.startExport(t, "taguser", map[string]any{"tagid": 500, "block_size": 10000}))
		require.Len(t, files, 2)
		blocks := fetchBlocks(t, files)
		require.Len(t, listField(t, blocks[:1], "userlist"), 10000)
		require.Len(t, listField(t, blocks[:1], "partylist"), 0)
		require.Len(t, listField(t, blocks[1:], "userlist"), 10)
		require.Len(t, listField(t, blocks[1:], "partylist"), 2)
		for _, b := range blocks {
			var m map[string]any
			require.NoError(t, json.Unmarshal(b, &m))
			require.Equal(t, "大标签", m["tagname"])
		}
	})
}

func TestExportValidation(t *testing.T) {
	t.Parallel()
	e := setup(t, immediate())
	for _, tc := range []struct {
		name string
		api  string
		body map[string]any
		code int
	}{
		{"MissingKey", "user", map[string]any{}, CodeInvalidParameter},
		{"ShortKey", "user", map[string]any{"encoding_aeskey": exportKey[:42]}, CodeInvalidParameter},
		{"KeyWithPlus", "simple_user", map[string]any{"encoding_aeskey": "+" + exportKey[1:]}, CodeInvalidParameter},
		{"BlockSizeTooSmall", "department", map[string]any{"encoding_aeskey": exportKey, "block_size": 9999}, CodeInvalidParameter},
		{"BlockSizeTooLarge", "user", map[string]any{"encoding_aeskey": exportKey, "block_size": 1000001}, CodeInvalidParameter},
		{"TagMissing", "taguser", map[string]any{"encoding_aeskey": exportKey}, CodeInvalidTagID},
		{"TagUnknown", "taguser", map[string]any{"encoding_aeskey": exportKey, "tagid": 999}, CodeInvalidTagID},
		{"BadJSON", "user", nil, CodeDataFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body any = tc.body
			if tc.body == nil {
				body = "{not json"
			}
			requireCode(t, e.contact(t, "POST", "/cgi-bin/export/"+tc.api, body), tc.code)
		})
	}
	t.Run("BlockSizeBoundsAreInclusive", func(t *testing.T) {
		e.startExport(t, "user", map[string]any{"block_size": 10000})
		e.startExport(t, "user", map[string]any{"block_size": 1000000})
	})
	t.Run("NewIPRuleBlocksDirectoryExports", func(t *testing.T) {
		e := setup(t, immediate(), withNewIP())
		for _, api := range []string{"simple_user", "user", "department"} {
			requireCode(t, e.contact(t, "POST", "/cgi-bin/export/"+api, map[string]any{"encoding_aeskey": exportKey}), CodeNewIPForbidden)
		}
		e.startExport(t, "taguser", map[string]any{"tagid": 1})
		r := e.console(t, "POST", "/cgi-bin/export/user", map[string]any{"encoding_aeskey": exportKey})
		requireCode(t, r, 0)
	})
	t.Run("ResultIsForTheSubmitterOnly", func(t *testing.T) {
		id := e.startExport(t, "user", map[string]any{})
		requireCode(t, e.console(t, "GET", "/cgi-bin/export/get_result?jobid="+id, nil), CodeJobNotFound)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/export/get_result?jobid=nope", nil), CodeJobNotFound)
		requireCode(t, e.contact(t, "GET", "/cgi-bin/batch/getresult?jobid="+id, nil), CodeJobNotFound)
	})
}

func TestExportLifecycle(t *testing.T) {
	t.Parallel()

	t.Run("ProgressesWithTheServerClock", func(t *testing.T) {
		t.Parallel()
		clk := newJobClock()
		e := setup(t, slowJobs(clk)...)
		id := e.startExport(t, "user", map[string]any{})
		r := e.contact(t, "GET", "/cgi-bin/export/get_result?jobid="+id, nil)
		require.Equal(t, map[string]any{"errcode": 0.0, "errmsg": "ok", "status": 0.0}, r)
		clk.Add(5 * time.Second)
		st, files := e.exportResult(t, id)
		require.Equal(t, 1, st)
		require.Empty(t, files)
		clk.Add(5 * time.Second)
		st, files = e.exportResult(t, id)
		require.Equal(t, 2, st)
		require.Len(t, files, 1)
		require.Equal(t, "export_user", e.recv.next(t)["BatchJob/JobType"])
	})
	t.Run("URLsExpireTwoHoursAfterFinishing", func(t *testing.T) {
		t.Parallel()
		clk := newJobClock()
		e := setup(t, slowJobs(clk)...)
		id := e.startExport(t, "department", map[string]any{})
		require.Equal(t, 1, e.srv.FinishJobs())
		_, files := e.exportResult(t, id)
		clk.Add(2*time.Hour - time.Second)
		status, _ := download(t, files[0].URL)
		require.Equal(t, http.StatusOK, status)
		clk.Add(time.Second)
		status, _ = download(t, files[0].URL)
		require.Equal(t, http.StatusForbidden, status)
	})
	t.Run("ExpireToggleRefusesURLsNow", func(t *testing.T) {
		t.Parallel()
		e := setup(t, immediate())
		id := e.startExport(t, "department", map[string]any{})
		_, files := e.exportResult(t, id)
		require.Equal(t, map[string]any{"expired": 1.0}, e.do(t, "POST", "/admin/export/expire?jobid="+id, "", nil))
		status, _ := download(t, files[0].URL)
		require.Equal(t, http.StatusForbidden, status)
	})
	t.Run("RefusesForgedURLs", func(t *testing.T) {
		t.Parallel()
		e := setup(t, immediate())
		id := e.startExport(t, "department", map[string]any{})
		status, _ := download(t, e.ts.URL+"/download/export?jobid="+id+"&index=0&sig=00")
		require.Equal(t, http.StatusForbidden, status)
		status, _ = download(t, e.ts.URL+"/download/export?jobid="+id+"&index=5&sig=00")
		require.Equal(t, http.StatusNotFound, status)
		status, _ = download(t, e.ts.URL+"/download/export?jobid=nope&index=0")
		require.Equal(t, http.StatusNotFound, status)
	})
	t.Run("ServesRanges", func(t *testing.T) {
		t.Parallel()
		e := setup(t, immediate(), withSeed(200))
		_, files := e.exportResult(t, e.startExport(t, "user", map[string]any{}))
		_, full := download(t, files[0].URL)
		status, part := download(t, files[0].URL, "Range", "bytes=100-1123")
		require.Equal(t, http.StatusPartialContent, status)
		require.Equal(t, full[100:1124], part)
		status, tail := download(t, files[0].URL, "Range", "bytes=1124-", "If-Range", `"`+files[0].MD5+`"`)
		require.Equal(t, http.StatusPartialContent, status)
		require.Equal(t, full, append(append(full[:100:100], part...), tail...))
	})
	t.Run("CorruptToggleBreaksMD5AndPadding", func(t *testing.T) {
		t.Parallel()
		e := setup(t, immediate())
		id := e.startExport(t, "simple_user", map[string]any{})
		_, files := e.exportResult(t, id)
		r := e.do(t, "POST", "/admin/export/corrupt?jobid="+id+"&index=0", "", nil)
		require.Equal(t, true, r["corrupted"])
		status, ct := download(t, files[0].URL)
		require.Equal(t, http.StatusOK, status)
		require.EqualValues(t, files[0].Size, len(ct), "same size")
		sum := md5.Sum(ct)
		require.NotEqual(t, files[0].MD5, hex.EncodeToString(sum[:]))
		key, _ := crypto.DecodeAESKey(exportKey)
		_, err := io.ReadAll(crypto.NewFileDecrypter(bytes.NewReader(ct), key))
		require.True(t, errors.Is(err, crypto.ErrPadding), "%v", err)
		require.Error(t, e.srv.CorruptExportBlock(id, 1), "no such block")
	})
	t.Run("KeepsTheLastTwentyExports", func(t *testing.T) {
		t.Parallel()
		e := setup(t, immediate(), withSeed(5))
		first := e.startExport(t, "department", map[string]any{})
		_, files := e.exportResult(t, first)
		for i := 0; i < keptExportJobs; i++ {
			e.startExport(t, "department", map[string]any{})
		}
		requireCode(t, e.contact(t, "GET", "/cgi-bin/export/get_result?jobid="+first, nil), CodeJobCleaned)
		status, _ := download(t, files[0].URL)
		require.Equal(t, http.StatusNotFound, status)
	})
}

func TestJSONIsNotHTMLEscaped(t *testing.T) {
	t.Parallel()
	s, err := New(Config{CorpID: "wwesc", ContactSecret: "c"})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	s.writeJSON(rec, map[string]string{"url": "http://x/download?a=1&b=<2>"})
	require.Equal(t, `{"url":"http://x/download?a=1&b=<2>"}`, rec.Body.String())
}
