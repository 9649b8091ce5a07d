// Package credentials assembles the file set of the contract's "Issuing
// credentials" section (keystore, truststore, passwords, PEM copies and
// flink-ssl.yaml) and writes it atomically.
//
// Build is pure and works in memory, so `bake`, `init` and the enrollment
// benchmark share it; Check and Write are the parts that touch the disk.
package credentials

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/flinkpki/flinkpki/flinkconf"
	"github.com/flinkpki/flinkpki/keystore"
)

// File names of the set. The store names carry the format's extension.
const (
	KeystorePasswordFile   = "keystore.password"
	TruststorePasswordFile = "truststore.password"
	CertFile               = "tls.crt"
	KeyFile                = "tls.key"
	CAFile                 = "ca.crt"
	FlinkSSLFile           = "flink-ssl.yaml"
)

// KeystoreFile returns the keystore's file name for a format.
func KeystoreFile(f keystore.Format) string { return "keystore." + f.Ext() }

// TruststoreFile returns the truststore's file name for a format.
func TruststoreFile(f keystore.Format) string { return "truststore." + f.Ext() }

// ErrInvalidOptions means Build was called with options it cannot honour.
var ErrInvalidOptions = errors.New("invalid credential options")

// Material is what a process needs for internal mutual TLS.
type Material struct {
	// Key is the private key of Chain[0].
	Key crypto.PrivateKey
	// Chain is the leaf first, then its issuers.
	Chain []*x509.Certificate
	// Trusted are the CAs the process trusts: every CA the cluster
	// currently trusts.
	Trusted []*x509.Certificate
}

// Options controls how the file set is built.
type Options struct {
	// Format of the stores; empty means PKCS12.
	Format keystore.Format
	// Profile of PKCS#12 stores; empty means Modern2023.
	Profile keystore.Profile
	// Dir is the absolute path the files are written to, and the one they
	// will live at unless RuntimeDir says otherwise.
	Dir string
	// RuntimeDir is the absolute path the files will live at when Flink
	// reads them, when that is not Dir: an image build writes them on the
	// build host and copies them into the image elsewhere. flink-ssl.yaml
	// names the stores by absolute path, so this must be known up front.
	// Empty means Dir.
	RuntimeDir string
	// Rand supplies passwords and PKCS#12 salts; nil means crypto/rand.
	Rand io.Reader
	// Created is the creation time written into JKS stores. Required, so
	// that Build never reads a clock.
	Created time.Time
	// LegacyStoreTypes leaves out keystore-type and truststore-type, which
	// Flink before 1.20 does not know (it then uses the JVM default type,
	// and the JDK reads either format under either type).
	LegacyStoreTypes bool
	// REST writes flink-ssl.yaml with Flink's security.ssl.rest.* keys (REST
	// mutual TLS), for rest-server and rest-client material.
	REST bool
	// TLS13 writes security.ssl.protocol TLSv1.3 with the TLS 1.3 suites
	// instead of TLS 1.2 with suites matched to the key.
	TLS13 bool
	// Passwords, when set, are used for the stores instead of new ones:
	// those of the set being replaced (ReadPasswords), so that a Flink
	// configuration naming them stays valid while the new set replaces
	// the old one, and after a crash between the two.
	Passwords *Passwords
}

// Passwords are a file set's keystore and truststore passwords.
type Passwords struct{ Keystore, Truststore string }

// ReadPasswords returns the passwords of the file set Write put in dir, or
// nil when dir holds none (or ones this package would not have made). It
// reads them only through the set's own layout (dir/..data, a link to a
// generation directory beside it, holding regular files), so a link that
// another container sharing the volume put in their place cannot make it
// read a file elsewhere.
func ReadPasswords(dir string) *Passwords {
	gen, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil || !isTSDir(gen) {
		return nil
	}
	read := func(name string) string {
		f, err := os.OpenFile(filepath.Join(dir, gen, name), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return ""
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, keystore.PasswordLength+1))
		if err != nil || keystore.CheckPassword(string(b)) != nil {
			return ""
		}
		return string(b)
	}
	p := &Passwords{Keystore: read(KeystorePasswordFile), Truststore: read(TruststorePasswordFile)}
	if p.Keystore == "" || p.Truststore == "" {
		return nil
	}
	return p
}

