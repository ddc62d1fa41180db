package emulator

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Upload limits per media type (API-FACTS §4.1): every file must be larger than 5 bytes.
var mediaLimits = map[string]int{
	"image": 10 << 20,
	"voice": 2 << 20,
	"video": 10 << 20,
	"file":  20 << 20,
}

// mediaFormats lists the file name extensions accepted per type ("file" takes any).
var mediaFormats = map[string][]string{
	"image": {".jpg", ".jpeg", ".png"},
	"voice": {".amr"},
	"video": {".mp4"},
}

const minMediaSize = 6 // "所有文件size必须大于5个字节"

// mediaItem is one temporary media file, valid 3 days from created (server clock).
type mediaItem struct {
	typ      string
	filename string
	data     []byte
	created  time.Time
}

type mediaUploadResp struct {
	ErrCode   int    `json:"errcode"`
	ErrMsg    string `json:"errmsg"`
	Type      string `json:"type"`
	MediaID   string `json:"media_id"`
	CreatedAt string `json:"created_at"`
}

// mediaUpload implements media/upload?type=: a multipart/form-data body whose part named
// "media" carries the file. Errors: 40005 missing or unknown type, 44001 no media part or
// an empty file, 40006 a file of 5 bytes or less, 45001 larger than the type's limit,
// 40004 a file name extension that does not fit the type (image jpg/png, voice amr, video
// mp4). The answer is the documented sample shape: errmsg "" and created_at a string.
func (x *jobsExt) mediaUpload(c *Call) (any, error) {
	typ := c.Query("type")
	limit, ok := mediaLimits[typ]
	if !ok {
		return nil, apiErr(CodeInvalidMediaType, "invalid media type parameter")
	}
	name, data, err := readMediaPart(c, limit)
	if err != nil {
		return nil, err
	}
	switch {
	case len(data) == 0:
		return nil, apiErr(CodeEmptyMedia, "empty media data")
	case len(data) < minMediaSize:
		return nil, apiErr(CodeInvalidFileSize, "invalid file size, must be larger than 5 bytes")
	case len(data) > limit:
		return nil, apiErr(CodeMediaTooLarge, "media size out of limit")
	}
	if exts, ok := mediaFormats[typ]; ok && !containsFold(exts, filepath.Ext(name)) {
		return nil, apiErr(CodeInvalidMediaKind, "invalid media file type")
	}
	now := x.s.now()
	id := newMediaID()
	x.mu.Lock()
	x.media[id] = &mediaItem{typ: typ, filename: name, data: data, created: now}
	x.mu.Unlock()
	return mediaUploadResp{ErrCode: 0, ErrMsg: "", Type: typ, MediaID: id, CreatedAt: strconv.FormatInt(now.Unix(), 10)}, nil
}

// readMediaPart returns the file name and content of the "media" part (content read up
// to limit+1 bytes). A body that is not multipart or has no media part is 44001.
func readMediaPart(c *Call, limit int) (string, []byte, error) {
	empty := apiErr(CodeEmptyMedia, "empty media data")
	mt, params, err := mime.ParseMediaType(c.R.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
		return "", nil, empty
	}
	mr := multipart.NewReader(bytes.NewReader(c.Body()), params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) || err != nil {
			return "", nil, empty
		}
		if p.FormName() != "media" {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(p, int64(limit)+1))
		if err != nil {
			return "", nil, empty
		}
		return p.FileName(), data, nil
	}
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// newMediaID returns a 44-character id like WeCom's ("1G6nrLmr5EC3MMb_-zK1dDdzmd0p7cNliYu9V5w7o8K0").
func newMediaID() string {
	b := make([]byte, 33)
	_, _ = rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	return "1" + id[1:]
}

// mediaData returns the content of a media_id valid at now: 41006 when empty, 40007 when
// unknown or older than 3 days.
func (x *jobsExt) mediaData(id string, now time.Time) ([]byte, error) {
	if id == "" {
		return nil, apiErr(CodeMissingMediaID, "media_id missing")
	}
	x.mu.Lock()
	m, ok := x.media[id]
	x.mu.Unlock()
	if !ok || !now.Before(m.created.Add(mediaTTL)) {
		return nil, apiErr(CodeInvalidMediaID, "invalid media_id")
	}
	return m.data, nil
}
