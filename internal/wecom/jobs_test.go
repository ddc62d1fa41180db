package wecom_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/crypto"
	"github.com/wecomsync/wecomsync/internal/wecom"
)

func TestMediaUpload(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := ctxT(t)

	m, err := f.client.UploadMedia(ctx, wecom.MediaFile, "members.csv", strings.NewReader("姓名,帐号\n张三,zhangsan\n"))
	require.NoError(t, err)
	require.NotEmpty(t, m.MediaID)
	require.Equal(t, "file", m.Type)
	require.NotEmpty(t, m.CreatedAt.String())

	_, err = f.client.UploadMedia(ctx, wecom.MediaFile, "tiny.csv", strings.NewReader("12345"))
	require.Equal(t, 40006, errcodeOf(err), "five bytes or less")
	_, err = f.client.UploadMedia(ctx, "sticker", "a.csv", strings.NewReader("0123456789"))
	require.Equal(t, 40005, errcodeOf(err))
}

func TestBatchImport(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := f.client
	ctx := ctxT(t)

	t.Run("SyncUsersThenPollResult", func(t *testing.T) {
		csv := "姓名,帐号,手机号,邮箱,所在部门,职位\n" +
			"导入一,imp1,13700000001,imp1@example.org,1,工程师\n" +
			"导入二,imp2,13700000002,imp2@example.org,1,经理\n"
		m, err := c.UploadMedia(ctx, wecom.MediaFile, "members.csv", strings.NewReader(csv))
		require.NoError(t, err)
		job, err := c.SyncUsers(ctx, wecom.ImportJob{MediaID: m.MediaID, ToInvite: wecom.Ptr(false)})
		require.NoError(t, err)
		require.NotEmpty(t, job)

		res, err := c.WaitBatch(ctx, job, 10*time.Millisecond)
		require.NoError(t, err)
		require.Equal(t, wecom.JobSyncUser, res.Type)
		require.Equal(t, 100, res.Percentage)
		require.Len(t, res.UserResults, 2)
		for _, r := range res.UserResults {
			require.Zero(t, r.ErrCode, r.ErrMsg)
		}
		u, err := c.GetUser(ctx, "imp2")
		require.NoError(t, err)
		require.Equal(t, "经理", u.Position)
	})

	t.Run("ReplacePartiesReportsActions", func(t *testing.T) {
		m, err := c.UploadMedia(ctx, wecom.MediaFile, "parties.csv",
			strings.NewReader("部门名称,部门ID,父部门ID,排序\n导入部门,9001,1,5\n"))
		require.NoError(t, err)
		job, err := c.ReplaceParties(ctx, wecom.ImportJob{MediaID: m.MediaID, ToInvite: wecom.Ptr(true)})
		require.NoError(t, err)
		res, err := c.WaitBatch(ctx, job, 10*time.Millisecond)
		require.NoError(t, err)
		require.Equal(t, wecom.JobReplaceParty, res.Type)
		require.NotEmpty(t, res.PartyResults)
		found := false
		for _, p := range res.PartyResults {
			if p.PartyID == 9001 {
				found = true
				require.Equal(t, 1, p.Action&1, "created")
			}
		}
		require.True(t, found)
	})

	t.Run("UnknownJobIsNotFound", func(t *testing.T) {
		_, err := c.BatchGetResult(ctx, "nosuchjob")
		require.ErrorIs(t, err, wecom.ErrNotFound)
		require.Equal(t, 40088, errcodeOf(err))
	})

	t.Run("BadMediaID", func(t *testing.T) {
		_, err := c.ReplaceUsers(ctx, wecom.ImportJob{MediaID: "nope"})
		require.Equal(t, 40007, errcodeOf(err))
	})
}

// exportAndDownload runs an export job and returns the decrypted JSON of its blocks.
func exportAndDownload(t *testing.T, c *wecom.Client, job wecom.ExportJob) [][]byte {
	t.Helper()
	ctx := ctxT(t)
	id, err := c.SubmitExport(ctx, job)
	require.NoError(t, err)
	res, err := c.WaitExport(ctx, id, 10*time.Millisecond)
	require.NoError(t, err)
	require.NotEmpty(t, res.DataList)
	var out [][]byte
	for _, b := range res.DataList {
		var buf bytes.Buffer
		n, err := c.DownloadExportBlock(ctx, b, &buf)
		require.NoError(t, err)
		require.Equal(t, b.Size, n)
		r, err := wecom.NewExportDecrypter(&buf, job.EncodingAESKey)
		require.NoError(t, err)
		plain, err := io.ReadAll(r)
		require.NoError(t, err)
		out = append(out, plain)
	}
	return out
}

