package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAuditArchiveMovesTheOldestEntriesToAFileThatVerifies: the entries
// before --before go to the file, one checked JSON line each, and leave the
// server's trail, which still verifies and names the archive's last hash;
// audit verify --file recomputes the archive offline, catches an edited
// line, and links two archives in a row; an archive is never replaced, and
// a refused one leaves no file.
func TestAuditArchiveMovesTheOldestEntriesToAFileThatVerifies(t *testing.T) {
	s := startServer(t, "")
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

	// An edited line and a dropped one are named.
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
	if ents, _ := os.ReadDir(dir); len(ents) != 4 {
		t.Fatalf("the archive folder holds %d files after the refusals; want the 4 written on purpose", len(ents))
	}
}
