package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flinkpki/flinkpki/authority"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

func (a *app) newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make enrollment tokens (administrator)",
	}
	a.addConnFlags(cmd)
	cmd.AddCommand(a.newTokenCreateCmd())
	return cmd
}

func (a *app) newTokenCreateCmd() *cobra.Command {
	var (
		cluster, role string
		ttl           = durationFlag{d: authority.DefaultTokenTTL, min: authority.MinTokenTTL, max: authority.MaxTokenTTL}
		uses          int32
	)
	cmd := &cobra.Command{
		Use:   "create --cluster NAME --role ROLE",
		Short: "Make an enrollment token for one cluster and role",
		Long: `Make an enrollment token that lets init or bake obtain credentials for one
cluster and role, within its TTL and its number of uses. The token alone is
printed on stdout, so redirecting into a file just works; everything else goes
to stderr. The server stores only its hash: it cannot be shown again.`,
		Example: `  flinkpki token create --cluster orders --role taskmanager > tm.token
  flinkpki token create --cluster orders --role taskmanager --ttl 1h --uses 20 > tm.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := clusterFlag(cluster); err != nil {
				return err
			}
			if _, err := roleFlag(role); err != nil {
				return err
			}
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			resp, err := flinkpkiv1.NewClusterServiceClient(conn).CreateToken(cmd.Context(), &flinkpkiv1.CreateTokenRequest{
				Cluster: cluster, Role: role, Ttl: durationpb.New(ttl.d), Uses: uses,
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, resp.GetToken())
			fmt.Fprintf(a.stderr, "token %s for cluster %q role %s: %d use(s), expires %s\n",
				resp.GetId(), cluster, role, resp.GetUses(), rfc3339(resp.GetExpireTime()))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cluster, "cluster", "", "cluster the token enrolls for (required)")
	f.StringVar(&role, "role", "", "role: jobmanager, taskmanager, rest-server or rest-client (required)")
	f.Var(&ttl, "ttl", "how long the token is valid, 1s to "+formatDuration(authority.MaxTokenTTL))
	f.Var(newIntFlag(&uses, authority.DefaultTokenUses, 1, authority.MaxTokenUses), "uses", "how many enrollments the token allows")
	return cmd
}
