package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flinkpki/flinkpki/authority"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

func (a *app) newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Create, list, inspect, update and delete Flink clusters (administrator)",
		Long: `A cluster is one Flink deployment with its own CAs: an internal CA used for
nothing but that cluster's mutual TLS, and a separate REST CA. Every command
here needs an administrator token.`,
	}
	a.addConnFlags(cmd)
	cmd.AddCommand(a.newClusterCreateCmd(), a.newClusterListCmd(), a.newClusterGetCmd(), a.newClusterUpdateCmd(), a.newClusterDeleteCmd())
	return cmd
}

// clusterCreateFlags are cluster create's flags.
type clusterCreateFlags struct {
	keyType               string
	caValidity, leafValid durationFlag
	namespaces, accounts  []string
	bindings              []string
	noAutoRotate          bool
	out                   outputFormat
}

func (a *app) newClusterCreateCmd() *cobra.Command {
	var f clusterCreateFlags
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a cluster and its own root CAs",
		Long: `Create a cluster. flinkpki makes the cluster's own root CA for internal mTLS
and a second one for REST material; neither signs anything for another cluster.

NAME: lower-case letters, digits and '-', 1 to 63 characters, starting and
ending with a letter or digit. Durations take Go syntax plus d (days) and y
(365 days). --k8s-namespace and --k8s-service-account come in pairs: pods
running as that service account may enroll for this cluster with their
projected Kubernetes token. --k8s-binding NS/SA[:ROLE,...] does the same in
one flag, and may limit the roles its pods enroll as (jobmanager,
rest-server, taskmanager; none: all three), from the cluster's first moment.`,
		Example: `  flinkpki cluster create orders
  flinkpki cluster create payments --key-type rsa-3072 --ca-validity 5y --leaf-validity 120d
  flinkpki cluster create orders --k8s-namespace flink --k8s-service-account orders-flink
  flinkpki cluster create orders --k8s-binding flink/orders-flink:jobmanager,rest-server \
      --k8s-binding flink/orders-flink-tm:taskmanager`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runClusterCreate(cmd.Context(), &f, args[0]) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.keyType, "key-type", "", "key type of the CAs and leaves: ecdsa-p256 (default), ecdsa-p384, rsa-2048, rsa-3072, rsa-4096")
	fl.Var(&f.caValidity, "ca-validity", "validity of each CA (server default 3y)")
	fl.Var(&f.leafValid, "leaf-validity", "validity of each leaf, at least "+formatDuration(authority.MinLeafValidity)+" (server default 90d)")
	fl.StringArrayVar(&f.namespaces, "k8s-namespace", nil, "Kubernetes namespace whose service account may enroll (repeat, paired with --k8s-service-account; at most 64 bindings)")
	fl.StringArrayVar(&f.accounts, "k8s-service-account", nil, "Kubernetes service account that may enroll (repeat, paired with --k8s-namespace)")
	fl.StringArrayVar(&f.bindings, "k8s-binding", nil, "NAMESPACE/SERVICE-ACCOUNT[:ROLE,...] whose pods may enroll, as those roles or all (repeat)")
	fl.BoolVar(&f.noAutoRotate, "no-auto-rotate", false, "do not rotate the CAs automatically; run ca prepare/activate/retire yourself")
	addOutputFlag(cmd, &f.out)
	return cmd
}

// runClusterCreate checks the name and every binding before it asks the
// server to create cluster name, then warns of leaves too short for a
// streaming job and checks that the server kept the bindings' roles.
func (a *app) runClusterCreate(ctx context.Context, f *clusterCreateFlags, name string) error {
	kt, err := keyTypeFlag(f.keyType)
	if err != nil {
		return err
	}
	if len(f.namespaces) != len(f.accounts) {
		return usagef("--k8s-namespace and --k8s-service-account come in pairs: got %s and %s", plural(len(f.namespaces), "namespace", "namespaces"), plural(len(f.accounts), "service account", "service accounts"))
	}
	if err := checkClusterName(name); err != nil {
		return err
	}
	for i := range f.namespaces {
		if err := checkBinding("--k8s-namespace/--k8s-service-account", f.namespaces[i]+"/"+f.accounts[i], f.namespaces[i], f.accounts[i]); err != nil {
			return err
		}
	}
	req := &flinkpkiv1.CreateClusterRequest{Name: name, KeyType: string(kt), DisableAutoRotate: f.noAutoRotate}
	setCreateOptions(req, f.caValidity, f.leafValid, f.namespaces, f.accounts)
	more, err := bindingFlags("--k8s-binding", f.bindings, true)
	if err != nil {
		return err
	}
	req.K8SBindings = append(req.K8SBindings, more...)
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	c, err := flinkpkiv1.NewClusterServiceClient(conn).CreateCluster(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "created cluster %q (%s)\n", c.GetName(), c.GetKeyType())
	if f.leafValid.set && f.leafValid.d < shortLeaf {
		fmt.Fprintf(a.stderr, "note: leaves valid for %s: Flink reads its keystores only at start, so a JobManager or TaskManager that runs longer than that cannot open new TLS connections once its leaf expires; give leaves at least the longest a process runs (the default is 90d)\n", formatDuration(f.leafValid.d))
	}
	a.noteRolelessBindings(req.GetK8SBindings())
	if err := a.printCluster(c, f.out); err != nil {
		return err
	}
	return rolesKept(more, c.GetK8SBindings())
}

