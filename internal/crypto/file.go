package crypto

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// Export files (API-FACTS §5) are the raw AES-256-CBC ciphertext of the JSON, IV = key[:16],
// PKCS#7-padded to 32 bytes, with no random/length/receiveid wrapper. The documentation
// does not say whether the body could be base64 text instead, so the decrypter accepts
// both: a body whose first bytes are all base64 characters is decoded first (random
// ciphertext bytes are base64 characters with probability (65/256)^n).

const chunkSize = 64 << 10

// NewFileEncrypter returns a writer that encrypts everything written to it into w as an
// export file. Close writes the final padded blocks; it does not close w.
func NewFileEncrypter(w io.Writer, key []byte) io.WriteCloser {
	fe := &fileEncrypter{w: w}
	block, err := aes.NewCipher(key)
	if err != nil || len(key) != 32 {
		fe.err = fmt.Errorf("%w: export key must be 32 bytes, got %d", ErrAESKey, len(key))
		return fe
	}
	fe.mode = cipher.NewCBCEncrypter(block, key[:16])
	fe.buf = make([]byte, 0, chunkSize+BlockSize)
	return fe
}

type fileEncrypter struct {
	w     io.Writer
	mode  cipher.BlockMode
	buf   []byte
	total int64
	err   error
}

func (fe *fileEncrypter) Write(p []byte) (int, error) {
	if fe.err != nil {
		return 0, fe.err
	}
	written := 0
	for len(p) > 0 {
		n := min(len(p), cap(fe.buf)-len(fe.buf)-BlockSize)
		if n <= 0 {
			if err := fe.flush(false); err != nil {
				return written, err
			}
			continue
		}
		fe.buf = append(fe.buf, p[:n]...)
		p = p[n:]
		written += n
		fe.total += int64(n)
	}
	return written, nil
}

// flush encrypts and writes every whole AES block in buf (or, at close, everything after
// padding) and keeps the remainder.
func (fe *fileEncrypter) flush(final bool) error {
	whole := len(fe.buf) / aes.BlockSize * aes.BlockSize
	if final {
		whole = len(fe.buf)
	}
	if whole == 0 {
		return nil
	}
	fe.mode.CryptBlocks(fe.buf[:whole], fe.buf[:whole])
	if _, err := fe.w.Write(fe.buf[:whole]); err != nil {
		fe.err = fmt.Errorf("writing export ciphertext: %w", err)
		return fe.err
	}
	fe.buf = append(fe.buf[:0], fe.buf[whole:]...)
	return nil
}

func (fe *fileEncrypter) Close() error {
	if fe.err != nil {
		return fe.err
	}
	pad := BlockSize - int(fe.total%BlockSize)
	for range pad {
		fe.buf = append(fe.buf, byte(pad))
	}
	err := fe.flush(true)
	if err == nil {
		fe.err = errors.New("export encrypter closed")
	}
	return err
}

// EncryptFile returns the export-file ciphertext of plaintext under key.
func EncryptFile(plaintext, key []byte) ([]byte, error) {
	var out bytesWriter
	w := NewFileEncrypter(&out, key)
	if _, err := w.Write(plaintext); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out, nil
}

type bytesWriter []byte

func (b *bytesWriter) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

// NewFileDecrypter returns a reader of the plaintext of the export file read from r. It
// uses constant memory whatever the file size. Read returns an error wrapping ErrAESKey,
// ErrShortBuffer (length not a multiple of 16, or empty), ErrPadding or ErrBase64 when
// the file is not a valid export under key; bytes before the final block may already have
// been returned by then, so a caller must treat the whole output as invalid on error.
func NewFileDecrypter(r io.Reader, key []byte) io.Reader {
	fd := &fileDecrypter{}
	block, err := aes.NewCipher(key)
	if err != nil || len(key) != 32 {
		fd.err = fmt.Errorf("%w: export key must be 32 bytes, got %d", ErrAESKey, len(key))
		return fd
	}
	fd.mode = cipher.NewCBCDecrypter(block, key[:16])
	br := bufio.NewReaderSize(r, chunkSize)
	fd.src = br
	if head, _ := br.Peek(64); len(head) > 0 && isBase64Text(head) {
		// base64.NewDecoder skips CR and LF, so line-wrapped text decodes too.
		fd.src = base64.NewDecoder(base64.StdEncoding, br)
	}
	fd.in = make([]byte, chunkSize+BlockSize)
	return fd
}

type fileDecrypter struct {
	src     io.Reader
	mode    cipher.BlockMode
	in      []byte // ciphertext read but not yet decrypted: in[:n]
	n       int
	out     []byte // plaintext ready to hand out
	held    []byte // the last 32 decrypted bytes, withheld until EOF shows whether they are padding
	heldBuf []byte
	plain   []byte
	eof     bool
	seen    int64
	err     error
}

func (fd *fileDecrypter) Read(p []byte) (int, error) {
	for len(fd.out) == 0 {
		if fd.err != nil {
			return 0, fd.err
		}
		fd.fill()
	}
	n := copy(p, fd.out)
	fd.out = fd.out[n:]
	return n, nil
}

// fill reads more ciphertext, decrypts the whole AES blocks, and moves all but the last
// 32 plaintext bytes to out. At EOF it unpads the held bytes.
func (fd *fileDecrypter) fill() {
	if fd.eof {
		fd.finish()
		return
	}
	m, err := io.ReadAtLeast(fd.src, fd.in[fd.n:chunkSize], aes.BlockSize)
	fd.n += m
	fd.seen += int64(m)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		fd.eof = true
	case err != nil:
		if isCorrupt(err) {
			fd.err = fmt.Errorf("%w: export file: %v", ErrBase64, err)
		} else {
			fd.err = fmt.Errorf("reading export file: %w", err)
		}
		return
	}
	whole := fd.n / aes.BlockSize * aes.BlockSize
	if fd.eof && whole != fd.n {
		fd.err = fmt.Errorf("%w: export file is %d bytes, not a multiple of 16", ErrShortBuffer, fd.seen)
		return
	}
	if whole > 0 {
		fd.mode.CryptBlocks(fd.in[:whole], fd.in[:whole])
		// Reuse one plaintext buffer: out is empty whenever fill runs, so nothing still
		// unread aliases it.
		fd.plain = append(append(fd.plain[:0], fd.held...), fd.in[:whole]...)
		keep := min(BlockSize, len(fd.plain))
		fd.out = fd.plain[:len(fd.plain)-keep]
		fd.held = append(fd.heldBuf[:0], fd.plain[len(fd.plain)-keep:]...)
		fd.heldBuf = fd.held
		copy(fd.in, fd.in[whole:fd.n])
		fd.n -= whole
	}
	if fd.eof {
		fd.finish()
	}
}

func (fd *fileDecrypter) finish() {
	if fd.err != nil {
		return
	}
	if fd.seen == 0 {
		fd.err = fmt.Errorf("%w: export file is empty", ErrShortBuffer)
		return
	}
	plain, err := unpad(fd.held)
	if err != nil {
		fd.err = fmt.Errorf("export file: %w", err)
		return
	}
	// held is a separate buffer, so appending to out (a prefix of fd.plain) is safe.
	fd.out = append(fd.out, plain...)
	fd.held = nil
	fd.err = io.EOF
}

func isCorrupt(err error) bool {
	var ce base64.CorruptInputError
	return errors.As(err, &ce)
}

func isBase64Text(b []byte) bool {
	for _, c := range b {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '+', c == '/', c == '=', c == '\r', c == '\n':
		default:
			return false
		}
	}
	return true
}
