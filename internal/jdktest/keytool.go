package jdktest

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Entry is one keystore entry as `keytool -list -v` reports it.
type Entry struct {
	Alias string
	// Type is "PrivateKeyEntry" or "trustedCertEntry".
	Type string
	// ChainLength is the certificate chain length of a PrivateKeyEntry
	// (0 for trusted certificates).
	ChainLength int
}

// KeytoolList lists a store with the JDK's keytool, failing the test when
// keytool cannot read it. storeType is "PKCS12" or "JKS".
func KeytoolList(t testing.TB, path, storeType, password string) []Entry {
	t.Helper()
	// The output is parsed, so it must be in English whatever the
	// machine's locale (or JAVA_TOOL_OPTIONS) says.
	cmd := exec.Command(Tool(t, "keytool"), "-J-Duser.language=en", "-J-Duser.country=US", "-list", "-v", "-keystore", path,
		"-storetype", storeType, "-storepass", password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("keytool -list %s (%s): %v\n%s", path, storeType, err, out)
	}
	entries, err := parseKeytoolList(string(out))
	if err != nil {
		t.Fatalf("keytool -list %s: %v\n%s", path, err, out)
	}
	return entries
}

type keytoolParseError string

func (e keytoolParseError) Error() string { return string(e) }

// parseKeytoolList reads the "Alias name:", "Entry type:" and "Certificate
// chain length:" lines of `keytool -list -v`, and checks the entry count
// against "Your keystore contains N entries".
func parseKeytoolList(out string) ([]Entry, error) {
	var entries []Entry
	want := -1
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch {
		case strings.HasPrefix(line, "Your keystore contains "):
			f := strings.Fields(line)
			if len(f) >= 4 {
				want, _ = strconv.Atoi(f[3])
			}
		case ok && k == "Alias name":
			entries = append(entries, Entry{Alias: v})
		case ok && k == "Entry type" && len(entries) > 0:
			entries[len(entries)-1].Type = v
		case ok && k == "Certificate chain length" && len(entries) > 0:
			entries[len(entries)-1].ChainLength, _ = strconv.Atoi(v)
		}
	}
	if want < 0 {
		return nil, keytoolParseError("keytool output has no \"Your keystore contains N entries\" line")
	}
	if want != len(entries) {
		return nil, keytoolParseError("keytool reported " + strconv.Itoa(want) + " entries but listed " + strconv.Itoa(len(entries)))
	}
	return entries, nil
}