// noteRolelessBindings says, for bindings without roles, that their pods
// may enroll as every pod role, REST server included: with JobManager and
// TaskManagers on one such account, job code can obtain the REST
// endpoint's server certificate (flink lint's FP022).
func (a *app) noteRolelessBindings(bs []*flinkpkiv1.K8SBinding) {
	var all []string
	for _, b := range bs {
		if len(b.GetRoles()) == 0 {
			all = append(all, b.GetNamespace()+"/"+b.GetServiceAccount())
		}
	}
	if len(all) > 0 {
		fmt.Fprintf(a.stderr, "note: pods of %s may enroll as jobmanager, taskmanager and rest-server; if TaskManagers run as that account too, their job code can get the REST endpoint's server certificate: run them as an account of their own and bind each to its roles (--k8s-binding NS/SA:jobmanager,rest-server --k8s-binding NS/SA-tm:taskmanager; deploy/examples)\n", strings.Join(all, ", "))
	}
}

// shortLeaf is the leaf validity below which cluster create warns: a
// streaming job's pods run for weeks.
const shortLeaf = 7 * 24 * time.Hour

// setCreateOptions copies the optional flags into req; unset durations
// stay nil so the server applies its defaults.
func setCreateOptions(req *flinkpkiv1.CreateClusterRequest, caValidity, leafValid durationFlag, namespaces, accounts []string) {
	if caValidity.set {
		req.CaValidity = durationpb.New(caValidity.d)
	}
	if leafValid.set {
		req.LeafValidity = durationpb.New(leafValid.d)
	}
	for i := range namespaces {
		req.K8SBindings = append(req.K8SBindings, &flinkpkiv1.K8SBinding{Namespace: namespaces[i], ServiceAccount: accounts[i]})
	}
}

// clusterUpdateFlags are cluster update's flags.
type clusterUpdateFlags struct {
	add, remove []string
	autoRotate  string
	out         outputFormat
}

func (a *app) newClusterUpdateCmd() *cobra.Command {
	var f clusterUpdateFlags
	cmd := &cobra.Command{
		Use:   "update NAME",
		Short: "Add or remove Kubernetes bindings, turn automatic rotation on or off",
		Long: `Change what may change in a cluster after its creation, in one audited step
(cluster.update), or nothing when any part is refused:

  --add-k8s-binding NS/SA[:ROLES]
                               pods running as service account SA in namespace NS
                               may enroll for the cluster (refused when another
                               cluster holds that binding: one service account,
                               one cluster), as the roles given (jobmanager,
                               taskmanager, rest-server, comma-separated), or
                               as all three; for a binding the cluster has, it
                               sets the roles (which must then be given)
  --remove-k8s-binding NS/SA   they may not, from their next request on; leaves
                               they already hold stay valid until they expire
                               (holder list, holder release)
  --auto-rotate true|false     the rotation scheduler prepares, activates and
                               retires CAs on its own, or leaves it to ca
                               prepare/activate/retire

The cluster's CAs, key type and validities never change: they shape every
leaf it issued and its rotation schedule. Moving a Flink deployment to a new
service account is an add, a rollout, then a remove.

A binding with roles keeps a leaked TaskManager token from getting REST
server material: run the TaskManagers as a second service account
(kubernetes.taskmanager.service-account in flinkConfiguration; the operator
sets the TaskManager pods' serviceAccountName from it, in either mode, and
the JobManager keeps spec.serviceAccount) and bind each account to its roles.`,
		Example: `  flinkpki cluster update orders --add-k8s-binding flink/orders-flink-v2
  flinkpki cluster update orders --add-k8s-binding flink/orders-flink:jobmanager,rest-server \
      --add-k8s-binding flink/orders-flink-tm:taskmanager
  flinkpki cluster update orders --remove-k8s-binding flink/orders-flink
  flinkpki cluster update orders --auto-rotate false`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runClusterUpdate(cmd.Context(), &f, args[0]) },
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.add, "add-k8s-binding", nil, "NAMESPACE/SERVICE-ACCOUNT[:ROLE,...] whose pods may enroll, as those roles or all (repeat; at most 64 bindings per cluster)")
	fl.StringArrayVar(&f.remove, "remove-k8s-binding", nil, "NAMESPACE/SERVICE-ACCOUNT whose pods may no longer enroll (repeat)")
	fl.StringVar(&f.autoRotate, "auto-rotate", "", "true or false: rotate the CAs automatically")
	addOutputFlag(cmd, &f.out)
	return cmd
}

