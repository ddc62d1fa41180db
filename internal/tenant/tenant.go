// Package tenant loads the WeCom corps (tenants) a deployment serves, from the single-tenant
// WECOM_* variables or from the file named by WECOM_TENANTS_FILE. Secrets may be given
// inline or as *_FILE paths; they never appear in errors.
package tenant

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// DefaultName is the tenant name used when the corp is configured by WECOM_* variables; it
// is served at /callback as well as /callback/default.
const DefaultName = "default"

// Tenant is one WeCom corp and its credentials.
type Tenant struct {
	// Name identifies the tenant in URLs (/callback/{name}), logs and metrics.
	Name string `json:"name"`
	// CorpID is the corp id, also the receiveid every callback must carry.
	CorpID string `json:"corp_id"`
	// Token and AESKey are the callback Token and 43-character EncodingAESKey.
	Token  string `json:"token"`
	AESKey string `json:"aes_key"`
	// ContactSecret is the contacts-sync (通讯录同步) secret, used by the worker.
	ContactSecret string `json:"contact_secret"`

	TokenFile         string `json:"token_file,omitempty"`
	AESKeyFile        string `json:"aes_key_file,omitempty"`
	ContactSecretFile string `json:"contact_secret_file,omitempty"`
}

// String names the tenant without any secret, so a Tenant is safe to log.
func (t Tenant) String() string { return fmt.Sprintf("tenant %s (corp %s)", t.Name, t.CorpID) }

// Need says which credentials the caller requires.
type Need struct {
	Callback bool // Token and AESKey
	Contact  bool // ContactSecret
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Load returns the configured tenants. WECOM_TENANTS_FILE, when set, names a JSON file
// {"tenants":[{...}]}; otherwise one tenant named "default" is built from WECOM_CORP_ID,
// WECOM_CALLBACK_TOKEN, WECOM_CALLBACK_AES_KEY and WECOM_CONTACT_SECRET (each also as a
// *_FILE path). It returns an error naming the first missing or malformed value.
func Load(getenv func(string) string, need Need) ([]Tenant, error) {
	var ts []Tenant
	if path := getenv("WECOM_TENANTS_FILE"); path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading WECOM_TENANTS_FILE: %w", err)
		}
		var f struct {
			Tenants []Tenant `json:"tenants"`
		}
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("parsing WECOM_TENANTS_FILE %s: %w", path, err)
		}
		if len(f.Tenants) == 0 {
			return nil, fmt.Errorf("WECOM_TENANTS_FILE %s lists no tenants", path)
		}
		ts = f.Tenants
	} else {
		t := Tenant{Name: DefaultName}
		var err error
		if t.CorpID, err = value(getenv, "WECOM_CORP_ID"); err != nil {
			return nil, err
		}
		if t.CorpID == "" {
			return nil, errors.New("WECOM_CORP_ID is required (or WECOM_TENANTS_FILE)")
		}
		if t.Token, err = value(getenv, "WECOM_CALLBACK_TOKEN"); err != nil {
			return nil, err
		}
		if t.AESKey, err = value(getenv, "WECOM_CALLBACK_AES_KEY"); err != nil {
			return nil, err
		}
		if t.ContactSecret, err = value(getenv, "WECOM_CONTACT_SECRET"); err != nil {
			return nil, err
		}
		ts = []Tenant{t}
	}
	seen := map[string]bool{}
	for i := range ts {
		t := &ts[i]
		if err := t.resolveFiles(); err != nil {
			return nil, err
		}
		if err := t.validate(need); err != nil {
			return nil, err
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("tenant name %q is listed twice", t.Name)
		}
		seen[t.Name] = true
	}
	return ts, nil
}

// value reads NAME, or the file named by NAME_FILE, trimming a trailing newline.
func value(getenv func(string) string, name string) (string, error) {
	v := getenv(name)
	f := getenv(name + "_FILE")
	if v != "" && f != "" {
		return "", fmt.Errorf("set %s or %s_FILE, not both", name, name)
	}
	if f == "" {
		return v, nil
	}
	raw, err := os.ReadFile(f)
	if err != nil {
		return "", fmt.Errorf("reading %s_FILE: %w", name, err)
	}
	return strings.TrimRight(string(raw), "\r\n"), nil
}

func (t *Tenant) resolveFiles() error {
	for _, p := range []struct {
		dst  *string
		file string
		what string
	}{{&t.Token, t.TokenFile, "token_file"}, {&t.AESKey, t.AESKeyFile, "aes_key_file"}, {&t.ContactSecret, t.ContactSecretFile, "contact_secret_file"}} {
		if p.file == "" {
			continue
		}
		raw, err := os.ReadFile(p.file)
		if err != nil {
			return fmt.Errorf("tenant %s: reading %s: %w", t.Name, p.what, err)
		}
		*p.dst = strings.TrimRight(string(raw), "\r\n")
	}
	return nil
}

func (t *Tenant) validate(need Need) error {
	if !nameRE.MatchString(t.Name) {
		return fmt.Errorf("tenant name %q must be 1-64 characters of letters, digits, _ or -", t.Name)
	}
	if t.CorpID == "" {
		return fmt.Errorf("tenant %s: corp_id is required", t.Name)
	}
	if strings.ContainsAny(t.CorpID, ".*> \t\r\n") {
		return fmt.Errorf("tenant %s: corp_id %q may not contain '.', '*', '>' or spaces", t.Name, t.CorpID)
	}
	if need.Callback {
		if t.Token == "" {
			return fmt.Errorf("tenant %s: the callback token (WECOM_CALLBACK_TOKEN) is required", t.Name)
		}
		if len(t.AESKey) != 43 {
			return fmt.Errorf("tenant %s: the EncodingAESKey (WECOM_CALLBACK_AES_KEY) must be 43 characters, got %d", t.Name, len(t.AESKey))
		}
	}
	if need.Contact && t.ContactSecret == "" {
		return fmt.Errorf("tenant %s: the contacts-sync secret (WECOM_CONTACT_SECRET) is required", t.Name)
	}
	return nil
}
