package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/internal/atomicfile"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
	"github.com/flinkpki/flinkpki/store"
)

// pruneAuditPart is how many entries one PruneAudit call of audit archive
// asks the server to remove: the server's maximum, seconds even on etcd.
const pruneAuditPart = 100_000

// archiveFlags are audit archive's flags.
type archiveFlags struct {
	before string
	out    string
	part   int32
	output outputFormat
}

func (a *app) newAuditArchiveCmd() *cobra.Command {
	var f archiveFlags
	cmd := &cobra.Command{
		Use:   "archive --before TIME|AGE --out FILE",
		Short: "Move the oldest audit entries to a file and remove them from the trail",
		Long: `Write the audit entries older than --before to FILE, one JSON object per line
(the fields of audit list -o json, with the time to the nanosecond, so that
audit verify --file can recompute every hash), then remove them from the
server's trail. The trail only grows otherwise, by a few hundred bytes per
enrollment, and on etcd its quota (2 GiB by default) ends all issuance.

Nothing is removed until FILE is complete and synced, and nothing is removed
that does not verify: the command checks every entry's hash and link as it
writes it, and the server checks them again as it removes them. The trail
keeps the hash of the last entry removed, so audit verify still verifies the
rest, and names that hash: it is the last line of FILE. The removal is
audited as audit.archive. FILE is never replaced; a refused archive leaves
no file, and one interrupted after FILE is in place keeps it (the server may
have removed its entries). The server removes no entry younger than its
--audit-archive-min-age (7 days by default).

--before takes a time (RFC 3339) or an age (90d, 1y, 720h). Entries are
archived from the oldest on, up to the first one at or after that time.
When none is older, it says so on stderr, writes no FILE and exits 0 (a
CronJob that uploads FILE next should test that it exists).`,
		Example: `  flinkpki audit archive --before 180d --out audit-$(date +%F).jsonl
  flinkpki audit archive --before 2026-01-01T00:00:00Z --out audit-2025.jsonl -o json
  flinkpki audit verify --file audit-2025.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runAuditArchive(cmd.Context(), &f) },
	}
	cmd.Flags().StringVar(&f.before, "before", "", "archive the entries older than this time (RFC 3339) or age (90d, 1y) (required)")
	cmd.Flags().StringVar(&f.out, "out", "", "file to write the archive to; never replaced (required)")
	cmd.Flags().Int32Var(&f.part, "part", pruneAuditPart, "entries the server removes per request")
	_ = cmd.Flags().MarkHidden("part")
	addOutputFlag(cmd, &f.output)
	return cmd
}

// runAuditArchive writes the entries before --before to --out, checked,
// and only once the file is in place asks the server to remove them.
func (a *app) runAuditArchive(ctx context.Context, f *archiveFlags) error {
	if err := requireFlag("before", f.before); err != nil {
		return err
	}
	if err := requireFlag("out", f.out); err != nil {
		return err
	}
	if f.part <= 0 {
		return usagef("--part must be positive")
	}
	cut, err := archiveCut(f.before, a.now())
	if err != nil {
		return err
	}
	if err := checkOutFile(f.out, "audit-"+a.now().UTC().Format("2006-01-02")+".jsonl", "choose another --out (an archive is never replaced)"); err != nil {
		return err
	}
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	client := flinkpkiv1.NewAuditServiceClient(conn)

	// The archive: every entry before the cut, checked, to a
	// temporary file; linked into place only when complete.
	var chain archiveChain
	sum := newResultHash("json")
	tmp, n, err := atomicfile.Stage(f.out, 0o600, func(w io.Writer) error {
		bw := bufio.NewWriterSize(sum.tee(w), 256<<10)
		if err := a.archiveEntries(ctx, client, cut, bw, &chain); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return err
	}
	res := archiveResult{Entries: chain.n, FirstSeq: chain.firstSeq, LastSeq: chain.lastSeq, LastHash: chain.lastHash}
	if res.Entries == 0 {
		os.Remove(tmp)
		fmt.Fprintf(a.stderr, "nothing to archive: no audit entry is older than %s\n", cut.Format(time.RFC3339))
		return a.printArchive(f.output, res)
	}
	if err := placeArchive(tmp, f.out); err != nil {
		return err
	}
	res.Path, res.Bytes, res.SHA256 = f.out, n, sum.hex()
	if err := a.pruneArchived(ctx, client, &res, f.part); err != nil {
		return err
	}
	removed := "the trail now starts after entry " + strconv.FormatUint(res.Archived, 10)
	if res.Removed == 0 {
		removed = "another archive had removed them from the trail meanwhile"
	}
	fmt.Fprintf(a.stderr, "archived audit entries %d to %d (%d, before %s) to %s; %s\n",
		res.FirstSeq, res.LastSeq, res.Entries, cut.Format(time.RFC3339), f.out, removed)
	return a.printArchive(f.output, res)
}

// placeArchive links the complete archive, staged at tmp, into place at
// out and syncs its folder, before anything leaves the trail.
func placeArchive(tmp, out string) error {
	// Never over a file made meanwhile (another archive to the same
	// --out): that one is not this command's to remove.
	if err := os.Link(tmp, out); err != nil {
		os.Remove(tmp)
		if _, serr := os.Lstat(out); serr == nil {
			// Another archive to it linked first (and, done,
			// removed what it took for leftovers: this one's file).
			return fmt.Errorf("%s was written meanwhile by another archive to it; this one removed nothing: choose another --out", out)
		}
		return fmt.Errorf("put the archive at %s: %w", out, err)
	}
	os.Remove(tmp)
	if err := atomicfile.SyncDir(filepath.Dir(out)); err != nil {
		os.Remove(out) // this command's own, and nothing is removed yet
		return fmt.Errorf("put the archive at %s: %w", out, err)
	}
	atomicfile.RemoveLeftovers(out) // what killed archives to it left
	return nil
}

// pruneArchived asks the server to remove the entries the archive at
// res.Path holds, part entries per request, and counts what it removed
// in res.
func (a *app) pruneArchived(ctx context.Context, client flinkpkiv1.AuditServiceClient, res *archiveResult, part int32) error {
	// Only now does anything leave the trail. A call that fails has
	// removed nothing (the server answers what it removed before it
	// stopped), so the file goes only when the server refused before
	// removing anything; when the outcome is unknown (no answer, an
	// interrupt) the file stays: it may hold all that is left.
	for {
		resp, err := client.PruneAudit(ctx, &flinkpkiv1.PruneAuditRequest{ThroughSeq: res.LastSeq, ThroughHash: res.LastHash, MaxEntries: part})
		if err != nil {
			if res.Removed == 0 && refusedOutright(err) {
				os.Remove(res.Path)
				return err
			}
			return a.keepArchive(err, *res)
		}
		res.Removed += resp.GetRemoved()
		res.Archived = resp.GetArchivedThroughSeq()
		if resp.GetDone() {
			return nil
		}
		why := ""
		if s := resp.GetStopped(); s != "" {
			why = " (the server stopped: " + s + ")"
		}
		fmt.Fprintf(a.stderr, "removed %d of %d entries from the trail%s...\n", res.Removed, res.Entries, why)
	}
}

// keepArchive is audit archive's error when removal may have begun and
// then failed: the file must be kept. It does not wrap err: the CLI prints
// a wrapped gRPC error as the status's sentence alone, and this one's point
// comes after it.
func (a *app) keepArchive(err error, res archiveResult) error {
	return fmt.Errorf("%s; keep %s: it holds entries %d to %d, of which the server had confirmed removing %d when this request failed, and it may have removed more (audit verify says where the trail starts; archive again with another --out to remove the rest)",
		a.humanize(err), res.Path, res.FirstSeq, res.LastSeq, res.Removed)
}

// refusedOutright reports whether an error is the server's refusal, which
// it makes before it changes anything (a PruneAudit removes nothing), as
// opposed to an outcome the client cannot know (no answer, an interrupt, a
// fault).
func refusedOutright(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.PermissionDenied, codes.Unauthenticated, codes.NotFound, codes.Unimplemented:
		return true
	}
	return false
}

// archiveCut reads --before: an RFC 3339 time, or an age before now. A cut
// in the future would archive entries still being written.
func archiveCut(before string, now time.Time) (time.Time, error) {
	cut, err := time.Parse(time.RFC3339, before)
	if err != nil {
		age, derr := parseDuration(before)
		if derr != nil {
			return time.Time{}, usagef("--before %q is neither a time (RFC 3339, e.g. 2026-01-01T00:00:00Z) nor an age (e.g. 90d, 1y)", before)
		}
		cut = now.Add(-age)
	}
	if cut.After(now) {
		return time.Time{}, usagef("--before %s is in the future: archive only entries already written", cut.UTC().Format(time.RFC3339))
	}
	return cut.UTC(), nil
}

// archiveResult is what audit archive did; its -o json.
type archiveResult struct {
	Path     string `json:"path"`
	Entries  uint64 `json:"entries"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	LastHash string `json:"last_hash"`
	Bytes    int64  `json:"bytes"`
	SHA256   string `json:"sha256"`
	Removed  uint64 `json:"removed"`
	// Archived is the last entry removed from the trail: where it goes on.
	Archived uint64 `json:"archived_through_seq"`
}

func (a *app) printArchive(output outputFormat, res archiveResult) error {
	if output == "json" {
		return writeJSON(a.stdout, res)
	}
	if res.Entries > 0 {
		fmt.Fprintf(a.stdout, "%s\tentries %d to %d\tlast hash %s\n", res.Path, res.FirstSeq, res.LastSeq, res.LastHash)
	}
	return nil
}

// archiveEntries writes the entries before cut to w, one JSON line each,
// checking each one's hash and its link to the one before with chain,
// which then tells what was written.
func (a *app) archiveEntries(ctx context.Context, client flinkpkiv1.AuditServiceClient, cut time.Time, w io.Writer, chain *archiveChain) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	after := uint64(0)
	for {
		resp, err := client.ListAudit(ctx, &flinkpkiv1.ListAuditRequest{AfterSeq: after, Limit: auditPage})
		if err != nil {
			return err
		}
		for _, e := range resp.GetEntries() {
			if !e.GetTime().AsTime().Before(cut) {
				return nil
			}
			line := toArchiveLine(e)
			if err := chain.check(line); err != nil {
				return fmt.Errorf("%w; nothing was archived: run flinkpki audit verify", err)
			}
			if err := enc.Encode(line); err != nil {
				return err
			}
			if chain.n%pruneAuditPart == 0 {
				fmt.Fprintf(a.stderr, "archived %d entries...\n", chain.n)
			}
		}
		next := resp.GetNextAfterSeq()
		if next == 0 {
			return nil
		}
		after = next
	}
}

