package crypto_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/crypto"
)

// The official vectors of API-FACTS §1.11.
const (
	v1Token = "QDG6eK"
	v1Key   = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
	v1Corp  = "wx5823bf96d3bd56c7"

	v3Token = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
	v3Key   = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
	v3Corp  = "ww1436e0e65a779aee"

	v2Body  = `<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>`
	v2Plain = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>"

	v4Body  = "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA[Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt>\n<AgentID><![CDATA[1000002]]></AgentID>\n</xml>"
	v4Plain = "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName><CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"

	v5Body = `{"tousername":"wx5823bf96d3bd56c7","encrypt":"CZWs4CWRpI4VolQlvn4dlEC1alN2MUEY2VklGehgBVLBrlVF7SyT+SV+Toj43l4ayJ9UMGKphktKKmP7B2j/P1ey67XB8PBgS7Wr5/8+w/yWriZv3Vmoo/MH3/1HsIWZrPQ3N2mJrelStIfI2Y8kLKXA7EhfZgZX4o+ffdkZDM76SEl79Ib9mw7TGjZ9Aw/x/A2VjNbV1E8BtEbRxYYcQippYNw7hr8sFfa3nW1xLdxokt8QkRX83vK3DFP2F6TQFPL2Tu98UwhcUpPvdJBuu1/yiOQIScppV3eOuLWEsko=","agentid":"218"}`
	v6Enc  = "cjhLUX7UU4yCSelv1vz7T0zT8huF51bAMVWriNvO1FMegHrQZNrtvRxbwf0fUPsFvwqR0U0fgiJNEA5Y30F2MoI2S7vv3EjVQ68C0cjw9frBoUE2Hj0BvFp9h3u6Vbsg4lc1C8AtHdaN8orKuNKkLRLuYEL52R1J3v8olJGZRLnRdVKIivixmX/eQpzgeExtp20jI1HxRP1AAZ6xZoILdqDPO549LO4WeG+685JRUTdiwcY5fjZlqeMxuT4PpMn1X9OWsS7NRj06Wa5E3Tvg4twjWp39KPfOdRte6P1T4JU="
)

type bundle struct {
	v1 *crypto.Crypter
	v3 *crypto.Crypter
}

func setup(t *testing.T) bundle {
	t.Helper()
	v1, err := crypto.New(v1Token, v1Key, v1Corp)
	require.NoError(t, err)
	v3, err := crypto.New(v3Token, v3Key, v3Corp)
	require.NoError(t, err)
	return bundle{v1: v1, v3: v3}
}

