package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/credentials"
	"github.com/flinkpki/flinkpki/enroll"
)

func (a *app) newBakeCmd() *cobra.Command {
	var f issueFlags
	var conf confFlags
	cmd := &cobra.Command{
		Use:   "bake --cluster NAME --role ROLE --holder ID --out DIR",
		Short: "Write a credential file set with a server-made key (image builds)",
		Long: `Write the credential file set (keystore, truststore, passwords, PEM copies and
flink-ssl.yaml) into --out, with a key the server generates for this call and
never stores. For image builds and anything run by an administrator; pods
should use init, which keeps the key where it is used.

flink-ssl.yaml names the stores by absolute path. When the files are copied
to another place (into an image, say), give that place with --tls-dir; the
default is --out itself. A run into a directory that holds an earlier set
keeps that set's store passwords, as init does, so a configuration copy
naming them opens the new stores, even after a run killed between the two.

A jobmanager or taskmanager leaf names no host unless --dns/--ip give some
(init adds its pod's names itself). Flink 2.3's TaskManagers check the peer's
host name on their data connections (Netty 4.2), so credentials baked for 2.3
need the names the processes reach each other by, or the JVM option
-Dorg.apache.flink.shaded.netty4.io.netty.handler.ssl.defaultEndpointVerificationAlgorithm=NONE
in env.java.opts.all; Flink before 2.3 checks no host name there.

With --flink-conf-src and --flink-conf-out it also copies a Flink
configuration directory (the image's own /opt/flink/conf, say) and merges the
security.ssl.* keys, with the stores' passwords and --tls-dir's paths, into
its config.yaml (or legacy flink-conf.yaml), as init does: copy that
directory into the image as Flink's configuration. Appending flink-ssl.yaml to
a config.yaml by hand can write a key twice (a second security: block, say),
and Flink refuses such a file. --out must lie outside --flink-conf-src (and
the source outside --out): the next copy would carry the private key. A
--flink-conf-out holding a file no copy wrote (and that differs from the
source's), where the copy would put one, is refused before the server makes
a key: copy into a new directory.

A holder is one running copy of its credentials: bake each image under a
holder name of its own (orders-tm-v2). A bake that replaces the live
credentials of an earlier bake under the same name says so on stderr (and
in "superseded" with -o json): CA rotation then no longer waits for the pods
that still run the earlier image.

The secret files are written 0600 for the user running bake, and a
Dockerfile COPY keeps that mode with root as the owner: copy them for the
user Flink runs as (COPY --chown=flink:flink in the official images).

Takes an administrator token, or an enrollment token for that cluster and
role. The file set appears atomically, and a bake refused before the server
makes a key (a wrong flag, an unusable --out or --flink-conf-src) leaves
nothing behind. As in a Kubernetes Secret volume, each name in --out is a
link into ..data/, swapped in one rename: copy the set with tools that follow
links (COPY, cp -r); kubectl create secret generic --from-file=DIR skips them.`,
		Example: `  flinkpki bake --cluster orders --role jobmanager --holder orders-jm --out ./tls
  # in an image build whose Dockerfile has:
  #   COPY --chown=flink:flink tls /opt/flink/tls
  #   COPY --chown=flink:flink conf /opt/flink/conf
  flinkpki bake --cluster orders --role jobmanager --holder orders-jm --out ./tls --tls-dir /opt/flink/tls \
      --flink-conf-src ./flink-conf-orig --flink-conf-out ./conf
  flinkpki bake --cluster orders --role rest-server --holder orders-rest \
      --dns orders-rest.flink.svc --ip 10.0.0.7 --out ./rest-tls --format jks`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runBake(cmd.Context(), &f, &conf) },
	}
	f.register(cmd)
	conf.register(cmd, "the image's other settings")
	cmd.Flags().StringVar(&f.tlsDir, "tls-dir", "", "absolute directory the files will live at when Flink reads them, named in flink-ssl.yaml (default: the absolute --out)")
	a.addConnFlags(cmd)
	return cmd
}

// runBake checks every flag and --out, and reads --flink-conf-src, before
// the server makes a key: a refusal until then leaves nothing behind.
// Then it has the server make the key and writes the file set.
func (a *app) runBake(ctx context.Context, f *issueFlags, conf *confFlags) error {
	if err := clusterFlag(f.cluster); err != nil {
		return err
	}
	if _, err := roleFlag(f.role); err != nil {
		return err
	}
	if err := requireFlag("holder", f.holder); err != nil {
		return err
	}
	if err := holderFlag("--holder", f.holder); err != nil {
		return err
	}
	if err := conf.resolve(f.out); err != nil {
		return err
	}
	start := a.now()
	opts, err := f.buildOptions(start)
	if err != nil {
		return err
	}
	lock, err := credentials.LockDir(opts.Dir) // one run per --out, from here to its write
	if err != nil {
		return err
	}
	defer lock.Release()
	// As for init: a set being replaced keeps its passwords, so the
	// configuration copy beside it opens the new stores, also after a
	// crash between the stores and the copy.
	opts.Passwords = credentials.ReadPasswords(opts.Dir)
	// Read and trial-merged before the server makes a key.
	if err := conf.read(opts); err != nil {
		return err
	}
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := enroll.NewClient(conn, a.target).Bake(ctx, enroll.Request{
		Cluster: f.cluster, Role: f.role, Holder: f.holder, DNS: f.dns, IPs: f.ips,
	})
	if err != nil {
		return err
	}
	set, err := credentials.Build(credentials.Material{Key: res.Key, Chain: res.Chain, Trusted: res.Trusted}, opts)
	if err != nil {
		return notWritten(f, res, err)
	}
	if err := a.writeWithConf(conf, set, opts.Dir); err != nil {
		return notWritten(f, res, err)
	}
	lock.Keep()
	return a.report(f, opts, res, set, conf.out, a.now().Sub(start))
}