// archiveLine is one line of an archive: audit list -o json's entry, with
// the time to the nanosecond, as the hash covers it.
type archiveLine auditJSON

func toArchiveLine(e *flinkpkiv1.AuditEntry) archiveLine {
	l := archiveLine(toAuditJSON(e))
	l.Time = e.GetTime().AsTime().UTC().Format(time.RFC3339Nano)
	return l
}

// archiveChain checks archive lines in order: each one's hash over its
// content, and its link to the line before (the first line's link is to
// an entry archived earlier, or "" for entry 1).
type archiveChain struct {
	n        uint64
	lastSeq  uint64
	lastHash string
	firstPrv string // the first line's prev_hash
	firstSeq uint64
}

func (c *archiveChain) check(l archiveLine) error {
	t, err := time.Parse(time.RFC3339Nano, l.Time)
	if err != nil {
		return fmt.Errorf("audit entry %d: time %q is not RFC 3339", l.Seq, l.Time)
	}
	e := store.AuditEntry{Seq: l.Seq, Time: t, Actor: l.Actor, Cluster: l.Cluster, Action: l.Action, Outcome: l.Outcome,
		Reason: l.Reason, Details: l.Details, Prev: l.PrevHash, Hash: l.Hash}
	if len(e.Details) == 0 {
		e.Details = nil
	}
	// The first line links to whatever entry was archived before it.
	prev := l.PrevHash
	switch {
	case c.n > 0 && l.Seq != c.lastSeq+1:
		return fmt.Errorf("audit entry %d follows entry %d: entries are missing", l.Seq, c.lastSeq)
	case c.n > 0:
		prev = c.lastHash
	case l.Seq == 1 && l.PrevHash != "":
		return fmt.Errorf("audit entry 1 links to an entry before it")
	}
	if err := e.Follows(l.Seq, prev); err != nil {
		return err
	}
	if c.n == 0 {
		c.firstSeq, c.firstPrv = l.Seq, l.PrevHash
	}
	c.n++
	c.lastSeq, c.lastHash = l.Seq, l.Hash
	return nil
}

