package k8stest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"
)

// Defaults applied by Mint for fields left empty.
const (
	DefaultAudience       = "flinkpki"
	DefaultNamespace      = "default"
	DefaultServiceAccount = "default"
	DefaultLifetime       = time.Hour
	// LegacyIssuer is the "iss" of legacy secret-based tokens.
	LegacyIssuer = "kubernetes/serviceaccount"
)

// Claims describes a token to mint. Zero fields take the defaults a real
// projected token would have, so Claims{} alone is a valid token for
// default/default with audience "flinkpki", valid for an hour from now.
type Claims struct {
	// Issuer defaults to the Issuer's URL (LegacyIssuer when Legacy is set).
	Issuer string
	// Subject defaults to system:serviceaccount:<Namespace>:<ServiceAccount>;
	// set it to forge a mismatch.
	Subject string
	// Audience defaults to ["flinkpki"] when nil; a non-nil empty slice
	// omits "aud".
	Audience []string

	Namespace         string // default "default"
	ServiceAccount    string // default "default"
	ServiceAccountUID string // default a random UUID
	Pod               string // empty: token not bound to a pod
	PodUID            string // default a random UUID when Pod is set
	Node              string // empty: no node claim
	NodeUID           string // default a random UUID when Node is set

	// IssuedAt defaults to time.Now(); NotBefore to IssuedAt; Expiry to
	// IssuedAt + DefaultLifetime.
	IssuedAt, NotBefore, Expiry time.Time
	// WarnAfter, when set, adds kubernetes.io.warnafter, which the apiserver
	// stamps on tokens whose lifetime it extended.
	WarnAfter time.Time
	// ID is the "jti"; default a random UUID.
	ID string

	// Legacy mints a legacy secret-based token instead: flat
	// kubernetes.io/serviceaccount/* claims, no aud, exp, nbf or iat.
	Legacy bool
	// SecretName names the token Secret of a legacy token; default
	// "<ServiceAccount>-token-abcde".
	SecretName string
}

// ref is the {"name","uid"} object the apiserver uses for bound objects.
type ref struct {
	Name string `json:"name,omitempty"`
	UID  string `json:"uid,omitempty"`
}

// kubernetesClaim is the private "kubernetes.io" claim of projected tokens.
type kubernetesClaim struct {
	Namespace      string `json:"namespace,omitempty"`
	ServiceAccount ref    `json:"serviceaccount"`
	Pod            *ref   `json:"pod,omitempty"`
	Node           *ref   `json:"node,omitempty"`
	WarnAfter      *int64 `json:"warnafter,omitempty"`
}

// Payload returns the JSON claims Mint would sign for c, with defaults
// applied, for tests that assemble forged tokens themselves.
func (i *Issuer) Payload(c Claims) []byte {
	i.tb.Helper()
	c = i.withDefaults(c)
	var m map[string]any
	if c.Legacy {
		m = legacyClaims(c)
	} else {
		m = projectedClaims(c)
	}
	b, err := json.Marshal(m)
	if err != nil {
		i.tb.Fatalf("k8stest: encoding claims: %v", err)
	}
	return b
}

// projectedClaims builds the claim set of a TokenRequest/projected token.
func projectedClaims(c Claims) map[string]any {
	k := kubernetesClaim{
		Namespace:      c.Namespace,
		ServiceAccount: ref{Name: c.ServiceAccount, UID: c.ServiceAccountUID},
	}
	if c.Pod != "" {
		k.Pod = &ref{Name: c.Pod, UID: c.PodUID}
	}
	if c.Node != "" {
		k.Node = &ref{Name: c.Node, UID: c.NodeUID}
	}
	if !c.WarnAfter.IsZero() {
		w := c.WarnAfter.Unix()
		k.WarnAfter = &w
	}
	m := map[string]any{
		"iss":           c.Issuer,
		"sub":           c.Subject,
		"iat":           c.IssuedAt.Unix(),
		"nbf":           c.NotBefore.Unix(),
		"exp":           c.Expiry.Unix(),
		"jti":           c.ID,
		"kubernetes.io": k,
	}
	if len(c.Audience) > 0 {
		m["aud"] = c.Audience
	}
	return m
}

// legacyClaims builds the claim set of a pre-1.24 secret-based token.
func legacyClaims(c Claims) map[string]any {
	return map[string]any{
		"iss":                                    c.Issuer,
		"sub":                                    c.Subject,
		"kubernetes.io/serviceaccount/namespace": c.Namespace,
		"kubernetes.io/serviceaccount/secret.name":          c.SecretName,
		"kubernetes.io/serviceaccount/service-account.name": c.ServiceAccount,
		"kubernetes.io/serviceaccount/service-account.uid":  c.ServiceAccountUID,
	}
}

// withDefaults fills the zero fields of c.
func (i *Issuer) withDefaults(c Claims) Claims {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.ServiceAccount == "" {
		c.ServiceAccount = DefaultServiceAccount
	}
	if c.Subject == "" {
		c.Subject = "system:serviceaccount:" + c.Namespace + ":" + c.ServiceAccount
	}
	if c.Issuer == "" {
		c.Issuer = i.URL
		if c.Legacy {
			c.Issuer = LegacyIssuer
		}
	}
	if c.Audience == nil {
		c.Audience = []string{DefaultAudience}
	}
	if c.ServiceAccountUID == "" {
		c.ServiceAccountUID = newUUID()
	}
	if c.Pod != "" && c.PodUID == "" {
		c.PodUID = newUUID()
	}
	if c.Node != "" && c.NodeUID == "" {
		c.NodeUID = newUUID()
	}
	if c.ID == "" {
		c.ID = newUUID()
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	if c.NotBefore.IsZero() {
		c.NotBefore = c.IssuedAt
	}
	if c.Expiry.IsZero() {
		c.Expiry = c.IssuedAt.Add(DefaultLifetime)
	}
	if c.SecretName == "" {
		c.SecretName = c.ServiceAccount + "-token-abcde"
	}
	return c
}

// newUUID returns a random RFC 4122 version 4 UUID, the form of Kubernetes
// object UIDs and token ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
