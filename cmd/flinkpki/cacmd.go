package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/ca"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

func (a *app) newCACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Show and drive a cluster's CA lifecycle (administrator)",
		Long: `Each cluster has a lineage of CAs per purpose (internal, rest), each prepared,
active or retiring. A rotation is prepare, then activate, then retire:

  prepare   creates the next CA; every truststore issued from now on trusts it
  activate  the prepared CA starts signing; refused while a live holder's
            truststore lacks it
  retire    drops the retiring CA from trust; refused while a live holder's
            leaf was signed by it

--force overrides a refusal and is audited. With auto-rotate on, the server
runs these steps itself; ca status shows the next step and what blocks it.`,
	}
	a.addConnFlags(cmd)
	cmd.AddCommand(
		a.newCAStatusCmd(),
		a.newCAStepCmd("prepare", "Create the next CA, trusted from now on but not yet signing", `Create the next CA of the lineage (--purpose, internal by default), in state
prepared. Every truststore issued from now on trusts it as well, while the
active CA still signs every leaf. Refused while the lineage already has a
prepared CA, or a retiring one (retire it first).

Next: restart or re-init every process, so each holds a truststore with the
new CA (ca status lists those that do not), then ca activate.`, false),
		a.newCAStepCmd("activate", "Make the prepared CA sign; the active one becomes retiring", `Make the prepared CA sign every leaf from now on; the active CA becomes
retiring and stays trusted. Refused, naming them, while any live holder's
truststore lacks the prepared CA: its process would reject every peer with a
new leaf. --force signs anyway (audited).

Next: restart or re-init every process that holds a leaf of the retiring
CA (ca status lists them), then ca retire.`, true),
		a.newCAStepCmd("retire", "Drop the retiring CA from trust", `Drop the retiring CA: truststores issued from now on no longer trust it, and
it no longer appears in ca status (its history stays in the audit trail).
Refused, naming them, while any live holder's leaf was signed by it: every
peer that re-inits afterwards would reject that holder. --force drops it
anyway (audited).`, true),
	)
	return cmd
}