// File is one file of the set.
type File struct {
	Name string
	Data []byte
	Mode os.FileMode
}

// FileSet is a complete set of credential files.
type FileSet struct {
	// Files in a fixed order: stores, passwords, PEM files, flink-ssl.yaml.
	Files []File
	// SSL holds the security.ssl.* keys, passwords included, for merging
	// into a Flink configuration. flink-ssl.yaml renders exactly these.
	SSL []flinkconf.KV
}

// File returns the file with the given name, or nil.
func (fs *FileSet) File(name string) *File {
	for i := range fs.Files {
		if fs.Files[i].Name == name {
			return &fs.Files[i]
		}
	}
	return nil
}

// Build assembles the file set. Passwords are fresh for every call: one for
// the keystore and one for the truststore. The key password always equals
// the keystore password, which PKCS#12 requires and JKS allows; a separate
// JKS key password would add a secret without adding protection, since both
// sit side by side in flink-ssl.yaml.
func Build(m Material, o Options) (*FileSet, error) {
	format, err := keystore.ParseFormat(string(o.Format))
	if err != nil {
		return nil, err
	}
	profile, err := keystore.ParseProfile(string(o.Profile))
	if err != nil {
		return nil, err
	}
	if err := checkDirs(o); err != nil {
		return nil, err
	}
	if o.Created.IsZero() {
		return nil, fmt.Errorf("%w: Created is zero; pass the issuance time", ErrInvalidOptions)
	}
	if len(m.Chain) == 0 || m.Chain[0] == nil {
		return nil, fmt.Errorf("%w: it is empty; give the leaf certificate first", keystore.ErrInvalidChain)
	}
	st, err := encodeStores(m, format, profile, o)
	if err != nil {
		return nil, err
	}
	ksPass, tsPass := st.ksPass, st.tsPass
	keyPEM, err := x509.MarshalPKCS8PrivateKey(m.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", keystore.ErrInvalidKey, err)
	}
	ssl, err := sslKVs(o, format, m.Chain[0].PublicKeyAlgorithm, ksPass, tsPass)
	if err != nil {
		return nil, err
	}
	return &FileSet{
		Files: []File{
			{KeystoreFile(format), st.keystore, 0o600},
			{TruststoreFile(format), st.truststore, 0o600},
			{KeystorePasswordFile, []byte(ksPass), 0o600},
			{TruststorePasswordFile, []byte(tsPass), 0o600},
			{CertFile, certsPEM(m.Chain), 0o644},
			{KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyPEM}), 0o600},
			{CAFile, certsPEM(m.Trusted), 0o644},
			{FlinkSSLFile, flinkconf.RenderFlat(ssl), 0o600},
		},
		SSL: ssl,
	}, nil
}

// fileNames are the names of a set's files, in Build's order.
func fileNames(format keystore.Format) []string {
	return []string{KeystoreFile(format), TruststoreFile(format), KeystorePasswordFile, TruststorePasswordFile,
		CertFile, KeyFile, CAFile, FlinkSSLFile}
}

// sslKVs are the security.ssl.* keys of a set: the internal ones, or the
// REST ones for REST material.
func sslKVs(o Options, format keystore.Format, alg x509.PublicKeyAlgorithm, ksPass, tsPass string) ([]flinkconf.KV, error) {
	scoped := flinkconf.InternalSSL.Keys
	if o.REST {
		scoped = flinkconf.InternalSSL.RESTKeys
	}
	return scoped(flinkconf.InternalSSL{
		Keystore:           filepath.Join(o.runtimeDir(), KeystoreFile(format)),
		KeystorePassword:   ksPass,
		KeyPassword:        ksPass,
		KeystoreType:       format.StoreType(),
		Truststore:         filepath.Join(o.runtimeDir(), TruststoreFile(format)),
		TruststorePassword: tsPass,
		TruststoreType:     format.StoreType(),
		KeyAlgorithm:       alg,
		LegacyStoreTypes:   o.LegacyStoreTypes,
		TLS13:              o.TLS13,
	})
}

