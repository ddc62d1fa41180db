package tenant_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wecomsync/wecomsync/internal/tenant"
)

const key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoad(t *testing.T) {
	t.Parallel()

	t.Run("BuildsTheDefaultTenantFromVariables", func(t *testing.T) {
		t.Parallel()
		ts, err := tenant.Load(env(map[string]string{"WECOM_CORP_ID": "ww1", "WECOM_CALLBACK_TOKEN": "tok", "WECOM_CALLBACK_AES_KEY": key}), tenant.Need{Callback: true})
		require.NoError(t, err)
		require.Equal(t, []tenant.Tenant{{Name: "default", CorpID: "ww1", Token: "tok", AESKey: key}}, ts)
	})

	t.Run("ReadsSecretsFromFiles", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		p := filepath.Join(dir, "secret")
		require.NoError(t, os.WriteFile(p, []byte("s3cret\n"), 0o600))
		ts, err := tenant.Load(env(map[string]string{"WECOM_CORP_ID": "ww1", "WECOM_CONTACT_SECRET_FILE": p}), tenant.Need{Contact: true})
		require.NoError(t, err)
		require.Equal(t, "s3cret", ts[0].ContactSecret)
	})

	t.Run("ReadsTheTenantsFile", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		keyFile := filepath.Join(dir, "key")
		require.NoError(t, os.WriteFile(keyFile, []byte(key), 0o600))
		f := filepath.Join(dir, "tenants.json")
		require.NoError(t, os.WriteFile(f, []byte(`{"tenants":[{"name":"a","corp_id":"wwa","token":"t","aes_key":"`+key+`"},{"name":"b","corp_id":"wwb","token":"t","aes_key_file":"`+keyFile+`"}]}`), 0o600))
		ts, err := tenant.Load(env(map[string]string{"WECOM_TENANTS_FILE": f}), tenant.Need{Callback: true})
		require.NoError(t, err)
		require.Len(t, ts, 2)
		require.Equal(t, key, ts[1].AESKey)
	})

	t.Run("NamesWhatIsWrongWithoutSecrets", func(t *testing.T) {
		t.Parallel()
		_, err := tenant.Load(env(map[string]string{}), tenant.Need{})
		require.ErrorContains(t, err, "WECOM_CORP_ID is required")
		_, err = tenant.Load(env(map[string]string{"WECOM_CORP_ID": "ww1", "WECOM_CALLBACK_TOKEN": "tok", "WECOM_CALLBACK_AES_KEY": "tooShortSecretKey"}), tenant.Need{Callback: true})
		require.ErrorContains(t, err, "must be 43 characters, got 17")
		require.NotContains(t, err.Error(), "tooShortSecretKey")
		_, err = tenant.Load(env(map[string]string{"WECOM_CORP_ID": "ww.1"}), tenant.Need{})
		require.ErrorContains(t, err, "may not contain")
		_, err = tenant.Load(env(map[string]string{"WECOM_CORP_ID": "ww1"}), tenant.Need{Contact: true})
		require.ErrorContains(t, err, "WECOM_CONTACT_SECRET")
		_, err = tenant.Load(env(map[string]string{"WECOM_CORP_ID": "ww1", "WECOM_CONTACT_SECRET": "a", "WECOM_CONTACT_SECRET_FILE": "/x"}), tenant.Need{})
		require.ErrorContains(t, err, "not both")
		dir := t.TempDir()
		f := filepath.Join(dir, "t.json")
		require.NoError(t, os.WriteFile(f, []byte(`{"tenants":[{"name":"a","corp_id":"w"},{"name":"a","corp_id":"w"}]}`), 0o600))
		_, err = tenant.Load(env(map[string]string{"WECOM_TENANTS_FILE": f}), tenant.Need{})
		require.ErrorContains(t, err, "listed twice")
	})

	t.Run("StringHidesSecrets", func(t *testing.T) {
		t.Parallel()
		s := tenant.Tenant{Name: "a", CorpID: "w", Token: "tok", AESKey: key, ContactSecret: "sec"}.String()
		require.NotContains(t, s, "tok")
		require.NotContains(t, s, key)
		require.NotContains(t, s, "sec")
	})
}
