//go:build flinke2e

package e2e

import (
	"os"
	"strings"
	"testing"
)

// rotate runs a full internal CA rotation on the live cluster: prepare,
// roll the TaskManagers, activate (refused first while the JobManager still
// lacks the new CA), a new TaskManager signed by the new CA, roll the rest,
// retire (refused first while old leaves are live), and a TaskManager that
// trusts only the new CA. A job runs after every step and must finish.
func rotate(t *testing.T, ph *phases, c *flinkCluster) {
	ph.next("rotation: prepare + roll TMs")
	c.pki.must(t, "ca", "prepare", "--cluster", c.name)
	for _, tm := range []string{"tm-1", "tm-2"} {
		c.stop(t, tm)
		c.startTM(t, tm)
		c.waitTMs(t, "tm-1", "tm-2")
		c.runJob(t, 4)
	}

	ph.next("rotation: activate")
	if out, err := c.pki.run("ca", "activate", "--cluster", c.name); err == nil {
		t.Fatalf("ca activate succeeded while the JobManager (started before prepare) cannot trust the new CA:\n%s", out)
	} else if !strings.Contains(err.Error(), "CA activation refused: 1 live holder does not trust the prepared CA yet: jm-0") {
		// Refused, but not for the JobManager (a connection failure, a usage error).
		t.Fatalf("ca activate failed, but not as blocked by jm-0 alone: %v", err)
	} else {
		t.Logf("ca activate refused as it should be: %v", err)
	}
	c.stop(t, "jm-0")
	c.startJM(t, "jm-0")
	c.waitTMs(t, "tm-1", "tm-2")
	c.runJob(t, 4)
	c.pki.must(t, "ca", "activate", "--cluster", c.name)

	ph.next("rotation: new-CA TM joins")
	c.startTM(t, "tm-3")
	c.waitTMs(t, "tm-1", "tm-2", "tm-3")
	c.runJob(t, 6)

	ph.next("rotation: roll all + retire")
	if out, err := c.pki.run("ca", "retire", "--cluster", c.name); err == nil {
		t.Fatalf("ca retire succeeded while leaves of the old CA are live:\n%s", out)
	} else if msg := err.Error(); !strings.Contains(msg, "CA retirement refused: 3 live holders still hold leaves signed by the retiring CA") ||
		!strings.Contains(msg, "jm-0") || !strings.Contains(msg, "tm-1") || !strings.Contains(msg, "tm-2") || strings.Contains(msg, "tm-3") {
		// jm-0, tm-1 and tm-2 hold old-CA leaves; tm-3 joined after activation.
		t.Fatalf("ca retire failed, but not as blocked by jm-0, tm-1 and tm-2: %v", err)
	} else {
		t.Logf("ca retire refused as it should be: %v", err)
	}
	c.stop(t, "jm-0", "tm-1", "tm-2")
	c.startJM(t, "jm-0")
	c.startTM(t, "tm-1")
	c.startTM(t, "tm-2")
	c.waitTMs(t, "tm-1", "tm-2", "tm-3")
	c.runJob(t, 6)
	c.pki.must(t, "ca", "retire", "--cluster", c.name)

	ph.next("rotation: TM after retire")
	c.startTM(t, "tm-4")
	if n := countCerts(t, c.tlsDir("tm-4")+"/ca.crt"); n != 1 {
		t.Fatalf("tm-4's trust bundle holds %d CAs after retire, want only the new one", n)
	}
	c.waitTMs(t, "tm-1", "tm-2", "tm-3", "tm-4")
	c.runJob(t, 8)
}

// countCerts counts the PEM certificates in a file.
func countCerts(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "BEGIN CERTIFICATE")
}
