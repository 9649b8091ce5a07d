package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/ca"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

func (a *app) newHolderCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "holder",
		Short: "List and release credential holders (administrator)",
		Long: `A holder is the process that holds credentials, usually a pod. The CA
lifecycle safety rules look at live holders: a holder is live until its leaf
expires, a newer issuance for the same name supersedes it, or it is released.`,
	}
	a.addConnFlags(cmd)
	cmd.AddCommand(a.newHolderListCmd(), a.newHolderReleaseCmd())
	return cmd
}

// holderJSON is the stable JSON shape of a holder.
type holderJSON struct {
	Name      string   `json:"name"`
	Role      string   `json:"role"`
	Purpose   string   `json:"purpose"`
	Serial    string   `json:"serial"`
	SignedBy  string   `json:"signed_by"`
	Trusts    []string `json:"trusts"`
	IssueTime string   `json:"issue_time"`
	NotAfter  string   `json:"not_after"`
	Actor     string   `json:"actor"`
}

// holderPage is how many holders one ListHolders call of holder list asks
// for: the server's maximum page.
const holderPage = 1000

// holderListFlags are holder list's flags.
type holderListFlags struct {
	cluster       string
	all, blocking bool
	out           outputFormat
}

func (a *app) newHolderListCmd() *cobra.Command {
	var f holderListFlags
	cmd := &cobra.Command{
		Use:   "list --cluster NAME",
		Short: "List the live holders of a cluster",
		Long: `List the holders of a cluster whose leaf has not expired: each pod (or baked
image) with its role, the lineage (internal or rest), the CA that signed its
leaf, the CAs its truststore holds, when it was issued and expires, and who
obtained it (k8s:NAMESPACE/SERVICE-ACCOUNT/pod=POD for a pod). These are the
holders a rotation step waits for: ca status names the ones that block, and
holder release declares one gone. --all adds those whose leaf has expired,
kept for serve's --holder-retention.

--blocking lists only the holders that block each lineage's next rotation
step, all of them, where ca status and a refused step name the first few: a
truststore without the prepared CA blocks activate, a leaf of the retiring CA
blocks retire (and, for the clock-skew grace, one that has just expired).
Restart those pods (bake those images again), or release the ones that are
gone.`,
		Example: `  flinkpki holder list --cluster orders
  flinkpki holder list --cluster orders --all -o json
  flinkpki holder list --cluster orders --blocking -o json | jq -r '.holders[].name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runHolderList(cmd.Context(), &f) },
	}
	cmd.Flags().StringVar(&f.cluster, "cluster", "", "cluster name (required)")
	cmd.Flags().BoolVar(&f.all, "all", false, "include holders whose leaf has expired (kept for serve's --holder-retention, 30 days by default)")
	cmd.Flags().BoolVar(&f.blocking, "blocking", false, "only the holders that block each lineage's next rotation step (activate or retire), all of them")
	addOutputFlag(cmd, &f.out)
	return cmd
}

// runHolderList lists the cluster's holders; with --blocking it asks for
// the cluster's status first, and keeps the holders its next steps wait
// for.
func (a *app) runHolderList(ctx context.Context, f *holderListFlags) error {
	if err := clusterFlag(f.cluster); err != nil {
		return err
	}
	if f.all && f.blocking {
		return usagef("--all and --blocking go apart: --blocking lists what blocks a rotation step, and an expired leaf blocks none (beyond the clock-skew grace, which --blocking includes)")
	}
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	client := flinkpkiv1.NewAuthorityServiceClient(conn)
	var steps []blockingStep
	if f.blocking {
		st, err := client.GetStatus(ctx, &flinkpkiv1.GetStatusRequest{Cluster: f.cluster})
		if err != nil {
			return err
		}
		steps = blockingSteps(st)
		if len(steps) == 0 {
			return a.printHolders(nil, f.out) // no step waits on holders
		}
	}
	// Page by page: a cluster whose pods restart often has tens of
	// thousands of holders, more than one gRPC message carries.
	holders, err := allPages(func(page string) ([]*flinkpkiv1.Holder, string, error) {
		resp, err := client.ListHolders(ctx, &flinkpkiv1.ListHoldersRequest{
			Cluster: f.cluster, IncludeExpired: f.all || lapsedAny(steps), PageSize: holderPage, PageToken: page})
		return resp.GetHolders(), resp.GetNextPageToken(), err
	})
	if err != nil {
		return err
	}
	if f.blocking {
		holders = blockingHolders(holders, steps, a.now())
	}
	return a.printHolders(holders, f.out)
}

// blockingStep is a lineage's next step that holders can block, as
// ca status reports it.
type blockingStep struct {
	purpose, kind, caID string
	lapsed              map[string]bool // blockers whose leaf has expired, within the grace
}

func blockingSteps(st *flinkpkiv1.CAStatus) []blockingStep {
	var steps []blockingStep
	for _, l := range st.GetLineages() {
		s := l.GetNextStep()
		if (s.GetKind() != "activate" && s.GetKind() != "retire") || s.GetCaId() == "" || s.GetBlockersTotal() == 0 && len(s.GetBlockers()) == 0 {
			continue
		}
		b := blockingStep{purpose: l.GetPurpose(), kind: s.GetKind(), caID: s.GetCaId(), lapsed: map[string]bool{}}
		for _, n := range s.GetLapsedBlockers() {
			b.lapsed[n] = true
		}
		steps = append(steps, b)
	}
	return steps
}

func lapsedAny(steps []blockingStep) bool {
	return slices.ContainsFunc(steps, func(s blockingStep) bool { return len(s.lapsed) > 0 })
}

// blockingHolders keeps the holders a step waits for, by the rules the
// server applies (ca.ActivateBlockers, ca.RetireBlockers, on the step's
// lineage), and those the server named lapsed: blockers for the clock-skew
// grace, whose leaf has just expired.
func blockingHolders(holders []*flinkpkiv1.Holder, steps []blockingStep, now time.Time) []*flinkpkiv1.Holder {
	blocking := map[string]bool{} // purpose/name
	for _, s := range steps {
		var views []ca.HolderView
		for _, h := range holders {
			if h.GetPurpose() == s.purpose {
				views = append(views, ca.HolderView{Name: h.GetName(), SignedBy: h.GetSignedBy(), Trusts: h.GetTrusts(), NotAfter: h.GetNotAfter().AsTime()})
			}
		}
		var names []string
		if s.kind == "activate" {
			names = ca.ActivateBlockers(ca.Lineage{{ID: s.caID, State: ca.StatePrepared}}, views, now)
		} else {
			names = ca.RetireBlockers(ca.Lineage{{ID: s.caID, State: ca.StateRetiring}}, views, now)
		}
		for _, n := range names {
			blocking[s.purpose+"/"+n] = true
		}
		for n := range s.lapsed {
			blocking[s.purpose+"/"+n] = true
		}
	}
	var out []*flinkpkiv1.Holder
	for _, h := range holders {
		if blocking[h.GetPurpose()+"/"+h.GetName()] {
			out = append(out, h)
		}
	}
	return out
}

func (a *app) printHolders(holders []*flinkpkiv1.Holder, out outputFormat) error {
	if out == "json" {
		list := struct {
			Holders []holderJSON `json:"holders"`
		}{Holders: []holderJSON{}}
		for _, h := range holders {
			trusts := append([]string{}, h.GetTrusts()...)
			list.Holders = append(list.Holders, holderJSON{
				Name: h.GetName(), Role: h.GetRole(), Purpose: h.GetPurpose(), Serial: h.GetSerial(),
				SignedBy: h.GetSignedBy(), Trusts: trusts, IssueTime: rfc3339(h.GetIssueTime()), NotAfter: rfc3339(h.GetNotAfter()),
				Actor: h.GetActor(),
			})
		}
		return writeJSON(a.stdout, list)
	}
	w := newTable(a.stdout)
	w.row("HOLDER", "ROLE", "PURPOSE", "SIGNED BY", "TRUSTS", "ISSUED", "NOT AFTER", "OBTAINED BY")
	for _, h := range holders {
		w.row(h.GetName(), h.GetRole(), h.GetPurpose(), h.GetSignedBy(),
			orDash(strings.Join(h.GetTrusts(), ",")), orDash(rfc3339(h.GetIssueTime())), orDash(rfc3339(h.GetNotAfter())), orDash(h.GetActor()))
	}
	return w.Flush()
}

func (a *app) newHolderReleaseCmd() *cobra.Command {
	var (
		cluster, purpose string
		out              outputFormat
	)
	cmd := &cobra.Command{
		Use:   "release --cluster NAME HOLDER",
		Short: "Declare a holder gone",
		Long: `Declare a holder gone, so it no longer blocks CA activation or retirement.
Use it for pods that were deleted before their leaf expired. Without --purpose
every purpose (internal and rest) of the holder is released. A name with no
record is refused as not found (exit 1): flinkpki holder list shows the names.
A name no holder can have (a '/', say) is a usage error (exit 2).`,
		Example: `  flinkpki holder release --cluster orders orders-taskmanager-1-3
  flinkpki holder release --cluster orders orders-taskmanager-1-3 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := clusterFlag(cluster); err != nil {
				return err
			}
			// A name the server would not issue for has no record.
			if err := holderFlag("HOLDER", args[0]); err != nil {
				return err
			}
			p, err := purposeFlag(purpose, true)
			if err != nil {
				return err
			}
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			resp, err := flinkpkiv1.NewAuthorityServiceClient(conn).ReleaseHolder(cmd.Context(), &flinkpkiv1.ReleaseHolderRequest{Cluster: cluster, Holder: args[0], Purpose: p})
			if err != nil {
				return err
			}
			// A holder with no record is refused as not found (exit 1),
			// audited like any refusal: a misspelt name shows.
			fmt.Fprintf(a.stderr, "released %d credential record(s) of holder %q\n", resp.GetReleased(), args[0])
			if out == "json" {
				// Purpose is "all" when every purpose was released.
				if p == "" {
					p = "all"
				}
				return writeJSON(a.stdout, struct {
					Cluster  string `json:"cluster"`
					Holder   string `json:"holder"`
					Purpose  string `json:"purpose"`
					Released int32  `json:"released"`
				}{cluster, args[0], p, resp.GetReleased()})
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "cluster name (required)")
	cmd.Flags().StringVar(&purpose, "purpose", "", "release only this purpose: internal or rest")
	addOutputFlag(cmd, &out)
	return cmd
}