func TestOfficialVectors(t *testing.T) {
	t.Parallel()
	b := setup(t)

	t.Run("DecodesKeysWithTrailingBits", func(t *testing.T) {
		t.Parallel()
		k, err := crypto.DecodeAESKey(v1Key)
		require.NoError(t, err)
		require.Equal(t, "8d69989bbaabe67328014c194631ad0719b3dca035b64023df292447aab60760", hex.EncodeToString(k))
		k, err = crypto.DecodeAESKey(v3Key)
		require.NoError(t, err)
		require.Equal(t, "eaa91d32babaf274ca76ece72583b5037ed6da8120a64314be4b6d453a2a854b", hex.EncodeToString(k))
		k, err = crypto.DecodeAESKey("IJUiXNpvGbODwKEBSEsAeOAPAhkqHqNCF6g19t9wfg2")
		require.NoError(t, err)
		require.Equal(t, "2095225cda6f19b383c0a101484b0078e00f02192a1ea34217a835f6df707e0d", hex.EncodeToString(k))
	})

	t.Run("V1VerifiesURL", func(t *testing.T) {
		t.Parallel()
		echo := "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
		got, err := b.v1.VerifyURL("5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780", echo)
		require.NoError(t, err)
		require.Equal(t, "1616140317555161061", string(got))
	})

	t.Run("V2DecryptsXMLPost", func(t *testing.T) {
		t.Parallel()
		got, err := b.v1.DecryptMsg("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149", []byte(v2Body))
		require.NoError(t, err)
		require.Equal(t, v2Plain, string(got))
		require.Len(t, got, 284)
	})

	t.Run("V3VerifiesURL", func(t *testing.T) {
		t.Parallel()
		echo := "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
		got, err := b.v3.VerifyURL("012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373", "47744683", echo)
		require.NoError(t, err)
		require.Equal(t, "1288432023552776189", string(got))
	})

	t.Run("V4DecryptsXMLPostWithNewlines", func(t *testing.T) {
		t.Parallel()
		got, err := b.v3.DecryptMsg("0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "1476422779", "1597212914", []byte(v4Body))
		require.NoError(t, err)
		require.Equal(t, v4Plain, string(got))
		require.Len(t, got, 228)
	})

	t.Run("V5DecryptsJSONPost", func(t *testing.T) {
		t.Parallel()
		got, err := b.v1.DecryptMsg("0623cbc5a8cbee5bcc137c70de99575366fc2af3", "1409659813", "1372623149", []byte(v5Body))
		require.NoError(t, err)
		require.Contains(t, string(got), `"FromUserName":"mycreate"`)
		require.Contains(t, string(got), `"MsgId":4561255354251345929`)
	})

	t.Run("V6DecryptsJSONPost", func(t *testing.T) {
		t.Parallel()
		body := `{"ToUserName":"wx5823bf96d3bd56c7","Encrypt":"` + v6Enc + `","AgentID":218}`
		got, err := b.v3.DecryptMsg("e3647471e395139e2308c1fa963f2d648a00b90e", "1409659813", "1372623149", []byte(body))
		require.NoError(t, err)
		require.Contains(t, string(got), `"ToUserName": "wx5823bf96d3bd56c7"`)
	})

	t.Run("V7DecryptsThirdPartyEchostr", func(t *testing.T) {
		t.Parallel()
		c, err := crypto.New("", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aQ", "wx49f0ab532d5d035a")
		require.NoError(t, err)
		got, err := c.Decrypt("4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==")
		require.NoError(t, err)
		require.Equal(t, "5927782489442352469", string(got))
		require.Equal(t, "d6056f2bb3ad3e30f4afa5ef90cc9ddcdc7b7b27", crypto.Signature("test", "123456", "test", "rust"))
	})

	t.Run("V2PadsTo32ByteBlocks", func(t *testing.T) {
		t.Parallel()
		// Decrypt V2 by hand: its pad byte is 30, which a 16-byte unpadder would reject.
		key, err := crypto.DecodeAESKey(v1Key)
		require.NoError(t, err)
		env, err := crypto.ParseEnvelope([]byte(v2Body))
		require.NoError(t, err)
		ct, err := base64.StdEncoding.DecodeString(env.Encrypt)
		require.NoError(t, err)
		require.Len(t, ct, 352)
		block, err := aes.NewCipher(key)
		require.NoError(t, err)
		cipher.NewCBCDecrypter(block, key[:16]).CryptBlocks(ct, ct)
		require.Equal(t, byte(30), ct[len(ct)-1])
		require.Equal(t, "0960688932c47ef1", string(ct[:16]))
	})
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)

	t.Run("EncryptThenDecryptEveryLength", func(t *testing.T) {
		t.Parallel()
		for n := 0; n <= 100; n++ {
			msg := bytes.Repeat([]byte("x"), n)
			enc, err := b.v1.Encrypt(msg)
			require.NoError(t, err)
			got, err := b.v1.Decrypt(enc)
			require.NoError(t, err, "length %d", n)
			require.Equal(t, msg, got)
		}
	})

	t.Run("EncryptMsgMakesAVerifiableEnvelope", func(t *testing.T) {
		t.Parallel()
		msg := []byte("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Name><![CDATA[张三]]></Name></xml>")
		body, sig, err := b.v1.EncryptMsg(msg, "1700000000", "nonce1")
		require.NoError(t, err)
		got, err := b.v1.DecryptMsg(sig, "1700000000", "nonce1", body)
		require.NoError(t, err)
		require.Equal(t, msg, got)
		env, err := crypto.ParseEnvelope(body)
		require.NoError(t, err)
		require.Equal(t, v1Corp, env.ToUserName)
	})

	t.Run("EncryptIsRandomized", func(t *testing.T) {
		t.Parallel()
		a, err := b.v1.Encrypt([]byte("same"))
		require.NoError(t, err)
		c, err := b.v1.Encrypt([]byte("same"))
		require.NoError(t, err)
		require.NotEqual(t, a, c)
	})

	t.Run("ReplyXMLIsSignedOverItsCiphertext", func(t *testing.T) {
		t.Parallel()
		reply, err := b.v1.ReplyXML([]byte("hi"), "1409659813", "n")
		require.NoError(t, err)
		env, err := crypto.ParseEnvelope(reply)
		require.NoError(t, err)
		require.Contains(t, string(reply), "<MsgSignature><![CDATA["+crypto.Signature(v1Token, "1409659813", "n", env.Encrypt)+"]]>")
	})

	t.Run("NewKeyIsAValidKey", func(t *testing.T) {
		t.Parallel()
		k := crypto.NewKey()
		require.Len(t, k, 43)
		_, err := crypto.DecodeAESKey(k)
		require.NoError(t, err)
		require.NotEqual(t, k, crypto.NewKey())
	})
}

// encryptRaw builds a ciphertext from an arbitrary plaintext (already padded or not), so
// tests can forge every malformed layout.
func encryptRaw(t *testing.T, key string, plain []byte) string {
	t.Helper()
	k, err := crypto.DecodeAESKey(key)
	require.NoError(t, err)
	block, err := aes.NewCipher(k)
	require.NoError(t, err)
	out := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, k[:16]).CryptBlocks(out, plain)
	return base64.StdEncoding.EncodeToString(out)
}

