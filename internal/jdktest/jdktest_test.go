package jdktest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sampleKeytool = `Keystore type: PKCS12
Keystore provider: SUN

Your keystore contains 2 entries

Alias name: flink
Creation date: Jun 1, 2025
Entry type: PrivateKeyEntry
Certificate chain length: 2
Certificate[1]:
Owner: CN=jm

*******************************************

Alias name: ca-0123456789abcdef
Creation date: Jun 1, 2025
Entry type: trustedCertEntry

Owner: CN=ca
`

func TestParseKeytoolList(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    []Entry
		wantErr string
	}{
		{"a listing with a key and a trusted certificate is parsed", sampleKeytool,
			[]Entry{{"flink", "PrivateKeyEntry", 2}, {"ca-0123456789abcdef", "trustedCertEntry", 0}}, ""},
		{"an empty store is parsed as no entries", "Your keystore contains 0 entries\n", nil, ""},
		{"a count that disagrees with the entries is an error",
			strings.Replace(sampleKeytool, "contains 2", "contains 3", 1), nil, "reported 3 entries"},
		{"output without a count is an error", "keytool error: java.io.IOException\n", nil, "no \"Your keystore contains"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseKeytoolList(tt.out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("entries = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("entry %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestHandshakeReportsBrokenCredentials runs the real harness against a
// directory whose keystore is missing: the pair must fail with a setup
// reason instead of crashing the JVM or passing.
func TestHandshakeReportsBrokenCredentials(t *testing.T) {
	dir := t.TempDir()
	conf := "security.ssl.internal.enabled: true\n" +
		"security.ssl.internal.keystore: " + filepath.Join(dir, "missing.p12") + "\n" +
		"security.ssl.internal.keystore-password: x\n" +
		"security.ssl.internal.key-password: x\n"
	if err := os.WriteFile(filepath.Join(dir, SSLConfFile), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Handshake(t, dir, dir)
	if err == nil || !strings.Contains(err.Error(), "setup:") || !strings.Contains(err.Error(), "missing.p12") {
		t.Fatalf("Handshake = %v, want a setup failure naming missing.p12", err)
	}
}
