package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/api"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// errAuditBroken means audit verify found the hash chain broken.
var errAuditBroken = errors.New("the audit trail is broken")

func (a *app) newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read and verify the append-only audit trail (administrator)",
		Long: `Every issuance, refusal and CA lifecycle step is recorded in a hash-chained,
append-only audit trail. list reads it; verify recomputes the chain; archive
moves the oldest entries to a file, which verify --file checks offline.`,
	}
	a.addConnFlags(cmd)
	cmd.AddCommand(a.newAuditListCmd(), a.newAuditVerifyCmd(), a.newAuditArchiveCmd())
	return cmd
}

// auditJSON is the stable JSON shape of an audit entry.
type auditJSON struct {
	Seq      uint64            `json:"seq"`
	Time     string            `json:"time"`
	Actor    string            `json:"actor"`
	Cluster  string            `json:"cluster"`
	Action   string            `json:"action"`
	Outcome  string            `json:"outcome"`
	Reason   string            `json:"reason"`
	Details  map[string]string `json:"details"`
	PrevHash string            `json:"prev_hash"`
	Hash     string            `json:"hash"`
}

// auditPage is how many entries one ListAudit call of audit list asks for:
// the server's maximum.
const auditPage = 1000

// auditListFlags are audit list's flags.
type auditListFlags struct {
	cluster string
	after   uint64
	limit   int32
	out     outputFormat
}

