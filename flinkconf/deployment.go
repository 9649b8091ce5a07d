package flinkconf

import (
	"crypto/x509"
	"fmt"
	"path"

	"go.yaml.in/yaml/v3"
)

// DefaultTLSDir is where the flinkpki init container writes the stores
// (its --out) in the FlinkDeployment examples: an emptyDir mounted into the
// init container and the Flink container alike.
const DefaultTLSDir = "/flink-tls"

// MergeArraysByNameKey makes the operator merge pod-template containers,
// volumes and mounts by name instead of by position, so the init container
// and the TLS volume of the top-level podTemplate reach both JobManager and
// TaskManager without clobbering role-specific entries.
const MergeArraysByNameKey = "kubernetes.operator.pod-template.merge-arrays-by-name"

// StartupProbeKey turns the operator's JobManager startup probe on or off
// (on by default). The operator adds it to the JobManager's
// flink-main-container as an HTTP GET of REST on the pod IP, which REST on
// loopback (the init container's --flink-conf-set rest.bind-address)
// never answers: it must be off there (lint's FP021).
const StartupProbeKey = "kubernetes.operator.jm-deployment.startup.probe.enabled"

// ConfigParams describes the flinkConfiguration block for a FlinkDeployment
// whose stores are written by the flinkpki init container.
type ConfigParams struct {
	// TLSDir is the init container's --out directory; DefaultTLSDir if empty.
	TLSDir string
	// Format is the store format, "pkcs12" (default) or "jks".
	Format string
	// KeyAlgorithm is the cluster's key type; it picks the cipher suites.
	KeyAlgorithm x509.PublicKeyAlgorithm
	// LegacyStoreTypes omits the *-type keys, which Flink < 1.20 does not know
	// (it uses the JVM default type, which reads either store format).
	LegacyStoreTypes bool
	// TLS13 writes TLS 1.3, as init and bake --tls-protocol TLSv1.3 do.
	TLS13 bool
}

// FlinkConfiguration returns the flinkConfiguration keys for a
// FlinkDeployment. It never contains passwords: flinkConfiguration is stored
// in plain text and audit-logged, so the init container merges the
// pod-local passwords into its private copy of the configuration instead.
func FlinkConfiguration(p ConfigParams) ([]KV, error) {
	dir := p.TLSDir
	if dir == "" {
		dir = DefaultTLSDir
	}
	if !path.IsAbs(dir) {
		return nil, fmt.Errorf("TLS directory %q is not absolute: use the init container's --out path, e.g. %s", dir, DefaultTLSDir)
	}
	format := p.Format
	if format == "" {
		format = "pkcs12"
	}
	storeType, err := StoreType(format)
	if err != nil {
		return nil, err
	}
	protocol, algs, err := ProtocolAlgorithms(p.KeyAlgorithm, p.TLS13)
	if err != nil {
		return nil, err
	}
	ext := ".p12"
	if storeType == "JKS" {
		ext = ".jks"
	}
	kvs := []KV{
		{"security.ssl.internal.enabled", "true"},
		{"security.ssl.internal.keystore", path.Join(dir, "keystore"+ext)},
	}
	if !p.LegacyStoreTypes {
		kvs = append(kvs, KV{"security.ssl.internal.keystore-type", storeType})
	}
	kvs = append(kvs, KV{"security.ssl.internal.truststore", path.Join(dir, "truststore"+ext)})
	if !p.LegacyStoreTypes {
		kvs = append(kvs, KV{"security.ssl.internal.truststore-type", storeType})
	}
	kvs = append(kvs,
		KV{"security.ssl.protocol", protocol},
		KV{"security.ssl.algorithms", algs},
	)
	kvs = append(kvs, KV{MergeArraysByNameKey, "true"}, KV{StartupProbeKey, "false"})
	return kvs, nil
}

// RenderYAML renders keys as a YAML mapping of flat keys with every value a
// string (quoted where YAML would otherwise read a bool or number, as the
// operator's map[string]string field requires), ready to be indented under
// spec.flinkConfiguration.
func RenderYAML(kvs []KV) ([]byte, error) {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, kv := range kvs {
		m.Content = append(m.Content, stringNode(kv.Key), stringNode(kv.Value))
	}
	return encodeYAML(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{m}})
}
