package deploy

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestNginxConfigRequiresClientCertificatesAndProxiesToLoopback(t *testing.T) {
	data, err := os.ReadFile("examples/nginx/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(data)
	for _, want := range []string{
		"listen 8443 ssl;",
		"ssl_certificate /rest-tls/tls.crt;",
		"ssl_certificate_key /rest-tls/tls.key;",
		"ssl_client_certificate /rest-tls/ca.crt;",
		"ssl_verify_client on;",
		"ssl_protocols TLSv1.2 TLSv1.3;",
		"proxy_pass http://127.0.0.1:8081;",
		// A jar upload is streamed: buffered, it would spill into the small
		// /tmp emptyDir and get the JobManager pod evicted.
		"proxy_request_buffering off;",
		"client_max_body_size 100m;",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	if regexp.MustCompile(`ssl_verify_client\s+(optional|off)`).MatchString(conf) {
		t.Error("nginx.conf makes client certificates optional")
	}
}

// envoyConfig is the part of Envoy's bootstrap that the checks below read.
type envoyConfig struct {
	Admin           any `yaml:"admin"`
	StaticResources struct {
		Listeners []struct {
			Address      envoyAddress `yaml:"address"`
			FilterChains []struct {
				TransportSocket struct {
					Name        string `yaml:"name"`
					TypedConfig struct {
						Type                     string `yaml:"@type"`
						RequireClientCertificate bool   `yaml:"require_client_certificate"`
						CommonTLSContext         struct {
							TLSParams struct {
								Min string `yaml:"tls_minimum_protocol_version"`
							} `yaml:"tls_params"`
							TLSCertificates []struct {
								CertificateChain struct{ Filename string } `yaml:"certificate_chain"`
								PrivateKey       struct{ Filename string } `yaml:"private_key"`
							} `yaml:"tls_certificates"`
							ValidationContext struct {
								TrustedCA struct{ Filename string } `yaml:"trusted_ca"`
							} `yaml:"validation_context"`
						} `yaml:"common_tls_context"`
					} `yaml:"typed_config"`
				} `yaml:"transport_socket"`
			} `yaml:"filter_chains"`
		} `yaml:"listeners"`
		Clusters []struct {
			Name           string `yaml:"name"`
			LoadAssignment struct {
				Endpoints []struct {
					LbEndpoints []struct {
						Endpoint struct {
							Address envoyAddress `yaml:"address"`
						} `yaml:"endpoint"`
					} `yaml:"lb_endpoints"`
				} `yaml:"endpoints"`
			} `yaml:"load_assignment"`
		} `yaml:"clusters"`
	} `yaml:"static_resources"`
}

type envoyAddress struct {
	SocketAddress struct {
		Address   string `yaml:"address"`
		PortValue int    `yaml:"port_value"`
	} `yaml:"socket_address"`
}

func TestEnvoyConfigRequiresClientCertificatesAndProxiesToLoopback(t *testing.T) {
	data, err := os.ReadFile("examples/envoy/envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg envoyConfig
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("envoy.yaml: %v", err)
	}
	if cfg.Admin != nil {
		t.Error("envoy.yaml configures the admin interface, which would be reachable inside the pod")
	}
	ls := cfg.StaticResources.Listeners
	if len(ls) != 1 || len(ls[0].FilterChains) != 1 {
		t.Fatalf("want one listener with one filter chain, got %+v", ls)
	}
	if ls[0].Address.SocketAddress.PortValue != 8443 {
		t.Errorf("listener port = %d, want 8443", ls[0].Address.SocketAddress.PortValue)
	}
	tls := ls[0].FilterChains[0].TransportSocket.TypedConfig
	if !strings.HasSuffix(tls.Type, ".DownstreamTlsContext") || !tls.RequireClientCertificate {
		t.Errorf("listener must terminate TLS and require client certificates, got %+v", tls)
	}
	ctx := tls.CommonTLSContext
	if len(ctx.TLSCertificates) != 1 || ctx.TLSCertificates[0].CertificateChain.Filename != "/rest-tls/tls.crt" ||
		ctx.TLSCertificates[0].PrivateKey.Filename != "/rest-tls/tls.key" || ctx.ValidationContext.TrustedCA.Filename != "/rest-tls/ca.crt" {
		t.Errorf("TLS material must come from /rest-tls (tls.crt, tls.key, ca.crt), got %+v", ctx)
	}
	if ctx.TLSParams.Min != "TLSv1_2" {
		t.Errorf("minimum TLS version = %q, want TLSv1_2", ctx.TLSParams.Min)
	}
	cs := cfg.StaticResources.Clusters
	if len(cs) != 1 || len(cs[0].LoadAssignment.Endpoints) != 1 || len(cs[0].LoadAssignment.Endpoints[0].LbEndpoints) != 1 {
		t.Fatalf("want one upstream with one endpoint, got %+v", cs)
	}
	up := cs[0].LoadAssignment.Endpoints[0].LbEndpoints[0].Endpoint.Address.SocketAddress
	if up.Address != "127.0.0.1" || up.PortValue != 8081 {
		t.Errorf("upstream = %s:%d, want Flink's loopback REST endpoint 127.0.0.1:8081", up.Address, up.PortValue)
	}
}