// archiveReport is audit verify --file's account of one archive file.
type archiveReport struct {
	Path      string `json:"path"`
	OK        bool   `json:"ok"`
	Entries   uint64 `json:"entries"`
	FirstSeq  uint64 `json:"first_seq"`
	LastSeq   uint64 `json:"last_seq"`
	FirstPrev string `json:"first_prev_hash"` // the hash of the entry before the first: "" for entry 1
	LastHash  string `json:"last_hash"`
	Message   string `json:"message"`
	follows   bool   // goes on from the file before (verifyArchive's after)
}

// verifyArchive recomputes the chain of one archive file. When after is
// not nil (the file before it, verified), it also says whether the file
// goes on from that one's last entry: it links to it, or holds it (an
// archive run again after an interrupted one overlaps the first).
func verifyArchive(path string, after *archiveReport) (archiveReport, error) {
	rep := archiveReport{Path: path}
	f, err := os.Open(path)
	if err != nil {
		return rep, err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(f, 256<<10))
	dec.DisallowUnknownFields()
	var chain archiveChain
	for {
		var l archiveLine
		if err := dec.Decode(&l); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			rep.Message = fmt.Sprintf("line %d is not an audit entry: %v", chain.n+1, err)
			return rep, nil
		}
		if err := chain.check(l); err != nil {
			rep.Message = err.Error()
			return rep, nil
		}
		if after != nil && ((l.Seq == after.LastSeq && l.Hash == after.LastHash) || (l.Seq == after.LastSeq+1 && l.PrevHash == after.LastHash)) {
			rep.follows = true
		}
	}
	rep.Entries, rep.FirstSeq, rep.LastSeq, rep.FirstPrev, rep.LastHash = chain.n, chain.firstSeq, chain.lastSeq, chain.firstPrv, chain.lastHash
	if chain.n == 0 {
		rep.Message = "no audit entries in the file"
		return rep, nil
	}
	rep.OK = true
	rep.Message = fmt.Sprintf("entries %d to %d intact; the last has hash %s", chain.firstSeq, chain.lastSeq, chain.lastHash)
	return rep, nil
}

