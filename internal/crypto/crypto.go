// Package crypto implements WeCom's callback encryption scheme (WXBizMsgCrypt): the SHA-1
// message signature, AES-256-CBC with 32-byte PKCS#7 padding, the random16 ‖ len ‖ msg ‖
// receiveid plaintext layout, URL verification, the XML and JSON POST envelopes, and a
// streaming cipher for export files.
//
// Everything here is safe for concurrent use and never panics on hostile input: every
// failure is an error wrapping one of the exported sentinels, so callers classify it with
// errors.Is and never by message.
package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
)

// Sentinel errors. Every error returned by this package wraps exactly one of them.
var (
	// ErrSignature means msg_signature does not match the signed values.
	ErrSignature = errors.New("signature mismatch")
	// ErrBase64 means a ciphertext or key is not valid base64.
	ErrBase64 = errors.New("invalid base64")
	// ErrPadding means the PKCS#7 padding (32-byte blocks) is malformed.
	ErrPadding = errors.New("invalid padding")
	// ErrShortBuffer means the ciphertext or decrypted buffer is too short for its layout.
	ErrShortBuffer = errors.New("short buffer")
	// ErrReceiveID means the decrypted receiveid differs from the configured one.
	ErrReceiveID = errors.New("receiveid mismatch")
	// ErrAESKey means the EncodingAESKey is not a 43-character key decoding to 32 bytes.
	ErrAESKey = errors.New("invalid EncodingAESKey")
	// ErrEnvelope means the POST body is not a well-formed XML or JSON envelope with an Encrypt field.
	ErrEnvelope = errors.New("invalid envelope")
)

// BlockSize is the PKCS#7 block size WeCom pads to: 32 bytes, not AES's 16.
const BlockSize = 32

// MaxMessageSize bounds the plaintext length a decrypted buffer may claim. It only guards
// against absurd values; the real limit is the ciphertext actually received.
const MaxMessageSize = 64 << 20

// DecodeAESKey decodes a 43-character EncodingAESKey into the 32-byte AES key. Decoding is
// lenient about the last character's trailing bits, as WeCom's official keys need. It
// returns an error wrapping ErrAESKey when the key is malformed.
func DecodeAESKey(encodingAESKey string) ([]byte, error) {
	if len(encodingAESKey) != 43 {
		return nil, fmt.Errorf("%w: must be 43 characters, got %d", ErrAESKey, len(encodingAESKey))
	}
	// StdEncoding (not Strict) ignores non-zero trailing bits, which the official keys have.
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil {
		return nil, fmt.Errorf("%w: not base64: %v", ErrAESKey, err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("%w: decodes to %d bytes, want 32", ErrAESKey, len(key))
	}
	return key, nil
}

const keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// NewKey returns a fresh random 43-character EncodingAESKey drawn from [A-Za-z0-9], as the
// admin console and the export API expect.
func NewKey() string {
	return randomString(43)
}

// randomString returns n characters drawn uniformly from keyAlphabet.
func randomString(n int) string {
	out := make([]byte, n)
	buf := make([]byte, n*2)
	i := 0
	for i < n {
		if _, err := rand.Read(buf); err != nil {
			panic(fmt.Sprintf("crypto/rand failed: %v", err)) // crypto/rand never fails on Linux
		}
		for _, b := range buf {
			// Reject values that would bias the distribution (248 = 4*62).
			if b >= 248 {
				continue
			}
			out[i] = keyAlphabet[int(b)%len(keyAlphabet)]
			i++
			if i == n {
				break
			}
		}
	}
	return string(out)
}

// Signature returns WeCom's msg_signature: the lowercase hex SHA-1 of the four values
// sorted as plain strings and concatenated.
func Signature(token, timestamp, nonce, encrypted string) string {
	parts := [4]string{token, timestamp, nonce, encrypted}
	sort.Strings(parts[:])
	h := sha1.New()
	for _, p := range parts {
		h.Write([]byte(p))
	}
	var sum [sha1.Size]byte
	var out [2 * sha1.Size]byte
	hex.Encode(out[:], h.Sum(sum[:0]))
	return string(out[:])
}

// Crypter signs, encrypts and decrypts callbacks for one (token, key, receiveid) triple.
type Crypter struct {
	token     string
	receiveID string
	key       []byte
	block     cipher.Block
}

// New returns a Crypter for the admin console's Token and EncodingAESKey. receiveID is the
// corp id for contacts and internal-app callbacks; decryption rejects any other receiveid.
// It returns an error wrapping ErrAESKey for a malformed key.
func New(token, encodingAESKey, receiveID string) (*Crypter, error) {
	key, err := DecodeAESKey(encodingAESKey)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAESKey, err)
	}
	return &Crypter{token: token, receiveID: receiveID, key: key, block: block}, nil
}

// ReceiveID returns the receiveid this Crypter writes and expects.
func (c *Crypter) ReceiveID() string { return c.receiveID }

// Encrypt returns base64(AES-256-CBC(random16 ‖ len32be ‖ plaintext ‖ receiveid)) with
// 32-byte PKCS#7 padding, as WeCom puts in <Encrypt>.
func (c *Crypter) Encrypt(plaintext []byte) (string, error) {
	n := 16 + 4 + len(plaintext) + len(c.receiveID)
	pad := BlockSize - n%BlockSize
	buf := make([]byte, n+pad)
	copy(buf[:16], randomString(16))
	binary.BigEndian.PutUint32(buf[16:20], uint32(len(plaintext)))
	copy(buf[20:], plaintext)
	copy(buf[20+len(plaintext):], c.receiveID)
	for i := n; i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(c.block, c.key[:16]).CryptBlocks(buf, buf)
	return base64.StdEncoding.EncodeToString(buf), nil
}

