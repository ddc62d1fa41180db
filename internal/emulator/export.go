package emulator

// Export jobs: export/simple_user, export/user, export/department, export/taguser,
// export/get_result and the download URLs (API-FACTS §5).
//
// Fidelity decisions (ASSUMPTION where WeCom does not document them):
//   - encoding_aeskey must be 43 characters of [A-Za-z0-9] decoding to 32 bytes, block_size
//     0/absent (= 10^6) or within [10^4, 10^6]; otherwise 40058 (不合法的参数, the code the
//     core uses for invalid parameter values).
//   - taguser: 40068 for a missing or unknown tagid. Its callback JobType is
//     "export_taguser" (API-FACTS §2.6 lists export_tag for 代开发 and export_taguser on
//     94956; the latter matches the API path).
//   - The directory is read when the job is submitted; the files are generated in the
//     background right away and published when the job completes.
//   - Members are ordered by userid, departments in tree order (as department/list), a
//     tag's members by userid then its departments. Each block is a complete JSON document
//     of at most block_size entities (for taguser users and departments together, users
//     first, each block carrying the tagname and both lists).
//   - A file is the raw AES-256-CBC ciphertext of the JSON (IV = key[:16], PKCS#7 to 32
//     bytes, no random/length/receiveid wrapper), as API-FACTS §5.4 recommends; size and
//     md5 (lowercase hex) are over those bytes.
//   - Download URLs are served by the emulator itself at
//     /download/export?jobid=..&index=N&sig=.. (no token; Range, If-Range and HEAD via
//     http.ServeContent; ETag is the quoted md5). They expire 2 hours after the job
//     finished (server clock): an expired URL answers HTTP 403 (as a signed CDN URL
//     would), a bad signature 403, an unknown or cleaned job or block 404.
//   - export/get_result by a secret other than the submitter's answers 40088. Only the
//     last 20 export jobs are kept; older ones answer 40089 and their files are removed.
//   - The 2022-08-15 new-IP rule (Config.ContactNewIP) answers 48009 on simple_user, user
//     and department for the contacts-sync secret, as on the list APIs.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wecomsync/wecomsync/internal/crypto"
)

// Export job types (batch_job_result JobType).
const (
	JobExportSimpleUser = "export_simple_user"
	JobExportUser       = "export_user"
	JobExportDepartment = "export_department"
	JobExportTagUser    = "export_taguser"
)

const (
	minBlockSize       = 10_000
	maxBlockSize       = 1_000_000
	exportDownloadPath = "/download/export"
)

// exportBlock is one generated file of an export job.
type exportBlock struct {
	path      string
	size      int64
	md5       string
	modTime   time.Time
	mu        sync.Mutex // guards corrupted and the file during corruption
	corrupted bool
}

// exportState is the generation state of an export job.
type exportState struct {
	done   chan struct{} // closed when generation ended
	blocks []*exportBlock
	err    error
}

// generated reports whether an export job's files are ready (or failed).
func (j *job) generated() bool {
	if j.gen == nil {
		return true
	}
	select {
	case <-j.gen.done:
		return true
	default:
		return false
	}
}

type exportRequest struct {
	EncodingAESKey string   `json:"encoding_aeskey"`
	BlockSize      *FlexInt `json:"block_size"`
	TagID          *FlexInt `json:"tagid"`
}

func (x *jobsExt) exportSimpleUser(c *Call) (any, error) {
	return x.submitExport(c, JobExportSimpleUser)
}
func (x *jobsExt) exportUser(c *Call) (any, error) { return x.submitExport(c, JobExportUser) }
func (x *jobsExt) exportDepartment(c *Call) (any, error) {
	return x.submitExport(c, JobExportDepartment)
}
func (x *jobsExt) exportTagUser(c *Call) (any, error) { return x.submitExport(c, JobExportTagUser) }

// validExportKey reports whether k is 43 characters of [A-Za-z0-9] decoding to 32 bytes.
func validExportKey(k string) ([]byte, bool) {
	if len(k) != 43 {
		return nil, false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return nil, false
		}
	}
	key, err := crypto.DecodeAESKey(k)
	return key, err == nil
}

