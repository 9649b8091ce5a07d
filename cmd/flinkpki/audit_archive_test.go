package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestAuditArchiveMovesTheOldestEntriesToAFileThatVerifies: the entries
// before --before go to the file, one checked JSON line each, and leave the
// server's trail, which still verifies and names the archive's last hash;
// audit verify --file recomputes the archive offline, catches an edited
// line, and links two archives in a row; an archive is never replaced, and
// a refused one leaves no file.
func TestAuditArchiveMovesTheOldestEntriesToAFileThatVerifies(t *testing.T) {
	s := startServer(t, "", "--audit-archive-min-age", "0")
	for _, name := range []string{"old1", "old2", "old3"} {
		s.cli(t, s.admin, "cluster", "create", name).ok(t)
	}
	time.Sleep(10 * time.Millisecond)
	cut := time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(10 * time.Millisecond)
	for _, name := range []string{"new1", "new2"} {
		s.cli(t, s.admin, "cluster", "create", name).ok(t)
	}
	dir := t.TempDir()
	first := filepath.Join(dir, "audit-1.jsonl")

	var res archiveResult
	r := s.cli(t, s.admin, "audit", "archive", "--before", cut, "--out", first, "-o", "json").ok(t)
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("audit archive -o json: %v\n%s", err, r.stdout)
	}
	raw, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	var clusters []string
	for _, l := range lines {
		var e archiveLine
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("archive line %q: %v", l, err)
		}
		if e.Action == "cluster.create" {
			clusters = append(clusters, e.Cluster)
		}
	}
	if strings.Join(clusters, ",") != "old1,old2,old3" || res.Entries != uint64(len(lines)) || res.FirstSeq != 1 ||
		res.LastSeq != uint64(len(lines)) || res.Removed != res.Entries || res.Archived != res.LastSeq || res.Path != first {
		t.Fatalf("archived %d lines creating %v, reported %+v; want the entries before the cut (the three old clusters), all removed", len(lines), clusters, res)
	}
	if fi, err := os.Stat(first); err != nil || fi.Mode().Perm() != 0o600 || res.Bytes != fi.Size() {
		t.Fatalf("the archive: %v, %v; want mode 0600 and the size reported", fi, err)
	}

	var list auditList
	if err := json.Unmarshal([]byte(s.cli(t, s.admin, "audit", "list", "-o", "json").ok(t).stdout), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Entries) == 0 || list.Entries[0].Seq != res.LastSeq+1 || list.Entries[0].PrevHash != res.LastHash {
		t.Fatalf("after the archive the trail starts with %+v; want entry %d linking to %s", list.Entries[:1], res.LastSeq+1, res.LastHash)
	}
	var archiveEntry auditJSON
	for _, e := range list.Entries {
		if e.Action == "audit.archive" {
			archiveEntry = e
		}
	}
	if archiveEntry.Details["through_hash"] != res.LastHash || archiveEntry.Outcome != "ok" || !strings.HasPrefix(archiveEntry.Actor, "admin:") {
		t.Fatalf("the removal was audited as %+v; want audit.archive by the administrator through hash %s", archiveEntry, res.LastHash)
	}
	v := s.cli(t, s.admin, "audit", "verify").ok(t)
	if !strings.Contains(v.stdout, "the last of them has hash "+res.LastHash) {
		t.Fatalf("audit verify after the archive says %q; want the last archived hash, %s", v.stdout, res.LastHash)
	}
	f := s.cli(t, s.admin, "audit", "verify", "--file", first).ok(t)
	if !strings.Contains(f.stdout, "intact; the last has hash "+res.LastHash) {
		t.Fatalf("audit verify --file says %q", f.stdout)
	}

	// A second archive goes on where the first ended; both verify in a row.
	second := filepath.Join(dir, "audit-2.jsonl")
	s.cli(t, s.admin, "audit", "archive", "--before", "0s", "--out", second).ok(t)
	var both struct {
		OK    bool            `json:"ok"`
		Files []archiveReport `json:"files"`
	}
	if err := json.Unmarshal([]byte(s.cli(t, s.admin, "audit", "verify", "--file", first, "--file", second, "-o", "json").ok(t).stdout), &both); err != nil {
		t.Fatal(err)
	}
	if !both.OK || len(both.Files) != 2 || both.Files[1].FirstSeq != res.LastSeq+1 || both.Files[1].FirstPrev != res.LastHash {
		t.Fatalf("two archives in a row: %+v; want the second starting at %d, linked to the first", both, res.LastSeq+1)
	}

	// An edited line, a dropped one, and archives out of order or with
	// one missing between them are named.
	edited := filepath.Join(dir, "edited.jsonl")
	if err := os.WriteFile(edited, bytes.Replace(raw, []byte(`"cluster":"old2"`), []byte(`"cluster":"oldX"`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cli(t, s.admin, "audit", "verify", "--file", edited).refused(t, "was modified: its hash does not match its content")
	dropped := filepath.Join(dir, "dropped.jsonl")
	if err := os.WriteFile(dropped, []byte(strings.Join(append(lines[:1:1], lines[2:]...), "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cli(t, s.admin, "audit", "verify", "--file", dropped).refused(t, "entries are missing")
	s.cli(t, s.admin, "audit", "verify", "--file", second, "--file", first).refused(t, "before "+second+" does")
	gap := filepath.Join(dir, "gap.jsonl")
	if err := os.WriteFile(gap, []byte(strings.Join(lines[2:], "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	head := filepath.Join(dir, "head.jsonl")
	if err := os.WriteFile(head, []byte(lines[0]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cli(t, s.admin, "audit", "verify", "--file", head, "--file", gap).refused(t, "entries 2 to 2 are in neither")
	// Overlapping archives (one run again after an interrupted one) are
	// fine while the entries they share agree.
	s.cli(t, s.admin, "audit", "verify", "--file", head, "--file", first, "--file", second).ok(t)
	s.cli(t, s.admin, "audit", "verify", "--file", head, "--file", edited).refused(t, "was modified")
	// A first entry that verifies on its own but is not the one the next
	// archive holds (another trail's, or one rewritten whole).
	var e1 archiveLine
	if err := json.Unmarshal([]byte(lines[0]), &e1); err != nil {
		t.Fatal(err)
	}
	e1.Actor = "admin:someone-else"
	st := store.AuditEntry{Seq: e1.Seq, Actor: e1.Actor, Cluster: e1.Cluster, Action: e1.Action, Outcome: e1.Outcome, Reason: e1.Reason, Details: e1.Details, Prev: e1.PrevHash}
	if st.Time, err = time.Parse(time.RFC3339Nano, e1.Time); err != nil {
		t.Fatal(err)
	}
	if len(st.Details) == 0 {
		st.Details = nil
	}
	e1.Hash = store.AuditHash(&st)
	forged, _ := json.Marshal(e1)
	other := filepath.Join(dir, "other.jsonl")
	if err := os.WriteFile(other, append(forged, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cli(t, s.admin, "audit", "verify", "--file", other).ok(t)
	s.cli(t, s.admin, "audit", "verify", "--file", other, "--file", first).refused(t, "does not go on from "+other)

	// Never over an existing file; nothing to archive writes nothing.
	before, _ := os.ReadFile(first)
	s.cli(t, s.admin, "audit", "archive", "--before", "0s", "--out", first).refused(t, "already exists")
	if after, _ := os.ReadFile(first); !bytes.Equal(before, after) {
		t.Fatal("a refused archive changed the existing file")
	}
	none := filepath.Join(dir, "none.jsonl")
	r = s.cli(t, s.admin, "audit", "archive", "--before", "3650d", "--out", none).ok(t)
	if _, err := os.Stat(none); !os.IsNotExist(err) || !strings.Contains(r.stderr, "nothing to archive") {
		t.Fatalf("an archive with nothing before its cut: %v, stderr %q; want no file and a word", err, r.stderr)
	}

	// Bad flags are usage errors; a caller who may not read the trail
	// gets no file.
	for _, args := range [][]string{
		{"--before", "soon", "--out", none},
		{"--before", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--out", none},
		{"--out", none},
		{"--before", "1d"},
	} {
		if r := s.cli(t, s.admin, append([]string{"audit", "archive"}, args...)...); r.code != 2 {
			t.Fatalf("audit archive %v: exit %d, want 2\n%s", args, r.code, r.stderr)
		}
	}
	tok := s.tokenFor(t, "new1", "taskmanager")
	s.cli(t, tok, "audit", "archive", "--before", "0s", "--out", none).refused(t, "may only enroll")
	if ents, _ := os.ReadDir(dir); len(ents) != 7 {
		t.Fatalf("the archive folder holds %d files after the refusals; want the 7 written on purpose", len(ents))
	}
}

// TestAuditArchiveKeepsRecentEntriesByDefault: serve removes no audit entry
// younger than --audit-archive-min-age (a week by default), so an archive
// of fresh entries is refused, says what to do, and leaves no file and the
// trail whole.
func TestAuditArchiveKeepsRecentEntriesByDefault(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	out := filepath.Join(t.TempDir(), "audit.jsonl")
	s.cli(t, s.admin, "audit", "archive", "--before", "0s", "--out", out).refused(t, "only once they are 7d old (serve --audit-archive-min-age): archive with an earlier --before")
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("the refused archive left %s: %v", out, err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
		t.Fatalf("the refused archive left %d files beside it", len(ents))
	}
	v := s.cli(t, s.admin, "audit", "verify").ok(t)
	if strings.Contains(v.stdout, "archived") {
		t.Fatalf("after a refused archive, verify says %q", v.stdout)
	}
}

// TestConcurrentArchivesToOneFileLeaveItWhole: archives racing for one
// --out never remove a file another one made: whatever left the trail is
// in the file, whichever archive wrote it.
func TestConcurrentArchivesToOneFileLeaveItWhole(t *testing.T) {
	s := startServer(t, "", "--audit-archive-min-age", "0", "--enroll-rate", "0")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	tok := s.tokenFor(t, "orders", "taskmanager", "--uses", "300")
	s.cli(t, s.admin, "bench", "enroll", "--cluster", "orders", "--role", "taskmanager", "--token-file", tok,
		"--requests", "300", "--concurrency", "8").ok(t)
	out := filepath.Join(t.TempDir(), "audit.jsonl")
	var wg sync.WaitGroup
	rs := make([]result, 8)
	for i := range rs {
		wg.Go(func() { rs[i] = s.cli(t, s.admin, "audit", "archive", "--before", "0s", "--out", out) })
	}
	wg.Wait()
	wrote := 0
	for _, r := range rs {
		switch {
		case r.code == 0 && strings.Contains(r.stderr, "nothing to archive"): // after the winner was done
		case r.code == 0:
			wrote++
		case !strings.Contains(r.stderr, "already exists") && !strings.Contains(r.stderr, "was written meanwhile by another archive to it; this one removed nothing"):
			t.Errorf("a losing archive said %q; want that the file exists", r.stderr)
		}
	}
	raw, err := os.ReadFile(out)
	if wrote != 1 || err != nil {
		t.Fatalf("8 archives to one file: %d wrote it, the file: %v; want exactly one, and its file", wrote, err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	var last archiveLine
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	v := s.cli(t, s.admin, "audit", "verify").ok(t)
	if want := fmt.Sprintf("entries 1 to %d are archived; the last of them has hash %s", last.Seq, last.Hash); !strings.Contains(v.stdout, want) {
		t.Fatalf("the trail says %q; want %q: what left it is what the file holds", v.stdout, want)
	}
	s.cli(t, s.admin, "audit", "verify", "--file", out).ok(t)
}

// TestOnlyARefusalMakesAnArchiveGiveUpItsFile: once the file is in place,
// audit archive deletes it only when the server refused before removing
// anything; with no answer, a fault or an interrupt the outcome is unknown
// and the file may hold all that is left of those entries.
func TestOnlyARefusalMakesAnArchiveGiveUpItsFile(t *testing.T) {
	t.Parallel()
	for code, refused := range map[codes.Code]bool{
		codes.InvalidArgument: true, codes.FailedPrecondition: true, codes.PermissionDenied: true, codes.Unauthenticated: true,
		codes.Unavailable: false, codes.DeadlineExceeded: false, codes.Canceled: false, codes.Internal: false, codes.Aborted: false, codes.Unknown: false,
	} {
		if got := refusedOutright(status.Error(code, "x")); got != refused {
			t.Errorf("a PruneAudit error with code %s: refused outright = %v, want %v", code, got, refused)
		}
	}
	if refusedOutright(context.Canceled) {
		t.Error("an interrupt counts as a refusal")
	}
}

// TestAnArchiveThatMayHaveRemovedEntriesSaysToKeepItsFile: whatever ended
// the removal (an interrupt, no answer, a fault, a refusal after entries
// went), the one line printed tells the operator to keep the file and what
// it holds, after the cause.
func TestAnArchiveThatMayHaveRemovedEntriesSaysToKeepItsFile(t *testing.T) {
	t.Parallel()
	a := &app{target: "pki:7443"}
	res := archiveResult{Path: "audit.jsonl", FirstSeq: 1, LastSeq: 99, Removed: 40}
	for _, cause := range []error{
		status.Error(codes.Canceled, "context canceled"), status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
		status.Error(codes.Unavailable, "connection refused"), status.Error(codes.Internal, "internal error"),
		status.Error(codes.FailedPrecondition, "the audit trail is broken: audit entry 41 was modified"), context.Canceled,
	} {
		err := markOperation(a.keepArchive(cause, res))
		line := oneLine(a.humanize(err))
		if !strings.Contains(line, "keep audit.jsonl: it holds entries 1 to 99, of which the server had confirmed removing 40") || exitCode(err) != 1 {
			t.Errorf("after %v the CLI prints %q (exit %d); want the cause and to keep the file, exit 1", cause, line, exitCode(err))
		}
	}
}