// runClusterUpdate sends the change the flags make to cluster name, in
// one request, and checks that the server kept the added bindings' roles.
func (a *app) runClusterUpdate(ctx context.Context, f *clusterUpdateFlags, name string) error {
	if err := checkClusterName(name); err != nil {
		return err
	}
	req, err := f.request(name)
	if err != nil {
		return err
	}
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	c, err := flinkpkiv1.NewClusterServiceClient(conn).UpdateCluster(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "updated cluster %q\n", c.GetName())
	a.noteRolelessBindings(req.GetAddK8SBindings())
	if err := a.printCluster(c, f.out); err != nil {
		return err
	}
	return rolesKept(req.GetAddK8SBindings(), c.GetK8SBindings())
}

// request is the UpdateClusterRequest the flags make for cluster name,
// refused as a usage error before the server is asked when a flag is
// malformed or nothing would change.
func (f *clusterUpdateFlags) request(name string) (*flinkpkiv1.UpdateClusterRequest, error) {
	req := &flinkpkiv1.UpdateClusterRequest{Name: name}
	var err error
	if req.AddK8SBindings, err = bindingFlags("--add-k8s-binding", f.add, true); err != nil {
		return nil, err
	}
	if req.RemoveK8SBindings, err = bindingFlags("--remove-k8s-binding", f.remove, false); err != nil {
		return nil, err
	}
	switch f.autoRotate {
	case "":
	case "true", "false":
		v := f.autoRotate == "true"
		req.AutoRotate = &v
	default:
		return nil, usagef("--auto-rotate %q: want true or false", f.autoRotate)
	}
	if len(req.AddK8SBindings) == 0 && len(req.RemoveK8SBindings) == 0 && req.AutoRotate == nil {
		return nil, usagef("nothing to change: give --add-k8s-binding, --remove-k8s-binding or --auto-rotate")
	}
	return req, nil
}

// rolesKept checks that the cluster a server answered binds each account
// added with roles to those roles: a server older than binding roles drops
// the field and binds the account for every role, which an administrator
// who asked for fewer must hear of (the update is done by then).
func rolesKept(added, got []*flinkpkiv1.K8SBinding) error {
	for _, want := range added {
		if len(want.GetRoles()) == 0 {
			continue
		}
		asked := slices.Clone(want.GetRoles())
		slices.Sort(asked)
		asked = slices.Compact(asked)
		for _, b := range got {
			if b.GetNamespace() == want.GetNamespace() && b.GetServiceAccount() == want.GetServiceAccount() && !slices.Equal(b.GetRoles(), asked) {
				return fmt.Errorf("the server bound %s/%s for every pod role, not as %s only: it is older than binding roles; upgrade it, then run this update again (until then its pods enroll as any role)",
					want.GetNamespace(), want.GetServiceAccount(), strings.Join(asked, ", "))
			}
		}
	}
	return nil
}

// bindingFlags parses NAMESPACE/SERVICE-ACCOUNT values of flag, with
// :ROLE,ROLE after them when withRoles.
func bindingFlags(flag string, vals []string, withRoles bool) ([]*flinkpkiv1.K8SBinding, error) {
	var out []*flinkpkiv1.K8SBinding
	for _, v := range vals {
		account, roles, hasRoles := strings.Cut(v, ":")
		ns, sa, ok := strings.Cut(account, "/")
		if !ok || ns == "" || sa == "" || strings.Contains(sa, "/") {
			if withRoles {
				return nil, usagef("%s %q: want NAMESPACE/SERVICE-ACCOUNT[:ROLE,...], e.g. flink/orders-flink or flink/orders-tm:taskmanager", flag, v)
			}
			return nil, usagef("%s %q: want NAMESPACE/SERVICE-ACCOUNT, e.g. flink/orders-flink", flag, v)
		}
		if err := checkBinding(flag, v, ns, sa); err != nil {
			return nil, err
		}
		b := &flinkpkiv1.K8SBinding{Namespace: ns, ServiceAccount: sa}
		if hasRoles {
			if !withRoles {
				return nil, usagef("%s %q: a binding is removed whole: give NAMESPACE/SERVICE-ACCOUNT alone", flag, v)
			}
			for r := range strings.SplitSeq(roles, ",") {
				if r == "" {
					return nil, usagef("%s %q: an empty role: list the roles after ':' separated by commas, e.g. %s/%s:jobmanager,rest-server", flag, v, ns, sa)
				}
				if !slices.Contains(authority.PodRoles, r) {
					return nil, usagef("%s %q: role %q: a pod may enroll as %s", flag, v, r, strings.Join(authority.PodRoles, ", "))
				}
				b.Roles = append(b.Roles, r)
			}
		}
		out = append(out, b)
	}
	return out, nil
}