// submitExport validates an export request and starts generating its files.
func (x *jobsExt) submitExport(c *Call, typ string) (any, error) {
	if typ != JobExportTagUser {
		if err := x.s.newIPBlocked(c); err != nil {
			return nil, err
		}
	}
	var req exportRequest
	if err := c.Decode(&req); err != nil {
		return nil, err
	}
	key, ok := validExportKey(req.EncodingAESKey)
	if !ok {
		return nil, apiErr(CodeInvalidParameter, "invalid encoding_aeskey")
	}
	bs := maxBlockSize
	if req.BlockSize != nil && *req.BlockSize != 0 {
		bs = req.BlockSize.Int()
		if bs < minBlockSize || bs > maxBlockSize {
			return nil, apiErr(CodeInvalidParameter, "invalid block_size, should be in [10000, 1000000]")
		}
	}
	src := exportSource{x: x, typ: typ, secret: c.Secret}
	d := x.s.dir
	switch typ {
	case JobExportSimpleUser, JobExportUser:
		src.users = d.sortedUsers()
		src.total = len(src.users)
	case JobExportDepartment:
		src.depts, _ = d.Departments(0)
		src.total = len(src.depts)
	case JobExportTagUser:
		if req.TagID == nil {
			return nil, apiErr(CodeInvalidTagID, "invalid tagid")
		}
		t, ok := d.Tag(req.TagID.Int())
		if !ok {
			return nil, apiErr(CodeInvalidTagID, "invalid tagid")
		}
		src.tagName, src.parties = t.TagName, t.Parties
		for _, uid := range t.Users {
			if u, ok := d.User(uid); ok {
				src.users = append(src.users, u)
			}
		}
		src.total = len(src.users) + len(src.parties)
	}
	if err := x.ensureDir(); err != nil {
		return nil, err
	}
	gen := &exportState{done: make(chan struct{})}
	x.mu.Lock()
	j := x.newJob(typ, true, c.Secret, src.total, nil)
	j.gen = gen
	j.work = func() jobOutcome {
		select {
		case <-gen.done:
		case <-x.ctx.Done():
			return jobOutcome{code: CodeSystemBusy, msg: "emulator shutting down"}
		}
		if gen.err != nil {
			return jobOutcome{code: CodeSystemBusy, msg: "export failed"}
		}
		return jobOutcome{msg: "ok", blocks: gen.blocks}
	}
	x.mu.Unlock()
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		defer close(gen.done)
		select {
		case x.genSem <- struct{}{}:
		case <-x.ctx.Done():
			gen.err = x.ctx.Err()
			return
		}
		defer func() { <-x.genSem }()
		gen.blocks, gen.err = src.write(x.ctx, x.dir, j.id, key, bs)
		if gen.err != nil {
			x.s.log.Error("generating export", "job_id", j.id, "err", gen.err)
		}
	}()
	if x.cfg.Immediate {
		if err := x.complete(c.R.Context(), j); err != nil {
			return nil, err
		}
	}
	return jobIDResp{okBase, j.id}, nil
}

// ensureDir creates the export directory on first use.
func (x *jobsExt) ensureDir() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.dir != "" {
		return nil
	}
	if x.cfg.Dir != "" {
		if err := os.MkdirAll(x.cfg.Dir, 0o755); err != nil {
			return fmt.Errorf("creating export directory: %w", err)
		}
		x.dir = x.cfg.Dir
		return nil
	}
	d, err := os.MkdirTemp("", "wecom-emulator-export-")
	if err != nil {
		return fmt.Errorf("creating export directory: %w", err)
	}
	x.dir, x.ownDir = d, true
	return nil
}

// sortedUsers returns the members sorted by lowercase userid. It holds the read lock only
// while collecting pointers (members are immutable).
func (d *Directory) sortedUsers() []*User {
	d.mu.RLock()
	type kv struct {
		k string
		u *User
	}
	all := make([]kv, 0, len(d.users))
	for k, u := range d.users {
		all = append(all, kv{k, u})
	}
	d.mu.RUnlock()
	slices.SortFunc(all, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	out := make([]*User, len(all))
	for i, e := range all {
		out[i] = e.u
	}
	return out
}

// exportSource is what an export job writes: the entities read at submission.
type exportSource struct {
	x       *jobsExt
	typ     string
	secret  SecretKind
	total   int
	users   []*User
	depts   []Department
	tagName string
	parties []int
}

// countWriter counts bytes written.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// write generates the job's blocks as files in dir: each block's JSON is streamed
// through the file encrypter, md5 and a byte counter into its file, so memory stays
// bounded by one entity's JSON plus buffers whatever the export size.
func (src *exportSource) write(ctx context.Context, dir, id string, key []byte, blockSize int) ([]*exportBlock, error) {
	n := max(1, (src.total+blockSize-1)/blockSize)
	blocks := make([]*exportBlock, 0, n)
	enc := newItemEncoder()
	for b := 0; b < n; b++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		lo, hi := b*blockSize, min((b+1)*blockSize, src.total)
		path := filepath.Join(dir, fmt.Sprintf("%s-%d.bin", id, b))
		blk, err := writeBlock(path, key, func(w *bufio.Writer) error { return src.block(w, enc, lo, hi) })
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, blk)
	}
	return blocks, nil
}