func (a *app) newAuditListCmd() *cobra.Command {
	var f auditListFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit entries",
		Long: `List audit entries, oldest first, fetched 1000 at a time. With --limit the
list stops there; when more entries may follow, stderr says where to go on
(--after N), and -o json says it in "next_after" (0 when the trail ends):

  {"entries": [...], "next_after": 1250}

A script pages through the trail with --after set to each answer's next_after
until it is 0. -o json writes each page as it arrives, so a whole trail of
millions can go to a file (a failure midway exits 1 and leaves the JSON
unterminated); the table waits for the last page to align its columns.`,
		Example: `  flinkpki audit list --cluster orders
  flinkpki audit list --after 1200 --limit 50 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runAuditList(cmd.Context(), &f) },
	}
	cmd.Flags().StringVar(&f.cluster, "cluster", "", "only entries of this cluster")
	cmd.Flags().Var(newIntFlag(&f.after, 0, 0, api.MaxAfterSeq), "after", "only entries with a sequence number above this")
	cmd.Flags().Var(newIntFlag(&f.limit, 0, 0, math.MaxInt32), "limit", "at most this many entries (0: all, fetched 1000 at a time)")
	addOutputFlag(cmd, &f.out)
	return cmd
}

// runAuditList pages through the trail from --after (listAudit) and
// prints it: -o json as each page arrives, the table at the end.
func (a *app) runAuditList(ctx context.Context, f *auditListFlags) error {
	if f.cluster != "" {
		if err := checkClusterName(f.cluster); err != nil {
			return err
		}
	}
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	// Page by page (the server answers at most auditPage entries
	// at a time): the trail of a busy server holds millions, so
	// -o json writes each page as it comes; a table, which aligns
	// its columns over all rows, is printed at the end.
	client := flinkpkiv1.NewAuditServiceClient(conn)
	var stream *auditStream
	if f.out == "json" {
		stream = &auditStream{w: a.stdout}
	}
	entries, more, err := listAudit(ctx, client, f, stream)
	if err != nil {
		return err
	}
	if more != 0 {
		// Said last, after the list.
		defer fmt.Fprintf(a.stderr, "more entries may follow: --after %d\n", more)
	}
	if stream != nil {
		return stream.end(more)
	}
	return a.printAuditTable(entries)
}

// listAudit fetches the trail page by page from f.after on, into stream
// when there is one and into entries otherwise, until it ends or --limit
// entries were fetched. more is where the next page starts when --limit
// stopped it, 0 when the trail ended.
func listAudit(ctx context.Context, client flinkpkiv1.AuditServiceClient, f *auditListFlags, stream *auditStream) (entries []*flinkpkiv1.AuditEntry, more uint64, err error) {
	shown, after := 0, f.after
	for {
		ask := int32(auditPage)
		if f.limit > 0 {
			ask = min(ask, f.limit-int32(shown))
		}
		resp, err := client.ListAudit(ctx, &flinkpkiv1.ListAuditRequest{Cluster: f.cluster, AfterSeq: after, Limit: ask})
		if err != nil {
			return nil, 0, err
		}
		page := resp.GetEntries()
		shown += len(page)
		if stream != nil {
			if err := stream.page(page); err != nil {
				return nil, 0, err
			}
		} else {
			entries = append(entries, page...)
		}
		next := resp.GetNextAfterSeq()
		if next == 0 && len(page) == int(ask) {
			next = page[len(page)-1].GetSeq() // an older server says nothing: go on
		}
		if next == 0 {
			return entries, 0, nil // the end of the trail
		}
		after = next
		if f.limit > 0 && shown >= int(f.limit) {
			return entries, after, nil
		}
	}
}

// auditList is the JSON shape of audit list -o json: what auditStream
// writes, page by page.
type auditList struct {
	Entries   []auditJSON `json:"entries"`
	NextAfter uint64      `json:"next_after"`
}

func toAuditJSON(e *flinkpkiv1.AuditEntry) auditJSON {
	details := e.GetDetails()
	if details == nil {
		details = map[string]string{}
	}
	return auditJSON{
		Seq: e.GetSeq(), Time: rfc3339(e.GetTime()), Actor: e.GetActor(), Cluster: e.GetCluster(),
		Action: e.GetAction(), Outcome: e.GetOutcome(), Reason: e.GetReason(), Details: details,
		PrevHash: e.GetPrevHash(), Hash: e.GetHash(),
	}
}

// auditStream writes an auditList as its pages arrive, byte for byte as
// writeJSON would write the whole list, so a trail of millions never sits
// in memory.
type auditStream struct {
	w       io.Writer
	started bool // the list's head is written
	n       int  // entries written
}

const auditStreamHead = "{\n  \"entries\": ["

func (s *auditStream) page(entries []*flinkpkiv1.AuditEntry) error {
	var b bytes.Buffer
	if !s.started {
		b.WriteString(auditStreamHead)
		s.started = true
	}
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("    ", "  ")
	for _, e := range entries {
		if s.n > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n    ")
		if err := enc.Encode(toAuditJSON(e)); err != nil {
			return err
		}
		b.Truncate(b.Len() - 1) // Encode's newline
		s.n++
	}
	_, err := s.w.Write(b.Bytes())
	return err
}

// end closes the list; more is where the next page starts (--after), 0
// when the trail ends.
func (s *auditStream) end(more uint64) error {
	head, tail := "", "\n  ]"
	if !s.started {
		head = auditStreamHead
	}
	if s.n == 0 {
		tail = "]"
	}
	_, err := fmt.Fprintf(s.w, "%s%s,\n  \"next_after\": %d\n}\n", head, tail, more)
	return err
}

// printAuditTable prints entries of the trail for people.
func (a *app) printAuditTable(entries []*flinkpkiv1.AuditEntry) error {
	w := newTable(a.stdout)
	// A refusal's reason is a sentence: last, so it pads no other column.
	w.row("SEQ", "TIME", "ACTOR", "CLUSTER", "ACTION", "OUTCOME", "DETAILS", "REASON")
	for _, e := range entries {
		w.row(e.GetSeq(), rfc3339(e.GetTime()), e.GetActor(), orDash(e.GetCluster()),
			e.GetAction(), e.GetOutcome(), orDash(details(e.GetDetails())), orDash(e.GetReason()))
	}
	return w.Flush()
}

func details(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, " ")
}

// auditVerifyPart is how many entries one VerifyAudit call of audit verify
// recomputes: a few seconds of the server's time, far inside --rpc-timeout.
const auditVerifyPart = 200_000

// auditVerifyFlags are audit verify's flags.
type auditVerifyFlags struct {
	out   outputFormat
	part  int32
	files []string
}

func (a *app) newAuditVerifyCmd() *cobra.Command {
	var f auditVerifyFlags
	cmd := &cobra.Command{
		Use:   "verify [--file ARCHIVE]...",
		Short: "Recompute the audit hash chain; exit 1 when it is broken",
		Long: `Recompute the audit trail's hash chain on the server. Exit 0 when every entry
links to the one before; exit 1, naming the first bad entry, when not.
A long trail is verified 200,000 entries at a time, with progress on stderr.
After audit archive the trail starts later: verify names the last archived
entry and its hash, which is the last line of that archive.

With --file, verify archive files written by audit archive instead, offline
(no server): each file's entries, their hashes and links. Several files must
be given in order, each going on from the one before: linking to its last
entry, or holding it unchanged (an archive run again after an interrupted
one repeats entries of the first).`,
		Example: `  flinkpki audit verify
  flinkpki audit verify --file audit-2025.jsonl --file audit-2026.jsonl -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runAuditVerify(cmd.Context(), &f) },
	}
	cmd.Flags().Int32Var(&f.part, "part", auditVerifyPart, "entries the server verifies per request")
	_ = cmd.Flags().MarkHidden("part")
	cmd.Flags().StringArrayVar(&f.files, "file", nil, "verify this archive (from audit archive) offline instead; repeat for several, oldest first")
	addOutputFlag(cmd, &f.out)
	return cmd
}

