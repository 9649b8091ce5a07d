package credentials_test

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/credentials"
	"github.com/flinkpki/flinkpki/internal/jdktest"
	"github.com/flinkpki/flinkpki/keystore"
)

var created = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// cluster is a test cluster: its CA and the CAs its truststores hold.
type cluster struct {
	name    string
	ca      *jdktest.CA
	trusted []*x509.Certificate
}

func newCluster(t testing.TB, name, keyType string, slot int) cluster {
	t.Helper()
	ca := jdktest.NewCA(t, name+"-ca", jdktest.Key(t, keyType, slot))
	return cluster{name: name, ca: ca, trusted: []*x509.Certificate{ca.Cert}}
}

// material issues a leaf for a process of the cluster with key slot.
func (c cluster) material(t testing.TB, process, keyType string, slot int) credentials.Material {
	t.Helper()
	key := jdktest.Key(t, keyType, slot)
	return credentials.Material{Key: key, Chain: c.ca.Issue(t, c.name+"-"+process, key), Trusted: c.trusted}
}

func build(t testing.TB, m credentials.Material, f keystore.Format, dir string, edit ...func(*credentials.Options)) *credentials.FileSet {
	t.Helper()
	o := credentials.Options{Format: f, Dir: dir, Created: created}
	for _, e := range edit {
		e(&o)
	}
	fs, err := credentials.Build(m, o)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return fs
}

// buildAndWrite builds a set for dir and writes it there.
func buildAndWrite(t testing.TB, m credentials.Material, f keystore.Format, dir string, edit ...func(*credentials.Options)) *credentials.FileSet {
	t.Helper()
	fs := build(t, m, f, dir, edit...)
	if err := fs.Write(dir); err != nil {
		t.Fatalf("Write(%s): %v", dir, err)
	}
	return fs
}