func (a *app) newCAStatusCmd() *cobra.Command {
	var (
		cluster, purpose string
		out              outputFormat
	)
	cmd := &cobra.Command{
		Use:   "status --cluster NAME",
		Short: "Show every CA of a cluster, the next rotation step and its blockers",
		Long: `Show every CA of the cluster's two lineages (internal and rest) with its state
(prepared, active, retiring), SHA-256 fingerprint and expiry; the number of
live holders and the earliest expiry of their leaves; and per lineage the
next rotation step and the holders that block it (a truststore without the
prepared CA blocks activate, a leaf of the retiring CA blocks retire).`,
		Example: `  flinkpki ca status --cluster orders
  flinkpki ca status --cluster orders --purpose rest -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := clusterFlag(cluster); err != nil {
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
			st, err := flinkpkiv1.NewAuthorityServiceClient(conn).GetStatus(cmd.Context(), &flinkpkiv1.GetStatusRequest{Cluster: cluster})
			if err != nil {
				return err
			}
			if p != "" {
				st.Lineages = slices.DeleteFunc(st.Lineages, func(l *flinkpkiv1.LineageStatus) bool { return l.GetPurpose() != p })
			}
			return a.printCAStatus(st, out)
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "cluster name (required)")
	cmd.Flags().StringVar(&purpose, "purpose", "", "show one CA lineage, internal or rest, as ca prepare, activate and retire take it (default: both)")
	addOutputFlag(cmd, &out)
	return cmd
}

func (a *app) newCAStepCmd(step, short, long string, forcible bool) *cobra.Command {
	var (
		cluster, purpose string
		force            bool
		out              outputFormat
	)
	cmd := &cobra.Command{
		Use:   step + " --cluster NAME",
		Short: short,
		Long:  long,
		Example: fmt.Sprintf(`  flinkpki ca %s --cluster orders
  flinkpki ca %s --cluster orders --purpose rest`, step, step),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := clusterFlag(cluster); err != nil {
				return err
			}
			p, err := purposeFlag(purpose, false)
			if err != nil {
				return err
			}
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			client := flinkpkiv1.NewAuthorityServiceClient(conn)
			var st *flinkpkiv1.CAStatus
			switch step {
			case "prepare":
				st, err = client.Prepare(cmd.Context(), &flinkpkiv1.PrepareRequest{Cluster: cluster, Purpose: p})
			case "activate":
				st, err = client.Activate(cmd.Context(), &flinkpkiv1.ActivateRequest{Cluster: cluster, Purpose: p, Force: force})
			default:
				st, err = client.Retire(cmd.Context(), &flinkpkiv1.RetireRequest{Cluster: cluster, Purpose: p, Force: force})
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "%s: done for cluster %q (%s)\n", step, cluster, p)
			return a.printCAStatus(st, out)
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "cluster name (required)")
	cmd.Flags().StringVar(&purpose, "purpose", "internal", "CA lineage: internal or rest")
	if forcible {
		cmd.Flags().BoolVar(&force, "force", false, "override the safety refusal (audited): live holders may break")
	}
	addOutputFlag(cmd, &out)
	return cmd
}

// caStatusJSON is the stable JSON shape of a cluster's CA status.
type caStatusJSON struct {
	Cluster                string        `json:"cluster"`
	AutoRotate             bool          `json:"auto_rotate"`
	LiveHolders            int32         `json:"live_holders"`
	EarliestLiveLeafExpiry string        `json:"earliest_live_leaf_expiry"`
	Lineages               []lineageJSON `json:"lineages"`
}

type lineageJSON struct {
	Purpose  string   `json:"purpose"`
	CAs      []caJSON `json:"cas"`
	NextStep stepJSON `json:"next_step"`
	Stranded []string `json:"stranded"` // the first 100, sorted
	// StrandedTotal counts them all.
	StrandedTotal int32 `json:"stranded_total"`
}

type stepJSON struct {
	Kind     string   `json:"kind"`
	CAID     string   `json:"ca_id"`
	Time     string   `json:"time"`
	Blockers []string `json:"blockers"` // the first 100, sorted
	// BlockersTotal counts them all.
	BlockersTotal int32 `json:"blockers_total"`
	// LapsedBlockers are those of Blockers whose leaf has expired: they
	// block only for the clock-skew grace, until LapsedUntil ("" when none).
	LapsedBlockers []string `json:"lapsed_blockers"`
	LapsedUntil    string   `json:"lapsed_until"`
	// Automatic tells whether the server takes the step by itself at
	// Time (auto-rotate on); false means an administrator runs it.
	Automatic bool `json:"automatic"`
}

func (a *app) printCAStatus(st *flinkpkiv1.CAStatus, out outputFormat) error {
	if out == "json" {
		j := caStatusJSON{
			Cluster: st.GetCluster(), AutoRotate: st.GetAutoRotate(), LiveHolders: st.GetLiveHolders(),
			EarliestLiveLeafExpiry: rfc3339(st.GetEarliestLiveLeafExpiry()), Lineages: []lineageJSON{},
		}
		for _, l := range st.GetLineages() {
			lj := lineageJSON{Purpose: l.GetPurpose(), CAs: []caJSON{}, NextStep: stepJSON{
				Kind: l.GetNextStep().GetKind(), CAID: l.GetNextStep().GetCaId(), Time: rfc3339(l.GetNextStep().GetTime()),
				Blockers: append([]string{}, l.GetNextStep().GetBlockers()...), BlockersTotal: l.GetNextStep().GetBlockersTotal(),
				LapsedBlockers: append([]string{}, l.GetNextStep().GetLapsedBlockers()...), LapsedUntil: rfc3339(l.GetNextStep().GetLapsedUntil()),
				Automatic: st.GetAutoRotate() && isStep(l.GetNextStep()),
			}, Stranded: append([]string{}, l.GetStranded()...), StrandedTotal: l.GetStrandedTotal()}
			for _, ca := range l.GetCas() {
				lj.CAs = append(lj.CAs, toCAJSON(ca))
			}
			j.Lineages = append(j.Lineages, lj)
		}
		return writeJSON(a.stdout, j)
	}
	fmt.Fprintf(a.stdout, "Cluster %s: %d live holder(s), earliest leaf expiry %s, auto-rotate %t\n",
		st.GetCluster(), st.GetLiveHolders(), orDash(rfc3339(st.GetEarliestLiveLeafExpiry())), st.GetAutoRotate())
	for _, l := range st.GetLineages() {
		fmt.Fprintf(a.stdout, "\n%s CAs:\n", l.GetPurpose())
		w := newTable(a.stdout)
		fmt.Fprintln(w, "  ID\tSTATE\tNOT AFTER\tSIGNED\tTRUSTING\tSHA-256 FINGERPRINT")
		for _, ca := range l.GetCas() {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%d\t%d\t%s\n", ca.GetId(), ca.GetState(), orDash(rfc3339(ca.GetNotAfter())),
				ca.GetLiveHoldersSigned(), ca.GetLiveHoldersTrusting(), ca.GetSha256Fingerprint())
		}
		if err := w.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "  next step: %s\n", describeStep(l.GetNextStep(), st.GetAutoRotate(), st.GetCluster(), l.GetPurpose()))
		if c := expiredActive(l, a.now()); c != nil {
			fmt.Fprintf(a.stdout, "  the active CA %s expired at %s: no %s credentials can be issued until the next CA is active\n",
				c.GetId(), rfc3339(c.GetNotAfter()), l.GetPurpose())
		}
		if s := l.GetStranded(); len(s) > 0 {
			n := max(int(l.GetStrandedTotal()), len(s))
			fmt.Fprintf(a.stdout, "  cut off after a forced step: %d live holder(s) whose leaf or truststore no longer matches the lineage: %s; restart them (a new leaf)\n",
				n, cellText(ca.NameListOf(s, n)))
		}
	}
	return nil
}

// expiredActive is the lineage's active CA when it has expired by now,
// else nil: a rotation that started too late (ca status says so, as the
// CA expiry alert does).
func expiredActive(l *flinkpkiv1.LineageStatus, now time.Time) *flinkpkiv1.CertificateAuthority {
	for _, c := range l.GetCas() {
		if c.GetState() == string(ca.StateActive) && c.GetNotAfter() != nil && now.After(c.GetNotAfter().AsTime()) {
			return c
		}
	}
	return nil
}

// isStep tells a rotation step from "none".
func isStep(s *flinkpkiv1.RotationStep) bool {
	return s.GetKind() != "" && s.GetKind() != "none"
}

// describeStep says what comes next in a lineage and when. With automatic
// rotation on, the server takes the step at that time; with it off, the
// time is when the step is due, and the command that takes it is named.
func describeStep(s *flinkpkiv1.RotationStep, autoRotate bool, cluster, purpose string) string {
	if !isStep(s) {
		return "none"
	}
	d := s.GetKind()
	if s.GetCaId() != "" {
		d += " " + s.GetCaId()
	}
	when := " at "
	if !autoRotate {
		when = " due "
	}
	if t := rfc3339(s.GetTime()); t != "" {
		d += when + t
	}
	if !autoRotate {
		cmd := fmt.Sprintf("flinkpki ca %s --cluster %s", s.GetKind(), cluster)
		if purpose != "" && purpose != "internal" {
			cmd += " --purpose " + purpose
		}
		d += " (automatic rotation is off: run " + cmd + ")"
	}
	if b := s.GetBlockers(); len(b) > 0 {
		n := max(int(s.GetBlockersTotal()), len(b))
		d += fmt.Sprintf("; blocked by %d holder(s): %s", n, ca.NameListOf(b, n))
		if s.GetLapsedUntil() != nil {
			d += ca.LapsedNote(s.GetLapsedBlockers(), s.GetLapsedUntil().AsTime())
		}
		if n > ca.MaxNamedHolders {
			d += "; all of them: " + blockingCommand(cluster)
		}
	}
	return d
}

// blockingCommand lists every holder that blocks a cluster's next steps.
func blockingCommand(cluster string) string {
	return "flinkpki holder list --cluster " + cluster + " --blocking"
}