// runAuditVerify verifies the archive files of --file offline, or has the
// server recompute its trail's chain (verifyAudit) and reports the verdict:
// a broken chain is errAuditBroken, exit 1.
func (a *app) runAuditVerify(ctx context.Context, f *auditVerifyFlags) error {
	if f.part <= 0 {
		return usagef("--part must be positive")
	}
	if len(f.files) > 0 {
		return a.verifyArchives(f.files, f.out)
	}
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, total, err := a.verifyAudit(ctx, flinkpkiv1.NewAuditServiceClient(conn), f.part)
	if err != nil {
		return err
	}
	if f.out == "json" {
		if err := writeJSON(a.stdout, map[string]any{
			"ok": resp.GetOk(), "entries": total, "first_bad_seq": resp.GetFirstBadSeq(), "message": resp.GetMessage(),
			"archived_through_seq": resp.GetArchivedThroughSeq(), "archived_hash": resp.GetArchivedHash(),
		}); err != nil {
			return err
		}
	} else if resp.GetOk() {
		fmt.Fprintf(a.stdout, "audit trail intact: %s verified\n", plural(int(total), "entry", "entries"))
		if n := resp.GetArchivedThroughSeq(); n > 0 {
			fmt.Fprintf(a.stdout, "entries 1 to %d are archived; the last of them has hash %s\n", n, resp.GetArchivedHash())
		}
	}
	if !resp.GetOk() {
		msg := resp.GetMessage()
		if msg == "" {
			msg = "hash mismatch"
		}
		return fmt.Errorf("%w at entry %d: %s", errAuditBroken, resp.GetFirstBadSeq(), msg)
	}
	return nil
}

// verifyAudit has the server verify the trail part entries per request,
// each going on from where the last stopped, with progress on stderr. It
// returns the last answer, which holds the verdict, and the entries
// verified in all.
func (a *app) verifyAudit(ctx context.Context, client flinkpkiv1.AuditServiceClient, part int32) (*flinkpkiv1.VerifyAuditResponse, uint64, error) {
	var (
		after uint64
		prev  string
		total uint64
	)
	for {
		resp, err := client.VerifyAudit(ctx, &flinkpkiv1.VerifyAuditRequest{AfterSeq: after, PrevHash: prev, MaxEntries: part})
		if err != nil {
			return nil, 0, err
		}
		total += resp.GetEntries()
		// An older server verifies the whole trail at once and
		// reports no last_seq: that answer is the last.
		if resp.GetDone() || !resp.GetOk() || resp.GetLastSeq() <= after {
			return resp, total, nil
		}
		after, prev = resp.GetLastSeq(), resp.GetLastHash()
		fmt.Fprintf(a.stderr, "verified %d entries...\n", total)
	}
}