func pad32(b []byte) []byte {
	p := 32 - len(b)%32
	return append(b, bytes.Repeat([]byte{byte(p)}, p)...)
}

func layout(msg, rid string) []byte {
	b := []byte("0123456789abcdef")
	b = append(b, byte(len(msg)>>24), byte(len(msg)>>16), byte(len(msg)>>8), byte(len(msg)))
	b = append(b, msg...)
	return append(b, rid...)
}

func TestRejectsMalformedInput(t *testing.T) {
	t.Parallel()
	b := setup(t)

	t.Run("RejectsForgedSignature", func(t *testing.T) {
		t.Parallel()
		_, err := b.v1.DecryptMsg("477715d11cdb4164915debcba66cb864d751f3e7", "1409659813", "1372623149", []byte(v2Body))
		require.ErrorIs(t, err, crypto.ErrSignature)
		_, err = b.v1.DecryptMsg("477715d11cdb4164915debcba66cb864d751f3e6", "1409659814", "1372623149", []byte(v2Body))
		require.ErrorIs(t, err, crypto.ErrSignature, "a changed timestamp breaks the signature")
		_, err = b.v1.DecryptMsg("", "1409659813", "1372623149", []byte(v2Body))
		require.ErrorIs(t, err, crypto.ErrSignature)
	})

	t.Run("RejectsWrongKey", func(t *testing.T) {
		t.Parallel()
		other, err := crypto.New(v1Token, v3Key, v1Corp)
		require.NoError(t, err)
		_, err = other.DecryptMsg("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149", []byte(v2Body))
		require.Error(t, err)
		require.True(t, errors.Is(err, crypto.ErrPadding) || errors.Is(err, crypto.ErrShortBuffer) || errors.Is(err, crypto.ErrReceiveID), "got %v", err)
	})

	t.Run("RejectsReceiveIDMismatch", func(t *testing.T) {
		t.Parallel()
		other, err := crypto.New(v1Token, v1Key, "wwsomeoneelse")
		require.NoError(t, err)
		_, err = other.DecryptMsg("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149", []byte(v2Body))
		require.ErrorIs(t, err, crypto.ErrReceiveID)
		require.NotContains(t, err.Error(), v1Corp)
	})

	t.Run("RejectsBadBase64", func(t *testing.T) {
		t.Parallel()
		_, err := b.v1.Decrypt("not base64 !!")
		require.ErrorIs(t, err, crypto.ErrBase64)
	})

	t.Run("RejectsShortCiphertext", func(t *testing.T) {
		t.Parallel()
		for _, n := range []int{0, 15, 16, 17, 31, 33} {
			_, err := b.v1.Decrypt(base64.StdEncoding.EncodeToString(make([]byte, n)))
			require.ErrorIs(t, err, crypto.ErrShortBuffer, "length %d", n)
		}
	})

	t.Run("RejectsPadByteOutOfRange", func(t *testing.T) {
		t.Parallel()
		for _, p := range []byte{0, 33, 255} {
			plain := append(layout("hello", v1Corp), make([]byte, 64)...)
			plain = plain[:64]
			plain[63] = p
			_, err := b.v1.Decrypt(encryptRaw(t, v1Key, plain))
			require.ErrorIs(t, err, crypto.ErrPadding, "pad %d", p)
		}
	})

	t.Run("RejectsInconsistentPadBytes", func(t *testing.T) {
		t.Parallel()
		plain := pad32(layout("hello", v1Corp))
		plain[len(plain)-2] ^= 1
		_, err := b.v1.Decrypt(encryptRaw(t, v1Key, plain))
		require.ErrorIs(t, err, crypto.ErrPadding)
	})

	t.Run("RejectsLengthBeyondBuffer", func(t *testing.T) {
		t.Parallel()
		plain := layout("hello", v1Corp)
		plain[16], plain[17], plain[18], plain[19] = 0xff, 0xff, 0xff, 0xff
		_, err := b.v1.Decrypt(encryptRaw(t, v1Key, pad32(plain)))
		require.ErrorIs(t, err, crypto.ErrShortBuffer)
	})

	t.Run("RejectsPlaintextShorterThanHeader", func(t *testing.T) {
		t.Parallel()
		_, err := b.v1.Decrypt(encryptRaw(t, v1Key, pad32([]byte("short"))))
		require.ErrorIs(t, err, crypto.ErrShortBuffer)
	})

	t.Run("RejectsBadKeys", func(t *testing.T) {
		t.Parallel()
		for _, k := range []string{"", "short", v1Key + "A", v1Key[:42], strings.Repeat("!", 43)} {
			_, err := crypto.New("t", k, "c")
			require.ErrorIs(t, err, crypto.ErrAESKey, "key %q", k)
		}
	})

	t.Run("RejectsMalformedEnvelopes", func(t *testing.T) {
		t.Parallel()
		cases := map[string]string{
			"Empty":            "",
			"NotXMLOrJSON":     "hello",
			"WrongRoot":        "<root><Encrypt>abc</Encrypt></root>",
			"Truncated":        v2Body[:len(v2Body)-20],
			"NoEncrypt":        "<xml><ToUserName>x</ToUserName></xml>",
			"EmptyEncrypt":     "<xml><Encrypt></Encrypt></xml>",
			"UnclosedCDATA":    "<xml><Encrypt><![CDATA[abc</Encrypt></xml>",
			"MismatchedClose":  "<xml><Encrypt>abc</Other></xml>",
			"Nested":           "<xml><Encrypt><a>x</a></Encrypt></xml>",
			"BadJSON":          `{"encrypt":`,
			"JSONNoEncrypt":    `{"tousername":"x"}`,
			"UnterminatedDecl": "<?xml version",
		}
		for name, body := range cases {
			_, err := crypto.ParseEnvelope([]byte(body))
			require.ErrorIs(t, err, crypto.ErrEnvelope, name)
		}
	})

	t.Run("AcceptsEnvelopeVariants", func(t *testing.T) {
		t.Parallel()
		for _, body := range []string{
			"<?xml version=\"1.0\"?>\n<xml>\n\t<Encrypt>abc</Encrypt>\n</xml>\n",
			"<xml><AgentID/><Encrypt><![CDATA[abc]]></Encrypt></xml>",
			`{"Encrypt":"abc","AgentID":1000002}`,
		} {
			env, err := crypto.ParseEnvelope([]byte(body))
			require.NoError(t, err, body)
			require.Equal(t, "abc", env.Encrypt)
		}
	})
}