func writeBlock(path string, key []byte, body func(w *bufio.Writer) error) (*exportBlock, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating export file: %w", err)
	}
	h := md5.New()
	var cnt countWriter
	fw := bufio.NewWriterSize(f, 64<<10)
	ew := crypto.NewFileEncrypter(io.MultiWriter(fw, h, &cnt), key)
	bw := bufio.NewWriterSize(ew, 64<<10)
	err = body(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = ew.Close()
	}
	if err == nil {
		err = fw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("writing export file: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("writing export file: %w", err)
	}
	return &exportBlock{path: path, size: cnt.n, md5: hex.EncodeToString(h.Sum(nil)), modTime: st.ModTime()}, nil
}

// itemEncoder encodes one JSON value without HTML escaping or a trailing newline.
type itemEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

func newItemEncoder() *itemEncoder {
	e := &itemEncoder{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}

func (e *itemEncoder) write(w *bufio.Writer, v any) error {
	e.buf.Reset()
	if err := e.enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(bytes.TrimSuffix(e.buf.Bytes(), []byte("\n")))
	return err
}

// block writes the JSON of entities [lo, hi), shaped like the matching list API (§5.3).
func (src *exportSource) block(w *bufio.Writer, enc *itemEncoder, lo, hi int) error {
	list := func(name string, n int, item func(i int) any) error {
		w.WriteString(`"` + name + `":[`)
		for i := 0; i < n; i++ {
			if i > 0 {
				w.WriteByte(',')
			}
			if err := enc.write(w, item(i)); err != nil {
				return err
			}
		}
		w.WriteString("]")
		return nil
	}
	w.WriteByte('{')
	var err error
	switch src.typ {
	case JobExportSimpleUser:
		err = list("userlist", hi-lo, func(i int) any {
			u := src.users[lo+i]
			return simpleUser{u.UserID, u.Name, u.Departments, u.OpenUserID}
		})
	case JobExportUser:
		err = list("userlist", hi-lo, func(i int) any { return src.x.s.viewUser(src.users[lo+i], src.secret) })
	case JobExportDepartment:
		err = list("department", hi-lo, func(i int) any { return src.depts[lo+i] })
	case JobExportTagUser:
		nu := len(src.users)
		ulo, uhi := min(lo, nu), min(hi, nu)
		plo, phi := max(lo-nu, 0), max(hi-nu, 0)
		w.WriteString(`"tagname":`)
		err = enc.write(w, src.tagName)
		w.WriteString(",")
		if err == nil {
			err = list("userlist", uhi-ulo, func(i int) any {
				u := src.users[ulo+i]
				return tagUser{u.UserID, u.Name}
			})
		}
		w.WriteString(",")
		if err == nil {
			err = list("partylist", phi-plo, func(i int) any { return src.parties[plo+i] })
		}
	}
	w.WriteByte('}')
	return err
}

type exportData struct {
	URL  string `json:"url"`
	Size int64  `json:"size"`
	MD5  string `json:"md5"`
}

type exportResultResp struct {
	base
	Status   int          `json:"status"`
	DataList []exportData `json:"data_list,omitempty"`
}

// exportGetResult implements export/get_result?jobid=: status 0 pending, 1 running, 2 done
// (with data_list), 3 failed. Errors: 40088 unknown jobid (or an import's, or submitted by
// another secret), 40089 cleaned. A job whose time is up is completed by this call,
// waiting for its files if needed.
func (x *jobsExt) exportGetResult(c *Call) (any, error) {
	j, err := x.lookup(c.Query("jobid"), true, c.Secret)
	if err != nil {
		return nil, err
	}
	now := x.s.now()
	if x.due(j, now) {
		if err := x.complete(c.R.Context(), j); err != nil {
			return nil, err
		}
	}
	ph, _ := x.phase(j, now)
	resp := exportResultResp{base: okBase, Status: ph}
	if ph == 2 {
		x.mu.Lock()
		out := j.outcome
		x.mu.Unlock()
		if out.code != 0 {
			resp.Status = 3
			return resp, nil
		}
		base := x.cfg.PublicURL
		if base == "" {
			scheme := "http"
			if c.R.TLS != nil {
				scheme = "https"
			}
			base = scheme + "://" + c.R.Host
		}
		base = strings.TrimSuffix(base, "/")
		for i, b := range out.blocks {
			q := url.Values{"jobid": {j.id}, "index": {strconv.Itoa(i)}, "sig": {x.sign(j.id, i)}}
			resp.DataList = append(resp.DataList, exportData{URL: base + exportDownloadPath + "?" + q.Encode(), Size: b.size, MD5: b.md5})
		}
	}
	return resp, nil
}

// exportDownload serves one block (GET/HEAD, Range supported).
func (x *jobsExt) exportDownload(c *Call) {
	w, r := c.W, c.R
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	id := q.Get("jobid")
	idx, err := strconv.Atoi(q.Get("index"))
	x.mu.Lock()
	j, ok := x.jobs[id]
	var blk *exportBlock
	expired := false
	if ok && err == nil && j.export && j.done && !j.cleaned && idx >= 0 && idx < len(j.outcome.blocks) {
		blk = j.outcome.blocks[idx]
		expired = !x.s.now().Before(j.urlExpiry)
	}
	x.mu.Unlock()
	switch {
	case blk == nil:
		http.Error(w, "NoSuchKey: the specified file does not exist", http.StatusNotFound)
		return
	case !hmacEqual(q.Get("sig"), x.sign(id, idx)):
		http.Error(w, "AccessDenied: signature mismatch", http.StatusForbidden)
		return
	case expired:
		http.Error(w, "AccessDenied: request has expired", http.StatusForbidden)
		return
	}
	blk.mu.Lock()
	f, err := os.Open(blk.path)
	blk.mu.Unlock()
	if err != nil {
		http.Error(w, "NoSuchKey: the specified file does not exist", http.StatusNotFound)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+blk.md5+`"`)
	http.ServeContent(w, r, "", blk.modTime, f)
}

func hmacEqual(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// corrupt flips the top bit of the byte 17 bytes before the end of block index, which
// garbles the last two AES blocks of plaintext and makes the final pad byte > 32.
func (x *jobsExt) corrupt(id string, index int) error {
	x.mu.Lock()
	j, ok := x.jobs[id]
	var blk *exportBlock
	if ok && j.export && j.done && !j.cleaned && index >= 0 && index < len(j.outcome.blocks) {
		blk = j.outcome.blocks[index]
	}
	x.mu.Unlock()
	if blk == nil {
		return fmt.Errorf("corrupting export block: no finished export job %q with block %d", id, index)
	}
	blk.mu.Lock()
	defer blk.mu.Unlock()
	if blk.corrupted {
		return nil
	}
	f, err := os.OpenFile(blk.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("corrupting export block: %w", err)
	}
	defer f.Close()
	b := make([]byte, 1)
	off := blk.size - 17
	if _, err := f.ReadAt(b, off); err != nil {
		return fmt.Errorf("corrupting export block: %w", err)
	}
	b[0] ^= 0x80
	if _, err := f.WriteAt(b, off); err != nil {
		return fmt.Errorf("corrupting export block: %w", err)
	}
	blk.corrupted = true
	return nil
}

// expireURLs sets the URL expiry of finished export jobs (one, or all when id is "") to now.
func (x *jobsExt) expireURLs(id string) int {
	now := x.s.now()
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for _, j := range x.jobs {
		if j.export && j.done && (id == "" || j.id == id) && now.Before(j.urlExpiry) {
			j.urlExpiry = now
			n++
		}
	}
	return n
}

// removeFiles deletes an export job's files. Caller holds x.mu.
func (x *jobsExt) removeFiles(j *job) {
	j.removed = true
	for _, b := range j.outcome.blocks {
		if err := os.Remove(b.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			x.s.log.Warn("removing export file", "path", b.path, "err", err)
		}
	}
}