func TestExport(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := f.client
	users := f.emu.Directory().UserCount()

	t.Run("SimpleUser", func(t *testing.T) {
		t.Parallel()
		blocks := exportAndDownload(t, c, wecom.ExportJob{Kind: wecom.ExportSimpleUser, EncodingAESKey: crypto.NewKey(), BlockSize: 10000})
		var doc struct {
			UserList []wecom.SimpleUser `json:"userlist"`
		}
		require.NoError(t, json.Unmarshal(blocks[0], &doc))
		require.Len(t, doc.UserList, users)
		require.NotEmpty(t, doc.UserList[0].Department)
	})

	t.Run("User", func(t *testing.T) {
		t.Parallel()
		blocks := exportAndDownload(t, c, wecom.ExportJob{Kind: wecom.ExportUser, EncodingAESKey: crypto.NewKey()})
		var doc struct {
			UserList []wecom.User `json:"userlist"`
		}
		require.NoError(t, json.Unmarshal(blocks[0], &doc))
		require.Len(t, doc.UserList, users)
		require.NotEmpty(t, doc.UserList[0].Mobile)
	})

	t.Run("Department", func(t *testing.T) {
		t.Parallel()
		blocks := exportAndDownload(t, c, wecom.ExportJob{Kind: wecom.ExportDepartment, EncodingAESKey: crypto.NewKey()})
		var doc struct {
			Department []wecom.Department `json:"department"`
		}
		require.NoError(t, json.Unmarshal(blocks[0], &doc))
		require.Equal(t, 1, doc.Department[0].ID)
	})

	t.Run("TagUser", func(t *testing.T) {
		t.Parallel()
		blocks := exportAndDownload(t, c, wecom.ExportJob{Kind: wecom.ExportTagUser, TagID: 1, EncodingAESKey: crypto.NewKey()})
		var doc wecom.Tag
		require.NoError(t, json.Unmarshal(blocks[0], &doc))
		require.NotEmpty(t, doc.TagName)
		require.NotEmpty(t, doc.UserList)
	})

	t.Run("UnknownTagIsNotFound", func(t *testing.T) {
		t.Parallel()
		_, err := c.SubmitExport(ctxT(t), wecom.ExportJob{Kind: wecom.ExportTagUser, TagID: 4242, EncodingAESKey: crypto.NewKey()})
		require.ErrorIs(t, err, wecom.ErrNotFound)
	})

	t.Run("BadKeyAndBlockSize", func(t *testing.T) {
		t.Parallel()
		_, err := c.SubmitExport(ctxT(t), wecom.ExportJob{Kind: wecom.ExportUser, EncodingAESKey: "short"})
		require.Equal(t, 40058, errcodeOf(err))
		_, err = c.SubmitExport(ctxT(t), wecom.ExportJob{Kind: wecom.ExportUser, EncodingAESKey: crypto.NewKey(), BlockSize: 5})
		require.Error(t, err, "checked before calling WeCom")
	})

	t.Run("CorruptBlockFailsMD5", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		id, err := c.SubmitExport(ctx, wecom.ExportJob{Kind: wecom.ExportSimpleUser, EncodingAESKey: crypto.NewKey()})
		require.NoError(t, err)
		res, err := c.WaitExport(ctx, id, 10*time.Millisecond)
		require.NoError(t, err)
		require.NoError(t, f.emu.CorruptExportBlock(id, 0))
		_, err = c.DownloadExportBlock(ctx, res.DataList[0], io.Discard)
		require.ErrorIs(t, err, wecom.ErrChecksum)

		path := filepath.Join(t.TempDir(), "block0")
		err = c.DownloadExportBlockToFile(ctx, res.DataList[0], path)
		require.ErrorIs(t, err, wecom.ErrChecksum)
		_, statErr := os.Stat(path + ".part")
		require.ErrorIs(t, statErr, os.ErrNotExist, "a block failing verification is removed")
		_, statErr = os.Stat(path)
		require.ErrorIs(t, statErr, os.ErrNotExist)
	})

	t.Run("ExpiredURL", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		id, err := c.SubmitExport(ctx, wecom.ExportJob{Kind: wecom.ExportDepartment, EncodingAESKey: crypto.NewKey()})
		require.NoError(t, err)
		res, err := c.WaitExport(ctx, id, 10*time.Millisecond)
		require.NoError(t, err)
		require.Equal(t, 1, f.emu.ExpireExportURLs(id))
		_, err = c.DownloadExportBlock(ctx, res.DataList[0], io.Discard)
		require.ErrorIs(t, err, wecom.ErrURLExpired)
		var se *wecom.HTTPStatusError
		require.ErrorAs(t, err, &se)
		require.Equal(t, 403, se.Status)
	})

	t.Run("ToFile", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		key := crypto.NewKey()
		id, err := c.SubmitExport(ctx, wecom.ExportJob{Kind: wecom.ExportSimpleUser, EncodingAESKey: key})
		require.NoError(t, err)
		res, err := c.WaitExport(ctx, id, 10*time.Millisecond)
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "block0")
		require.NoError(t, c.DownloadExportBlockToFile(ctx, res.DataList[0], path))
		st, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, res.DataList[0].Size, st.Size())
	})
}
