package main

import (
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// clusterJSON is the stable JSON shape of a cluster.
type clusterJSON struct {
	Name                string        `json:"name"`
	KeyType             string        `json:"key_type"`
	CAValiditySeconds   int64         `json:"ca_validity_seconds"`
	LeafValiditySeconds int64         `json:"leaf_validity_seconds"`
	K8sBindings         []bindingJSON `json:"k8s_bindings"`
	AutoRotate          bool          `json:"auto_rotate"`
	CreateTime          string        `json:"create_time"`
	CAs                 []caJSON      `json:"cas"`
	// False in cluster list, which does not count its CAs' live holders
	// (their live_holders_* are 0 there, not measured): cluster get does.
	LiveHoldersCounted bool `json:"live_holders_counted"`
}

type bindingJSON struct {
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"service_account"`
	// The roles its pods may enroll as: all a pod may when the binding
	// names none.
	Roles []string `json:"roles"`
}

// bindingRoles is what a binding's pods may enroll as.
func bindingRoles(b *flinkpkiv1.K8SBinding) []string {
	if len(b.GetRoles()) == 0 {
		return authority.PodRoles
	}
	return b.GetRoles()
}

// caJSON is the stable JSON shape of one CA.
type caJSON struct {
	ID                  string `json:"id"`
	Purpose             string `json:"purpose"`
	Generation          int32  `json:"generation"`
	State               string `json:"state"`
	SHA256Fingerprint   string `json:"sha256_fingerprint"`
	NotBefore           string `json:"not_before"`
	NotAfter            string `json:"not_after"`
	Subject             string `json:"subject"`
	LiveHoldersSigned   int32  `json:"live_holders_signed"`
	LiveHoldersTrusting int32  `json:"live_holders_trusting"`
	CertificatePEM      string `json:"certificate_pem,omitempty"`
}

func toClusterJSON(c *flinkpkiv1.Cluster) clusterJSON {
	j := clusterJSON{
		Name:                c.GetName(),
		KeyType:             c.GetKeyType(),
		CAValiditySeconds:   int64(c.GetCaValidity().AsDuration() / time.Second),
		LeafValiditySeconds: int64(c.GetLeafValidity().AsDuration() / time.Second),
		K8sBindings:         []bindingJSON{},
		AutoRotate:          c.GetAutoRotate(),
		CreateTime:          rfc3339(c.GetCreateTime()),
		CAs:                 []caJSON{},
		LiveHoldersCounted:  !c.GetLiveHoldersUncounted(),
	}
	for _, b := range c.GetK8SBindings() {
		j.K8sBindings = append(j.K8sBindings, bindingJSON{Namespace: b.GetNamespace(), ServiceAccount: b.GetServiceAccount(), Roles: bindingRoles(b)})
	}
	for _, ca := range c.GetCas() {
		j.CAs = append(j.CAs, toCAJSON(ca))
	}
	return j
}

func toCAJSON(ca *flinkpkiv1.CertificateAuthority) caJSON {
	j := caJSON{
		ID:                  ca.GetId(),
		Purpose:             ca.GetPurpose(),
		Generation:          ca.GetGeneration(),
		State:               ca.GetState(),
		SHA256Fingerprint:   ca.GetSha256Fingerprint(),
		NotBefore:           rfc3339(ca.GetNotBefore()),
		NotAfter:            rfc3339(ca.GetNotAfter()),
		Subject:             ca.GetSubject(),
		LiveHoldersSigned:   ca.GetLiveHoldersSigned(),
		LiveHoldersTrusting: ca.GetLiveHoldersTrusting(),
	}
	if der := ca.GetCertificate(); len(der) > 0 {
		j.CertificatePEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	return j
}

func (a *app) printCluster(c *flinkpkiv1.Cluster, out outputFormat) error {
	if out == "json" {
		return writeJSON(a.stdout, toClusterJSON(c))
	}
	w := newTable(a.stdout)
	w.row("Name:", c.GetName())
	w.row("Key type:", c.GetKeyType())
	w.row("CA validity:", formatDuration(c.GetCaValidity().AsDuration()))
	w.row("Leaf validity:", formatDuration(c.GetLeafValidity().AsDuration()))
	w.row("Auto-rotate:", c.GetAutoRotate())
	w.row("Created:", orDash(rfc3339(c.GetCreateTime())))
	var bindings []string
	for _, b := range c.GetK8SBindings() {
		s := b.GetNamespace() + "/" + b.GetServiceAccount()
		if len(b.GetRoles()) > 0 {
			s += " (" + strings.Join(b.GetRoles(), ", ") + ")"
		}
		bindings = append(bindings, s)
	}
	w.row("Kubernetes bindings:", orDash(strings.Join(bindings, ", ")))
	if err := w.Flush(); err != nil {
		return err
	}
	if len(c.GetCas()) == 0 {
		return nil
	}
	fmt.Fprintln(a.stdout)
	return a.printCATable(c.GetCas(), !c.GetLiveHoldersUncounted())
}

// printCATable lists CAs one per row; counted says whether their live
// holders are (a dash when not).
func (a *app) printCATable(cas []*flinkpkiv1.CertificateAuthority, counted bool) error {
	w := newTable(a.stdout)
	w.row("PURPOSE", "GEN", "STATE", "ID", "NOT AFTER", "SIGNED", "TRUSTING", "SHA-256 FINGERPRINT")
	for _, ca := range cas {
		var signed, trusting any = ca.GetLiveHoldersSigned(), ca.GetLiveHoldersTrusting()
		if !counted {
			signed, trusting = "-", "-"
		}
		w.row(ca.GetPurpose(), ca.GetGeneration(), ca.GetState(), ca.GetId(),
			orDash(rfc3339(ca.GetNotAfter())), signed, trusting, ca.GetSha256Fingerprint())
	}
	return w.Flush()
}

func (a *app) printClusters(clusters []*flinkpkiv1.Cluster, next string, out outputFormat) error {
	if out == "json" {
		list := struct {
			Clusters      []clusterJSON `json:"clusters"`
			NextPageToken string        `json:"next_page_token,omitempty"`
		}{Clusters: []clusterJSON{}, NextPageToken: next}
		for _, c := range clusters {
			list.Clusters = append(list.Clusters, toClusterJSON(c))
		}
		return writeJSON(a.stdout, list)
	}
	w := newTable(a.stdout)
	w.row("NAME", "KEY TYPE", "LEAF VALIDITY", "AUTO-ROTATE", "ACTIVE CA EXPIRES", "CREATED")
	for _, c := range clusters {
		w.row(c.GetName(), c.GetKeyType(), formatDuration(c.GetLeafValidity().AsDuration()),
			c.GetAutoRotate(), orDash(activeExpiry(c)), orDash(rfc3339(c.GetCreateTime())))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(a.stderr, "more clusters: --page-token %s\n", cellText(next))
	}
	return nil
}

// activeExpiry is the expiry of the active internal CA, the date that
// matters most for a cluster.
func activeExpiry(c *flinkpkiv1.Cluster) string {
	for _, ca := range c.GetCas() {
		if ca.GetState() == "active" && ca.GetPurpose() == "internal" {
			return rfc3339(ca.GetNotAfter())
		}
	}
	return ""
}
