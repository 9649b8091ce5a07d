package main

// serve's start, in the order it runs: the files the flags name are read,
// the ports bound, the data directory prepared and the store opened, so a
// start refused at any step has written nothing it leaves behind.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/flinkpki/flinkpki/internal/atomicfile"
	"github.com/flinkpki/flinkpki/k8sauth"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
	etcdstore "github.com/flinkpki/flinkpki/store/etcd"
)

// serveInputs is what serve's flags name outside the data directory, read
// and checked before a port is bound or anything is written.
type serveInputs struct {
	kek []byte // nil: --dev keeps it in DIR/kek
	// warnings are said once the logger runs: what serve accepts but an
	// operator should fix.
	warnings []string
	k8s      *k8sauth.Verifier
	review   *k8sauth.Reviewer
	etcdTLS  *tls.Config
}

func (o *serveOptions) readInputs() (*serveInputs, error) {
	in := &serveInputs{}
	if o.kekFile != "" {
		raw, err := os.ReadFile(o.kekFile)
		if err != nil {
			return nil, fmt.Errorf("read key-encryption key: %w", err)
		}
		if in.kek, err = store.ParseKEK(raw); err != nil {
			return nil, err
		}
		// Group bits are left alone: a Kubernetes Secret volume under an
		// fsGroup is 0440 whatever its defaultMode, readable by the pod's
		// own group only.
		if st, err := os.Stat(o.kekFile); err == nil && st.Mode().Perm()&0o007 != 0 {
			in.warnings = append(in.warnings, fmt.Sprintf("the key-encryption key file %s has mode %04o: every user of this host can read the key that opens every CA key; make it 0400 or 0600 (a Kubernetes Secret volume: defaultMode: 0400)", o.kekFile, st.Mode().Perm()))
		}
	} else if !o.dev {
		return nil, usagef("no key-encryption key: pass --kek-file FILE or set FLINKPKI_KEK_FILE (create one with: (umask 077; head -c 32 /dev/urandom > kek))")
	}
	if o.k8sIssuer != "" {
		jwks, err := os.ReadFile(o.k8sJWKSFile)
		if err != nil {
			return nil, fmt.Errorf("read --k8s-jwks-file: %w", err)
		}
		if in.k8s, err = k8sauth.New(k8sauth.Config{Issuer: o.k8sIssuer, Audience: o.k8sAudience, JWKS: jwks, JWKSFile: o.k8sJWKSFile}); err != nil {
			return nil, err
		}
	}
	if o.k8sTokenReview {
		var err error
		if in.review, err = k8sauth.NewReviewer(k8sauth.ReviewerConfig{APIServer: o.k8sAPIServer, CAFile: o.k8sAPICAFile, TokenFile: o.k8sAPITokenFile, Audience: o.k8sAudience, CacheTTL: o.k8sReviewCache.d}); err != nil {
			return nil, err
		}
	}
	if o.storeKind == "etcd" {
		var err error
		if in.etcdTLS, err = etcdstore.TLSConfig(o.etcdCAFile, o.etcdCertFile, o.etcdKeyFile); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// serveListeners are serve's ports, bound before anything is written, so
// that a port in use refuses the start with the data directory as it was.
type serveListeners struct {
	grpc, metrics, pprof, health net.Listener
}

func (o *serveOptions) bind() (*serveListeners, error) {
	ls := &serveListeners{}
	for _, b := range []struct {
		flag, addr string
		l          *net.Listener
	}{{"--listen", o.listen, &ls.grpc}, {"--metrics-listen", o.metricsListen, &ls.metrics}, {"--pprof-listen", o.pprofListen, &ls.pprof}, {"--health-listen", o.healthListen, &ls.health}} {
		if b.addr == "" {
			continue
		}
		l, err := net.Listen("tcp", b.addr)
		if err != nil {
			ls.close()
			return nil, fmt.Errorf("%s %s: %w", b.flag, b.addr, err)
		}
		*b.l = l
	}
	return ls, nil
}

// close closes every listener. Those a server has served are closed
// already, which does no harm.
func (ls *serveListeners) close() {
	for _, l := range []net.Listener{ls.grpc, ls.metrics, ls.pprof, ls.health} {
		if l != nil {
			l.Close()
		}
	}
}

// prepareDataDir checks or creates the data directory and, with --dev and
// no --kek-file, finds or creates DIR/kek. undo takes back what it created
// (the directories, a new key), for a start refused before the store has
// taken that key; it never removes anything that was there before.
func (o *serveOptions) prepareDataDir(kek []byte) (_ []byte, undo func(), _ error) {
	var created []string // in the order made; undo removes them in reverse
	undo = func() { atomicfile.RemoveDirs(created) }
	fi, err := os.Stat(o.dataDir)
	switch {
	case errors.Is(err, os.ErrNotExist) && o.dev:
		if created, err = atomicfile.MkdirAll(o.dataDir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("create data directory: %w", err)
		}
	case errors.Is(err, os.ErrNotExist):
		return nil, nil, fmt.Errorf("data directory %s does not exist: create it (mode 0700) or pass --dev", o.dataDir)
	case err != nil:
		return nil, nil, err
	case !fi.IsDir():
		return nil, nil, fmt.Errorf("--data-dir %s is not a directory", o.dataDir)
	}
	if err := o.checkInterruptedCopy(); err != nil {
		undo()
		return nil, nil, err
	}
	if kek != nil {
		return kek, undo, nil
	}
	o.kekFile = filepath.Join(o.dataDir, "kek")
	raw, err := os.ReadFile(o.kekFile)
	if errors.Is(err, os.ErrNotExist) {
		db := filepath.Join(o.dataDir, dbFileName)
		if _, err := os.Stat(db); o.storeKind == "bolt" && err == nil {
			return nil, nil, fmt.Errorf("the database %s exists but %s does not: restore the key-encryption key to %s, or pass --kek-file FILE; nothing was changed", db, o.kekFile, o.kekFile)
		}
		raw = make([]byte, store.KEKSize)
		if _, err = rand.Read(raw); err == nil {
			err = atomicfile.Write(o.kekFile, raw, 0o600)
		}
		if err != nil {
			undo()
			return nil, nil, fmt.Errorf("create dev key-encryption key: %w", err)
		}
		created = append(created, o.kekFile)
	}
	if err != nil {
		undo()
		return nil, nil, fmt.Errorf("read key-encryption key: %w", err)
	}
	atomicfile.RemoveLeftovers(o.kekFile) // a key a killed first start never put in place
	if kek, err = store.ParseKEK(raw); err != nil {
		undo()
		return nil, nil, err
	}
	return kek, undo, nil
}

// checkInterruptedCopy refuses a bbolt data directory that holds no store
// but the copy an interrupted admin restore or admin migrate left (each
// builds the store under a temporary name and then puts it in place): a
// new, empty store there would take the place of the one being restored
// or migrated, with a new serving CA that no client trusts, and the
// migration's retry would find its target taken.
func (o *serveOptions) checkInterruptedCopy() error {
	if o.storeKind != "bolt" {
		return nil
	}
	db := filepath.Join(o.dataDir, dbFileName)
	if _, err := os.Lstat(db); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if left := atomicfile.Leftovers(db); len(left) > 0 {
		return fmt.Errorf("data directory %s holds no store but %s, what an interrupted admin restore left: run the restore again (it removes that file), or delete it to start a new store; nothing was changed", o.dataDir, filepath.Base(left[0]))
	}
	if left, _ := filepath.Glob(filepath.Join(o.dataDir, bolt.MigratingPattern)); len(left) > 0 {
		if inUse, _ := atomicfile.InUse(left[0]); inUse {
			return fmt.Errorf("data directory %s holds no store but %s, which a running admin migrate is writing: start the server once it has finished; nothing was changed", o.dataDir, filepath.Base(left[0]))
		}
		return fmt.Errorf("data directory %s holds no store but %s, what an interrupted admin migrate left: run the same admin migrate again (it removes that file), or delete it to start a new store; nothing was changed", o.dataDir, filepath.Base(left[0]))
	}
	return nil
}

// openStore opens the configured store with kek. A start refused before
// the store has taken kek undoes what prepareDataDir created; any other
// failure may come after a new store recorded kek, which must then stay.
func (o *serveOptions) openStore(ctx context.Context, kek []byte, etcdTLS *tls.Config, undo func()) (*store.Store, store.Backend, error) {
	seal, err := store.NewSealer(kek, nil)
	if err != nil {
		undo()
		return nil, nil, err
	}
	backend, where, err := o.openBackend(ctx, etcdTLS)
	if err != nil {
		undo()
		return nil, nil, err
	}
	st, err := store.Open(ctx, backend, seal)
	if err != nil {
		backend.Close()
		if errors.Is(err, store.ErrWrongKEK) {
			undo()
			return nil, nil, fmt.Errorf("the key-encryption key %s does not open %s: start with the key this store was created with; nothing was changed", o.kekFile, where)
		}
		if errors.Is(err, store.ErrSchema) {
			undo()
		}
		return nil, nil, err
	}
	return st, backend, nil
}

// openBackend opens the configured store backend and says where it is.
// The flags were checked by resolve, and etcd's TLS files read by readInputs.
func (o *serveOptions) openBackend(ctx context.Context, etcdTLS *tls.Config) (store.Backend, string, error) {
	switch o.storeKind {
	case "bolt":
		path := filepath.Join(o.dataDir, dbFileName)
		b, err := bolt.Open(path, bolt.Options{})
		return b, path, err
	case "etcd":
		b, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: o.etcdEndpoints, Prefix: o.etcdPrefix, TLS: etcdTLS, MaxBatch: o.etcdBatch})
		return b, etcdWhere(o.etcdEndpoints, o.etcdPrefix), err
	}
	return nil, "", usagef("--store %q: use bolt or etcd", o.storeKind)
}
