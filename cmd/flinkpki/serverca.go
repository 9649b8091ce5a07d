package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flinkpki/flinkpki/ca"
)

// serverCAFileName is where the server writes its trust anchor.
const serverCAFileName = "server-ca.crt"

func (a *app) newServerCACmd() *cobra.Command {
	var (
		dataDir string
		out     outputFormat
	)
	cmd := &cobra.Command{
		Use:   "server-ca",
		Short: "Print the server's trust anchor (offline)",
		Long: `Print the server's own serving CA certificate (DATA_DIR/server-ca.crt), the
trust anchor clients pass as --ca-file, so it can be published, for example
into a ConfigMap. Reads the data directory only; no server call. Its SHA-256
fingerprint goes to stderr for comparing out of band. -o json prints one object
with the PEM, the subject, the SHA-256 fingerprint of the certificate's DER
(colon-separated, as ca status shows fingerprints) and its validity instead.
While the serving CA is being replaced (admin serving-ca) the file holds two
certificates, the active one first: both go to stdout, a line each to stderr,
and -o json lists them under "certificates" (its other fields are the first's).`,
		Example: `  flinkpki server-ca --data-dir /var/lib/flinkpki > server-ca.crt
  kubectl -n flink create configmap flinkpki-server-ca --from-file=server-ca.crt=<(flinkpki server-ca)
  flinkpki server-ca --data-dir /var/lib/flinkpki -o json | jq -r .sha256_fingerprint`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			path := filepath.Join(dataDir, serverCAFileName)
			data, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("read the server's trust anchor: %w (start the server once to create it, or pass --data-dir)", err)
			}
			certs, err := parseCertBundle(data)
			if err != nil {
				return fmt.Errorf("%s %w", path, err)
			}
			if out == "json" {
				all := []serverCACertJSON{}
				for _, c := range certs {
					all = append(all, serverCACertJSONOf(c))
				}
				err = writeJSON(a.stdout, serverCAJSON{path, all[0], string(data), all})
			} else {
				_, err = a.stdout.Write(data)
			}
			if err != nil {
				return err
			}
			for i, cert := range certs {
				what := path
				if len(certs) > 1 {
					what = fmt.Sprintf("%s (%d of %d: a serving CA is being replaced, admin serving-ca status)", path, i+1, len(certs))
				}
				fmt.Fprintf(a.stderr, "%s: %s, SHA-256 %s, valid until %s\n", what, cert.Subject, ca.Fingerprint(cert), cert.NotAfter.UTC().Format("2006-01-02"))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "./flinkpki-data", "the server's data directory")
	addOutputFlag(cmd, &out)
	return cmd
}

// parseCertBundle reads every certificate of a PEM bundle (a
// server-ca.crt); its error reads after the file's name.
func parseCertBundle(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("holds a PEM %q block, not only certificates", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("holds an unreadable certificate: %w", err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("holds no PEM certificate")
	}
	return certs, nil
}

// serverCAJSON is server-ca -o json: the first certificate's fields (the
// active serving CA, as since the first release), the file's PEM, and
// every certificate it holds (two while a serving CA is replaced).
type serverCAJSON struct {
	Path string `json:"path"`
	serverCACertJSON
	PEM          string             `json:"pem"`
	Certificates []serverCACertJSON `json:"certificates"`
}

// serverCACertJSON is one certificate of server-ca.crt.
type serverCACertJSON struct {
	Subject           string `json:"subject"`
	SHA256Fingerprint string `json:"sha256_fingerprint"`
	NotBefore         string `json:"not_before"`
	NotAfter          string `json:"not_after"`
}

func serverCACertJSONOf(c *x509.Certificate) serverCACertJSON {
	return serverCACertJSON{c.Subject.String(), ca.Fingerprint(c), rfc3339(timestamppb.New(c.NotBefore)), rfc3339(timestamppb.New(c.NotAfter))}
}
