package keystore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/keystore"
)

func TestParseFormat(t *testing.T) {
	tests := []struct {
		name, in string
		want     keystore.Format
		wantErr  error
	}{
		{"an empty name means the default, PKCS#12", "", keystore.PKCS12, nil},
		{"pkcs12 is PKCS#12", "pkcs12", keystore.PKCS12, nil},
		{"p12 is PKCS#12", "p12", keystore.PKCS12, nil},
		{"upper case is accepted", "JKS", keystore.JKS, nil},
		{"jks is JKS", "jks", keystore.JKS, nil},
		{"pem is refused", "pem", "", keystore.ErrUnknownFormat},
		{"a typo is refused", "pkcs-12", "", keystore.ErrUnknownFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keystore.ParseFormat(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseFormat(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseFormat(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), "jks or pkcs12") {
				t.Errorf("error %q does not list the choices", err)
			}
		})
	}
}

func TestFormatNames(t *testing.T) {
	if got := keystore.JKS.Ext(); got != "jks" {
		t.Errorf("JKS.Ext() = %q", got)
	}
	if got := keystore.PKCS12.Ext(); got != "p12" {
		t.Errorf("PKCS12.Ext() = %q", got)
	}
	if got := keystore.JKS.StoreType(); got != "JKS" {
		t.Errorf("JKS.StoreType() = %q", got)
	}
	if got := keystore.PKCS12.StoreType(); got != "PKCS12" {
		t.Errorf("PKCS12.StoreType() = %q", got)
	}
}

func TestParseProfile(t *testing.T) {
	tests := []struct {
		name, in string
		want     keystore.Profile
		wantErr  error
	}{
		{"an empty name means modern2023", "", keystore.Modern2023, nil},
		{"modern2023 is accepted", "modern2023", keystore.Modern2023, nil},
		{"legacy-des is accepted", "legacy-des", keystore.LegacyDES, nil},
		{"modern2026 is refused because JDK 17 cannot read PBMAC1", "modern2026", "", keystore.ErrUnknownProfile},
		{"rc2 is refused because OpenSSL 3 and Java 20 reject it", "legacy-rc2", "", keystore.ErrUnknownProfile},
		{"an unknown name is refused, not mapped to a legacy profile", "legacy", "", keystore.ErrUnknownProfile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keystore.ParseProfile(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseProfile(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseProfile(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