// checkBinding refuses, as a usage error, a namespace or service account
// the server would refuse: no Kubernetes token carries it.
func checkBinding(flag, value, ns, sa string) error {
	if err := authority.CheckK8sBinding(ns, sa); err != nil {
		return usagef("%s %q: %s", flag, value, strings.TrimPrefix(err.Error(), authority.ErrInvalid.Error()+": "))
	}
	return nil
}

// clusterPageMax is the largest page the server answers with.
const clusterPageMax = 1000

func (a *app) newClusterListCmd() *cobra.Command {
	var (
		pageSize  int32
		pageToken string
		limit     int
		out       outputFormat
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List clusters",
		Long: `List clusters. All pages are fetched unless --page-token or --limit is given;
with --page-token one page is fetched, and with --limit the list stops there.
When more clusters follow, the token to go on with is reported: on stderr for
the table, as next_page_token in -o json. A list does not count the live
holders of each CA (it would read every holder of every cluster): its JSON
says "live_holders_counted": false; cluster get NAME counts them.`,
		Example: `  flinkpki cluster list
  flinkpki cluster list -o json | jq -r '.clusters[].name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			client := flinkpkiv1.NewClusterServiceClient(conn)
			var clusters []*flinkpkiv1.Cluster
			token := pageToken
			for {
				resp, err := client.ListClusters(cmd.Context(), &flinkpkiv1.ListClustersRequest{PageSize: pageSize, PageToken: token})
				if err != nil {
					return err
				}
				clusters = append(clusters, resp.GetClusters()...)
				token = resp.GetNextPageToken()
				if limit > 0 && len(clusters) >= limit {
					if len(clusters) > limit || token != "" {
						// More follow: the list goes on after the last
						// one shown (a page token is the name of the last
						// cluster before the page).
						token = clusters[limit-1].GetName()
					}
					clusters = clusters[:limit]
					break
				}
				if token == "" || pageToken != "" {
					break
				}
			}
			return a.printClusters(clusters, token, out)
		},
	}
	f := cmd.Flags()
	f.Var(newIntFlag(&pageSize, 0, 0, clusterPageMax), "page-size", "clusters per request (server default 100, max 1000)")
	f.StringVar(&pageToken, "page-token", "", "fetch only the page starting at this token")
	f.Var(newIntFlag(&limit, 0, 0, math.MaxInt32), "limit", "stop after this many clusters")
	addOutputFlag(cmd, &out)
	return cmd
}

func (a *app) newClusterGetCmd() *cobra.Command {
	var out outputFormat
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show one cluster and its CAs",
		Long: `Show one cluster: its key type, validities, Kubernetes bindings (with their
roles) and automatic rotation, and each CA of both lineages (internal, rest)
with its state, fingerprint, expiry and how many live holders it signed or is
trusted by (cluster list does not count them). ca status adds the next step of
each lineage and the holders that block it.`,
		Example: `  flinkpki cluster get orders
  flinkpki cluster get orders -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkClusterName(args[0]); err != nil {
				return err
			}
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			c, err := flinkpkiv1.NewClusterServiceClient(conn).GetCluster(cmd.Context(), &flinkpkiv1.GetClusterRequest{Name: args[0]})
			if err != nil {
				return err
			}
			return a.printCluster(c, out)
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}

func (a *app) newClusterDeleteCmd() *cobra.Command {
	var (
		yes bool
		out outputFormat
	)
	cmd := &cobra.Command{
		Use:   "delete NAME --yes",
		Short: "Delete a cluster and its CAs",
		Long: `Delete a cluster with its CAs and holders. Credentials already issued keep
working until they expire, but nothing new can be issued for the cluster.
--yes is required, as this cannot be undone.`,
		Example: `  flinkpki cluster delete orders --yes
  flinkpki cluster delete orders --yes -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return usagef("deleting cluster %q cannot be undone: add --yes to delete it", args[0])
			}
			if err := checkClusterName(args[0]); err != nil {
				return err
			}
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			if _, err := flinkpkiv1.NewClusterServiceClient(conn).DeleteCluster(cmd.Context(), &flinkpkiv1.DeleteClusterRequest{Name: args[0]}); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "deleted cluster %q\n", args[0])
			if out == "json" {
				return writeJSON(a.stdout, struct {
					Cluster string `json:"cluster"`
					Deleted bool   `json:"deleted"`
				}{args[0], true})
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")
	addOutputFlag(cmd, &out)
	return cmd
}
