package main

import (
	"bytes"
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

func (a *app) newAuditListCmd() *cobra.Command {
	var (
		cluster string
		after   uint64
		limit   int32
		out     outputFormat
	)
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cluster != "" {
				if err := checkClusterName(cluster); err != nil {
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
			var (
				entries []*flinkpkiv1.AuditEntry // for the table
				shown   int
				more    uint64 // where the next page starts; 0 at the end
				stream  *auditStream
			)
			if out == "json" {
				stream = &auditStream{w: a.stdout}
			}
			for {
				ask := int32(auditPage)
				if limit > 0 {
					ask = min(ask, limit-int32(shown))
				}
				resp, err := client.ListAudit(cmd.Context(), &flinkpkiv1.ListAuditRequest{Cluster: cluster, AfterSeq: after, Limit: ask})
				if err != nil {
					return err
				}
				page := resp.GetEntries()
				shown += len(page)
				if stream != nil {
					if err := stream.page(page); err != nil {
						return err
					}
				} else {
					entries = append(entries, page...)
				}
				next := resp.GetNextAfterSeq()
				if next == 0 && len(page) == int(ask) {
					next = page[len(page)-1].GetSeq() // an older server says nothing: go on
				}
				if next == 0 {
					break // the end of the trail
				}
				after = next
				if limit > 0 && shown >= int(limit) {
					more = after
					defer fmt.Fprintf(a.stderr, "more entries may follow: --after %d\n", after)
					break
				}
			}
			if stream != nil {
				return stream.end(more)
			}
			return a.printAuditTable(entries)
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "only entries of this cluster")
	cmd.Flags().Var(newIntFlag(&after, 0, 0, api.MaxAfterSeq), "after", "only entries with a sequence number above this")
	cmd.Flags().Var(newIntFlag(&limit, 0, 0, math.MaxInt32), "limit", "at most this many entries (0: all, fetched 1000 at a time)")
	addOutputFlag(cmd, &out)
	return cmd
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

func (a *app) newAuditVerifyCmd() *cobra.Command {
	var (
		out   outputFormat
		part  int32
		files []string
	)
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			if part <= 0 {
				return usagef("--part must be positive")
			}
			if len(files) > 0 {
				return a.verifyArchives(files, out)
			}
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			client := flinkpkiv1.NewAuditServiceClient(conn)
			var (
				resp  *flinkpkiv1.VerifyAuditResponse
				after uint64
				prev  string
				total uint64
			)
			for {
				resp, err = client.VerifyAudit(cmd.Context(), &flinkpkiv1.VerifyAuditRequest{AfterSeq: after, PrevHash: prev, MaxEntries: part})
				if err != nil {
					return err
				}
				total += resp.GetEntries()
				// An older server verifies the whole trail at once and
				// reports no last_seq: that answer is the last.
				if resp.GetDone() || !resp.GetOk() || resp.GetLastSeq() <= after {
					break
				}
				after, prev = resp.GetLastSeq(), resp.GetLastHash()
				fmt.Fprintf(a.stderr, "verified %d entries...\n", total)
			}
			if out == "json" {
				if err := writeJSON(a.stdout, map[string]any{
					"ok": resp.GetOk(), "entries": total, "first_bad_seq": resp.GetFirstBadSeq(), "message": resp.GetMessage(),
					"archived_through_seq": resp.GetArchivedThroughSeq(), "archived_hash": resp.GetArchivedHash(),
				}); err != nil {
					return err
				}
			} else if resp.GetOk() {
				fmt.Fprintf(a.stdout, "audit trail intact: %d entries verified\n", total)
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
		},
	}
	cmd.Flags().Int32Var(&part, "part", auditVerifyPart, "entries the server verifies per request")
	_ = cmd.Flags().MarkHidden("part")
	cmd.Flags().StringArrayVar(&files, "file", nil, "verify this archive (from audit archive) offline instead; repeat for several, oldest first")
	addOutputFlag(cmd, &out)
	return cmd
}
