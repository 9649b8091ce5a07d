package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
)

// openOffline opens a stopped server's store with its key-encryption key.
// bbolt's file lock makes it fail clearly while a server is running.
func openOffline(ctx context.Context, dataDir, kekFile string) (*store.Store, error) {
	db := filepath.Join(dataDir, "flinkpki.db")
	if _, err := os.Stat(db); err != nil {
		return nil, fmt.Errorf("no store at %s: %w", db, err)
	}
	if kekFile == "" {
		kekFile = os.Getenv("FLINKPKI_KEK_FILE")
	}
	if kekFile == "" {
		return nil, usagef("--kek-file is required (or set FLINKPKI_KEK_FILE)")
	}
	raw, err := os.ReadFile(kekFile)
	if err != nil {
		return nil, fmt.Errorf("read key-encryption key: %w", err)
	}
	kek, err := store.ParseKEK(raw)
	if err != nil {
		return nil, err
	}
	seal, err := store.NewSealer(kek, nil)
	if err != nil {
		return nil, err
	}
	b, err := bolt.Open(db, bolt.Options{})
	if err != nil {
		return nil, fmt.Errorf("%w (is the server still running? stop it first)", err)
	}
	st, err := store.Open(ctx, b, seal)
	if err != nil {
		b.Close()
		if errors.Is(err, store.ErrWrongKEK) {
			return nil, fmt.Errorf("the key-encryption key %s does not open %s; nothing was changed", kekFile, db)
		}
		return nil, err
	}
	return st, nil
}

func newAdminBootstrapCmd() *cobra.Command {
	var dataDir, kekFile, name string
	cmd := &cobra.Command{
		Use:   "bootstrap --data-dir DIR --kek-file FILE",
		Short: "Create an administrator token offline, while the server is stopped",
		Long: `Create an administrator token directly in a stopped server's store and print it
on stdout (only its hash is stored). This is how production installations get
their first administrator: the server never writes token files outside --dev.`,
		Example: `  flinkpki admin bootstrap --data-dir /var/lib/flinkpki --kek-file /etc/flinkpki/kek > admin.token`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openOffline(cmd.Context(), dataDir, kekFile)
			if err != nil {
				return err
			}
			defer st.Close()
			auth, err := authority.New(authority.Config{Store: st})
			if err != nil {
				return err
			}
			tok, err := auth.CreateAdminToken(cmd.Context(), authority.Actor{Kind: authority.ActorSystem, ID: "bootstrap"}, name)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			fmt.Fprintf(cmd.ErrOrStderr(), "administrator token %q created; keep it secret (store it with mode 0600)\n", name)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "./flinkpki-data", "data directory of the stopped server")
	cmd.Flags().StringVar(&kekFile, "kek-file", "", "the store's key-encryption key (env FLINKPKI_KEK_FILE)")
	cmd.Flags().StringVar(&name, "name", "admin", "a label for the token, recorded in the audit trail")
	return cmd
}

func newAdminRotateKEKCmd() *cobra.Command {
	var dataDir, kekFile, newKEKFile string
	cmd := &cobra.Command{
		Use:   "rotate-kek --data-dir DIR --kek-file OLD --new-kek-file NEW",
		Short: "Re-encrypt every CA key under a new key-encryption key, offline",
		Long: `Re-encrypt every CA private key (and the serving CA's) under a new key-encryption
key in one transaction, while the server is stopped. Afterwards start the
server with --kek-file NEW; the old key no longer opens the store.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if newKEKFile == "" {
				return usagef("--new-kek-file is required")
			}
			raw, err := os.ReadFile(newKEKFile)
			if err != nil {
				return fmt.Errorf("read new key-encryption key: %w", err)
			}
			kek, err := store.ParseKEK(raw)
			if err != nil {
				return err
			}
			next, err := store.NewSealer(kek, nil)
			if err != nil {
				return err
			}
			st, err := openOffline(cmd.Context(), dataDir, kekFile)
			if err != nil {
				return err
			}
			defer st.Close()
			n, err := st.RotateKEK(cmd.Context(), next)
			if err != nil {
				return fmt.Errorf("rotate key-encryption key (nothing was changed): %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "re-encrypted %d CA keys; start the server with --kek-file %s\n", n, newKEKFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "./flinkpki-data", "data directory of the stopped server")
	cmd.Flags().StringVar(&kekFile, "kek-file", "", "the current key-encryption key (env FLINKPKI_KEK_FILE)")
	cmd.Flags().StringVar(&newKEKFile, "new-kek-file", "", "the new key-encryption key (32 random bytes)")
	return cmd
}