// verifyArchives is audit verify --file: each archive's chain, and the
// links between consecutive ones.
func (a *app) verifyArchives(files []string, out outputFormat) error {
	reps := make([]archiveReport, 0, len(files))
	var bad error
	for i, path := range files {
		var prev *archiveReport
		if i > 0 && reps[i-1].OK {
			prev = &reps[i-1]
		}
		rep, err := verifyArchive(path, prev)
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if prev != nil && rep.OK && !rep.follows {
			switch {
			case rep.FirstSeq > prev.LastSeq+1:
				rep.OK, rep.Message = false, fmt.Sprintf("it starts at entry %d, but %s ends at entry %d: entries %d to %d are in neither (give the archives in order, with none missing)",
					rep.FirstSeq, prev.Path, prev.LastSeq, prev.LastSeq+1, rep.FirstSeq-1)
			case rep.LastSeq <= prev.LastSeq:
				rep.OK, rep.Message = false, fmt.Sprintf("it ends at entry %d, before %s does (%d): give the archives in order", rep.LastSeq, prev.Path, prev.LastSeq)
			default:
				rep.OK, rep.Message = false, fmt.Sprintf("it does not go on from %s: its entry %d differs from the one there, or does not link to it", prev.Path, prev.LastSeq)
			}
		}
		if !rep.OK && bad == nil {
			bad = fmt.Errorf("%w: %s: %s", errAuditBroken, path, rep.Message)
		}
		reps = append(reps, rep)
	}
	if out == "json" {
		if err := writeJSON(a.stdout, map[string]any{"ok": bad == nil, "files": reps}); err != nil {
			return err
		}
	} else {
		for _, r := range reps {
			if r.OK {
				fmt.Fprintf(a.stdout, "%s: %s\n", r.Path, r.Message)
			}
		}
	}
	return bad
}