// PreviewSSL returns the security.ssl.* keys a set built with o would
// carry, with placeholder passwords and the cipher suites of an ECDSA key:
// enough to try merging them into a Flink configuration before anything is
// issued.
func PreviewSSL(o Options) ([]flinkconf.KV, error) {
	format, err := keystore.ParseFormat(string(o.Format))
	if err != nil {
		return nil, err
	}
	return sslKVs(o, format, x509.ECDSA, "preview", "preview")
}

type stores struct {
	keystore, truststore []byte
	ksPass, tsPass       string
}

// encodeStores generates the two passwords (or takes o.Passwords) and
// encodes both stores.
func encodeStores(m Material, format keystore.Format, profile keystore.Profile, o Options) (*stores, error) {
	var ksPass, tsPass string
	if p := o.Passwords; p != nil {
		if keystore.CheckPassword(p.Keystore) != nil || keystore.CheckPassword(p.Truststore) != nil {
			return nil, fmt.Errorf("%w: Passwords are not %d letters and digits", ErrInvalidOptions, keystore.PasswordLength)
		}
		ksPass, tsPass = p.Keystore, p.Truststore
	} else {
		var err error
		if ksPass, err = keystore.GeneratePassword(o.Rand); err != nil {
			return nil, err
		}
		if tsPass, err = keystore.GeneratePassword(o.Rand); err != nil {
			return nil, err
		}
	}
	ks, err := keystore.EncodeKeyStore(format, keystore.KeyStore{
		Alias: keystore.DefaultAlias, Key: m.Key, Chain: m.Chain,
		StorePassword: ksPass, KeyPassword: ksPass,
		Created: o.Created, Profile: profile, Rand: o.Rand,
	})
	if err != nil {
		return nil, err
	}
	ts, err := keystore.EncodeTrustStore(format, keystore.TrustStore{
		CAs: m.Trusted, Password: tsPass, Created: o.Created, Profile: profile, Rand: o.Rand,
	})
	if err != nil {
		return nil, err
	}
	return &stores{keystore: ks, truststore: ts, ksPass: ksPass, tsPass: tsPass}, nil
}

func certsPEM(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// runtimeDir is where Flink will find the files.
func (o Options) runtimeDir() string {
	if o.RuntimeDir != "" {
		return o.RuntimeDir
	}
	return o.Dir
}

// checkDirs checks Dir, and RuntimeDir when given, with checkDir.
func checkDirs(o Options) error {
	if err := checkDir(o.Dir); err != nil {
		return err
	}
	if o.RuntimeDir != "" {
		return checkDir(o.RuntimeDir)
	}
	return nil
}

// checkDir makes sure Dir can be written unquoted into flink-ssl.yaml and
// into a YAML config.yaml: an absolute path of letters, digits and a few
// punctuation characters.
func checkDir(dir string) error {
	if dir == "" || !filepath.IsAbs(dir) {
		return fmt.Errorf("%w: directory %q is not an absolute path; Flink needs absolute store paths", ErrInvalidOptions, dir)
	}
	for _, r := range dir {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		switch r {
		case '/', '.', '_', '-', '+', '@', '=', ',', '~':
			ok = true
		}
		if !ok {
			return fmt.Errorf("%w: directory %q contains %q, which a Flink configuration value cannot hold unquoted; use letters, digits and / . _ - +",
				ErrInvalidOptions, dir, r)
		}
	}
	return nil
}