// Decrypt reverses Encrypt and returns the message. It checks the ciphertext length, the
// padding byte range (1..32), the length field and the receiveid, returning errors
// wrapping ErrBase64, ErrShortBuffer, ErrPadding or ErrReceiveID.
func (c *Crypter) Decrypt(encrypted string) ([]byte, error) {
	buf := make([]byte, base64.StdEncoding.DecodedLen(len(encrypted)))
	n, err := base64.StdEncoding.Decode(buf, []byte(encrypted))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBase64, err)
	}
	return c.decryptRaw(buf[:n])
}

// decryptRaw decrypts ciphertext in place and unpacks the plaintext layout.
func (c *Crypter) decryptRaw(ct []byte) ([]byte, error) {
	if len(ct) < BlockSize || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: ciphertext is %d bytes, want a non-zero multiple of 16 and at least %d", ErrShortBuffer, len(ct), BlockSize)
	}
	cipher.NewCBCDecrypter(c.block, c.key[:16]).CryptBlocks(ct, ct)
	plain, err := unpad(ct)
	if err != nil {
		return nil, err
	}
	if len(plain) < 20 {
		return nil, fmt.Errorf("%w: plaintext is %d bytes, want at least 20", ErrShortBuffer, len(plain))
	}
	msgLen := binary.BigEndian.Uint32(plain[16:20])
	if uint64(msgLen) > uint64(len(plain)-20) {
		return nil, fmt.Errorf("%w: message length %d exceeds the %d bytes decrypted", ErrShortBuffer, msgLen, len(plain)-20)
	}
	msg := plain[20 : 20+msgLen]
	rid := plain[20+msgLen:]
	if subtle.ConstantTimeCompare(rid, []byte(c.receiveID)) != 1 {
		// Name lengths, not values: a receiveid is not secret, but the decrypted tail of a
		// forged message may be garbage and must not end up in logs.
		return nil, fmt.Errorf("%w: got %d bytes, want the configured %d-byte id", ErrReceiveID, len(rid), len(c.receiveID))
	}
	return msg, nil
}

// unpad strips 32-byte PKCS#7 padding, checking the pad byte's range and every pad byte.
func unpad(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty buffer", ErrPadding)
	}
	p := int(b[len(b)-1])
	if p < 1 || p > BlockSize || p > len(b) {
		return nil, fmt.Errorf("%w: pad byte %d out of range 1..%d", ErrPadding, p, BlockSize)
	}
	for _, v := range b[len(b)-p:] {
		if int(v) != p {
			return nil, fmt.Errorf("%w: pad bytes differ", ErrPadding)
		}
	}
	return b[:len(b)-p], nil
}

// VerifySignature checks msg_signature against (token, timestamp, nonce, encrypted) in
// constant time and returns an error wrapping ErrSignature on mismatch.
func (c *Crypter) VerifySignature(signature, timestamp, nonce, encrypted string) error {
	want := Signature(c.token, timestamp, nonce, encrypted)
	if subtle.ConstantTimeCompare([]byte(want), []byte(signature)) != 1 {
		return fmt.Errorf("%w", ErrSignature)
	}
	return nil
}

// VerifyURL handles the admin console's GET verification: it verifies the signature over
// the (already URL-decoded) echostr, decrypts it and returns the plaintext to answer
// verbatim.
func (c *Crypter) VerifyURL(signature, timestamp, nonce, echostr string) ([]byte, error) {
	if err := c.VerifySignature(signature, timestamp, nonce, echostr); err != nil {
		return nil, err
	}
	return c.Decrypt(echostr)
}

// DecryptMsg handles a POST callback: it extracts <Encrypt> from the XML (or JSON) body,
// verifies the signature and decrypts. Errors wrap ErrEnvelope, ErrSignature or a
// decryption sentinel.
func (c *Crypter) DecryptMsg(signature, timestamp, nonce string, body []byte) ([]byte, error) {
	env, err := ParseEnvelope(body)
	if err != nil {
		return nil, err
	}
	if err := c.VerifySignature(signature, timestamp, nonce, env.Encrypt); err != nil {
		return nil, err
	}
	return c.Decrypt(env.Encrypt)
}

// EncryptMsg encrypts plaintext and returns the POST body WeCom would send
// (<xml><ToUserName/><Encrypt/><AgentID/></xml>, ToUserName = receiveid) and its
// msg_signature for the given timestamp and nonce.
func (c *Crypter) EncryptMsg(plaintext []byte, timestamp, nonce string) (body []byte, signature string, err error) {
	enc, err := c.Encrypt(plaintext)
	if err != nil {
		return nil, "", err
	}
	body = make([]byte, 0, len(enc)+len(c.receiveID)+128)
	body = append(body, "<xml><ToUserName><![CDATA["...)
	body = append(body, c.receiveID...)
	body = append(body, "]]></ToUserName><Encrypt><![CDATA["...)
	body = append(body, enc...)
	body = append(body, "]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>"...)
	return body, Signature(c.token, timestamp, nonce, enc), nil
}

// ReplyXML returns the passive-reply envelope of API-FACTS §1.8 for plaintext, signed
// with the given timestamp and nonce.
func (c *Crypter) ReplyXML(plaintext []byte, timestamp, nonce string) ([]byte, error) {
	enc, err := c.Encrypt(plaintext)
	if err != nil {
		return nil, err
	}
	sig := Signature(c.token, timestamp, nonce, enc)
	return []byte("<xml><Encrypt><![CDATA[" + enc + "]]></Encrypt><MsgSignature><![CDATA[" + sig +
		"]]></MsgSignature><TimeStamp>" + timestamp + "</TimeStamp><Nonce><![CDATA[" + nonce + "]]></Nonce></xml>"), nil
}