func TestFileCipher(t *testing.T) {
	t.Parallel()
	key, err := crypto.DecodeAESKey("IJUiXNpvGbODwKEBSEsAeOAPAhkqHqNCF6g19t9wfg2")
	require.NoError(t, err)

	t.Run("RoundTripsEverySizeAcrossChunks", func(t *testing.T) {
		t.Parallel()
		for _, n := range []int{0, 1, 15, 16, 31, 32, 33, 1000, 64<<10 - 1, 64 << 10, 64<<10 + 1, 300_000} {
			plain := make([]byte, n)
			for i := range plain {
				plain[i] = byte(i * 7)
			}
			ct, err := crypto.EncryptFile(plain, key)
			require.NoError(t, err)
			require.Zero(t, len(ct)%32, "size %d", n)
			require.Greater(t, len(ct), n)
			got, err := io.ReadAll(crypto.NewFileDecrypter(bytes.NewReader(ct), key))
			require.NoError(t, err, "size %d", n)
			require.Equal(t, plain, got)
			// Tiny reads from the source, too.
			got, err = io.ReadAll(crypto.NewFileDecrypter(iotest.OneByteReader(bytes.NewReader(ct)), key))
			require.NoError(t, err)
			require.Equal(t, plain, got)
		}
	})

	t.Run("MatchesTheDocumentedScheme", func(t *testing.T) {
		t.Parallel()
		plain := []byte(`{"userlist":[{"userid":"zhangsan","name":"张三","department":[1,2]}]}`)
		ct, err := crypto.EncryptFile(plain, key)
		require.NoError(t, err)
		block, err := aes.NewCipher(key)
		require.NoError(t, err)
		out := make([]byte, len(ct))
		cipher.NewCBCDecrypter(block, key[:16]).CryptBlocks(out, ct)
		p := int(out[len(out)-1])
		require.Equal(t, 32-len(plain)%32, p)
		require.Equal(t, plain, out[:len(out)-p])
	})

	t.Run("AcceptsBase64Bodies", func(t *testing.T) {
		t.Parallel()
		plain := bytes.Repeat([]byte(`{"department":[]}`), 1000)
		ct, err := crypto.EncryptFile(plain, key)
		require.NoError(t, err)
		text := base64.StdEncoding.EncodeToString(ct)
		var wrapped strings.Builder
		for i := 0; i < len(text); i += 76 {
			wrapped.WriteString(text[i:min(i+76, len(text))])
			wrapped.WriteString("\r\n")
		}
		got, err := io.ReadAll(crypto.NewFileDecrypter(strings.NewReader(wrapped.String()), key))
		require.NoError(t, err)
		require.Equal(t, plain, got)
	})

	t.Run("RejectsCorruptFiles", func(t *testing.T) {
		t.Parallel()
		ct, err := crypto.EncryptFile(bytes.Repeat([]byte("a"), 5000), key)
		require.NoError(t, err)

		_, err = io.ReadAll(crypto.NewFileDecrypter(bytes.NewReader(ct[:len(ct)-5]), key))
		require.ErrorIs(t, err, crypto.ErrShortBuffer, "truncated mid-block")

		_, err = io.ReadAll(crypto.NewFileDecrypter(bytes.NewReader(nil), key))
		require.ErrorIs(t, err, crypto.ErrShortBuffer, "empty")

		bad := bytes.Clone(ct)
		bad[len(bad)-1] ^= 0xff
		_, err = io.ReadAll(crypto.NewFileDecrypter(bytes.NewReader(bad), key))
		require.ErrorIs(t, err, crypto.ErrPadding, "last block corrupted")

		wrong, err := crypto.DecodeAESKey(v1Key)
		require.NoError(t, err)
		_, err = io.ReadAll(crypto.NewFileDecrypter(bytes.NewReader(ct), wrong))
		require.ErrorIs(t, err, crypto.ErrPadding, "wrong key")

		_, err = io.ReadAll(crypto.NewFileDecrypter(bytes.NewReader(ct), key[:16]))
		require.ErrorIs(t, err, crypto.ErrAESKey)

		_, err = io.ReadAll(crypto.NewFileDecrypter(strings.NewReader(strings.Repeat("QUJD", 40)+"!!"), key))
		require.Error(t, err)
	})

	t.Run("PropagatesReadErrors", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("connection reset")
		_, err := io.ReadAll(crypto.NewFileDecrypter(io.MultiReader(bytes.NewReader(make([]byte, 1000)), iotest.ErrReader(boom)), key))
		require.ErrorIs(t, err, boom)
	})
}

func BenchmarkDecryptMsg(b *testing.B) {
	c, err := crypto.New(v1Token, v1Key, v1Corp)
	require.NoError(b, err)
	body := []byte(v2Body)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.DecryptMsg("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149", body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFileDecrypter(b *testing.B) {
	key, err := crypto.DecodeAESKey(v1Key)
	require.NoError(b, err)
	ct, err := crypto.EncryptFile(bytes.Repeat([]byte(`{"userid":"zhangsan","name":"张三"},`), 30000), key)
	require.NoError(b, err)
	b.SetBytes(int64(len(ct)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := io.Copy(io.Discard, crypto.NewFileDecrypter(bytes.NewReader(ct), key)); err != nil {
			b.Fatal(err)
		}
	}
}
