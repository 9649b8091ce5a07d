package authority_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/credentials"
	"github.com/flinkpki/flinkpki/internal/jdktest"
)

// jdkRun collects credential pairs and their expected outcome, writes each
// holder's credentials as init would, and runs every pair, both ways, in
// one JVM that loads the stores as Flink's SSLUtils does.
type jdkRun struct {
	t     *testing.T
	e     *authoritytest.Env
	base  string
	dirs  map[*authoritytest.Creds]string
	pairs [][2]string
	names []string
	want  []bool
}

func newJDKRun(t *testing.T, e *authoritytest.Env) *jdkRun {
	return &jdkRun{t: t, e: e, base: t.TempDir(), dirs: map[*authoritytest.Creds]string{}}
}

// dir writes c's credentials once, under a name that tells re-issued
// credentials of the same holder apart.
func (j *jdkRun) dir(c *authoritytest.Creds) string {
	j.t.Helper()
	if d, ok := j.dirs[c]; ok {
		return d
	}
	d := filepath.Join(j.base, fmt.Sprintf("%s.%d", c.Holder, len(j.dirs)))
	fs, err := credentials.Build(credentials.Material{Key: c.Key, Chain: c.Chain, Trusted: c.Trusted},
		credentials.Options{Dir: d, Created: j.e.Clock.Now()})
	if err != nil {
		j.t.Fatalf("build credentials of %s: %v", c.Holder, err)
	}
	if err := fs.Write(d); err != nil {
		j.t.Fatalf("write credentials of %s: %v", c.Holder, err)
	}
	j.dirs[c] = d
	return d
}

// expect adds a and b in both directions.
func (j *jdkRun) expect(a, b *authoritytest.Creds, ok bool) {
	j.t.Helper()
	da, db := j.dir(a), j.dir(b)
	for _, p := range [][2]string{{da, db}, {db, da}} {
		j.pairs = append(j.pairs, p)
		j.names = append(j.names, fmt.Sprintf("%s serving %s", filepath.Base(p[0]), filepath.Base(p[1])))
		j.want = append(j.want, ok)
	}
}

func (j *jdkRun) run() {
	j.t.Helper()
	for i, err := range jdktest.HandshakeAll(j.t, j.pairs) {
		switch {
		case j.want[i] && err != nil:
			j.t.Errorf("JDK: %s failed: %v", j.names[i], err)
		case !j.want[i] && err == nil:
			j.t.Errorf("JDK: %s succeeded, want a refusal", j.names[i])
		}
	}
}
