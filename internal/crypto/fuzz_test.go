package crypto_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/wecomsync/wecomsync/internal/crypto"
)

// classified reports whether err wraps one of the package's sentinels.
func classified(err error) bool {
	for _, s := range []error{crypto.ErrSignature, crypto.ErrBase64, crypto.ErrPadding, crypto.ErrShortBuffer,
		crypto.ErrReceiveID, crypto.ErrAESKey, crypto.ErrEnvelope} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func FuzzDecrypt(f *testing.F) {
	c, err := crypto.New(v1Token, v1Key, v1Corp)
	if err != nil {
		f.Fatal(err)
	}
	valid, _ := c.Encrypt([]byte("<xml><ChangeType>create_user</ChangeType></xml>"))
	f.Add(valid)
	f.Add("P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==")
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		msg, err := c.Decrypt(s)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		// Anything that decrypts must re-encrypt to the same message.
		enc, err := c.Encrypt(msg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := c.Decrypt(enc)
		if err != nil || !bytes.Equal(back, msg) {
			t.Fatalf("round trip of %q failed: %v", msg, err)
		}
	})
}

func FuzzEnvelope(f *testing.F) {
	f.Add([]byte(v2Body))
	f.Add([]byte(v4Body))
	f.Add([]byte(v5Body))
	f.Add([]byte("<xml><Encrypt>a</Encrypt></xml>"))
	f.Add([]byte("<?xml?><xml><A/></xml>"))
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := crypto.ParseEnvelope(body)
		if err != nil {
			if !errors.Is(err, crypto.ErrEnvelope) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if env.Encrypt == "" {
			t.Fatal("accepted an envelope without Encrypt")
		}
	})
}

func FuzzFileDecrypter(f *testing.F) {
	key, _ := crypto.DecodeAESKey(v1Key)
	ct, _ := crypto.EncryptFile([]byte(`{"userlist":[]}`), key)
	f.Add(ct)
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte("A"), 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := io.ReadAll(crypto.NewFileDecrypter(bytes.NewReader(data), key))
		if err != nil && !classified(err) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}
