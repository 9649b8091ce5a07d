package k8sauth

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// legacyIssuer is the "iss" of legacy secret-based service-account tokens.
const legacyIssuer = "kubernetes/serviceaccount"

// subjectPrefix starts the "sub" of every service-account token.
const subjectPrefix = "system:serviceaccount:"

// claims is the claim set of a service-account token. Standard claims use
// go-jose's types, which accept "aud" as a string or an array and refuse
// dates that would overflow.
type claims struct {
	Issuer     string           `json:"iss"`
	Subject    string           `json:"sub"`
	Audience   jwt.Audience     `json:"aud"`
	Expiry     *jwt.NumericDate `json:"exp"`
	NotBefore  *jwt.NumericDate `json:"nbf"`
	IssuedAt   *jwt.NumericDate `json:"iat"`
	Kubernetes *kubeClaim       `json:"kubernetes.io"`
	// LegacyNamespace is set only on legacy secret-based tokens.
	LegacyNamespace string `json:"kubernetes.io/serviceaccount/namespace"`
}

// kubeClaim is the private "kubernetes.io" claim of projected tokens.
type kubeClaim struct {
	Namespace      string `json:"namespace"`
	ServiceAccount *ref   `json:"serviceaccount"`
	Pod            *ref   `json:"pod"`
	Node           *ref   `json:"node"`
}

// ref names a bound Kubernetes object.
type ref struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// parseClaims decodes a verified payload.
func parseClaims(payload []byte) (*claims, error) {
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("service-account token claims do not decode (%v): %w", err, ErrMalformed)
	}
	return &c, nil
}

// checkClaims applies every claim rule to a token whose signature holds and
// builds the Identity.
func (v *Verifier) checkClaims(c *claims) (*Identity, error) {
	if c.Kubernetes == nil && (c.Issuer == legacyIssuer || c.LegacyNamespace != "") {
		return nil, fmt.Errorf("service-account token is a legacy secret-based token; mount a projected service-account token with audience %q instead: %w", v.audience, ErrLegacyToken)
	}
	if c.Issuer != v.issuer {
		return nil, fmt.Errorf("service-account token issuer is %q, expected %q; is it from another cluster?: %w", c.Issuer, v.issuer, ErrIssuer)
	}
	if !slices.Contains(c.Audience, v.audience) {
		return nil, fmt.Errorf("service-account token audience is %q, expected %q; set audience %q on the projected token: %w", []string(c.Audience), v.audience, v.audience, ErrAudience)
	}
	if err := v.checkTimes(c); err != nil {
		return nil, err
	}
	return identityOf(c)
}

// checkTimes applies exp, nbf and iat with the leeway, and the maximum age
// after iat. exp and iat are required: projected tokens always carry them;
// a token without exp never expires, one without iat has no age.
func (v *Verifier) checkTimes(c *claims) error {
	now := v.clock()
	if c.Expiry == nil {
		return fmt.Errorf("service-account token has no exp claim: %w", ErrClaims)
	}
	if exp := c.Expiry.Time(); now.After(exp.Add(v.leeway)) {
		return fmt.Errorf("service-account token expired at %s, %s ago; the kubelet refreshes projected tokens, so read the token file again: %w",
			stamp(exp), now.Sub(exp).Round(time.Second), ErrExpired)
	}
	if c.NotBefore != nil {
		if nbf := c.NotBefore.Time(); now.Add(v.leeway).Before(nbf) {
			return fmt.Errorf("service-account token is not valid before %s; check the clocks of flinkpki and the cluster: %w", stamp(nbf), ErrNotYetValid)
		}
	}
	if c.IssuedAt == nil {
		return errNoIssuedAt
	}
	iat := c.IssuedAt.Time()
	if now.Add(v.leeway).Before(iat) {
		return fmt.Errorf("service-account token was issued at %s, in the future; check the clocks of flinkpki and the cluster: %w", stamp(iat), ErrNotYetValid)
	}
	return checkAge(iat, now, v.maxAge, v.leeway)
}

// errNoIssuedAt refuses a token without iat: the kubelet's projected
// tokens always carry one, and without it no age bound holds.
var errNoIssuedAt = fmt.Errorf("service-account token has no iat claim; only projected service-account tokens are accepted: %w", ErrClaims)

// checkAge refuses a token issued more than maxAge (and the leeway) before
// now, whatever its exp says: a copy, not what a pod reads now.
func checkAge(iat, now time.Time, maxAge, leeway time.Duration) error {
	if now.After(lastAccepted(iat, maxAge, leeway)) {
		age := now.Sub(iat)
		return fmt.Errorf("service-account token was issued at %s, %s ago, and flinkpki takes none older than %s: the kubelet renews a pod's projected token within a day, so this is an old copy; read the token file again: %w",
			stamp(iat), age.Round(time.Minute), maxAge, ErrExpired)
	}
	return nil
}

// lastAccepted is the last moment a token issued at iat is taken, whatever
// its exp says: maxAge (and the leeway) after it.
func lastAccepted(iat time.Time, maxAge, leeway time.Duration) time.Time {
	return iat.Add(maxAge + leeway)
}

// identityOf checks that "sub" and the kubernetes.io claim agree and names
// the workload.
func identityOf(c *claims) (*Identity, error) {
	k := c.Kubernetes
	if k == nil {
		return nil, fmt.Errorf("service-account token has no kubernetes.io claim; only projected service-account tokens are accepted: %w", ErrClaims)
	}
	if k.ServiceAccount == nil || k.ServiceAccount.Name == "" {
		return nil, fmt.Errorf("service-account token's kubernetes.io claim names no service account: %w", ErrClaims)
	}
	parts := strings.Split(c.Subject, ":")
	if len(parts) != 4 || !strings.HasPrefix(c.Subject, subjectPrefix) || parts[2] == "" || parts[3] == "" {
		return nil, fmt.Errorf("service-account token subject %q is not %s<namespace>:<name>: %w", c.Subject, subjectPrefix, ErrClaims)
	}
	if parts[2] != k.Namespace || parts[3] != k.ServiceAccount.Name {
		return nil, fmt.Errorf("service-account token subject %q does not match its kubernetes.io claim (namespace %q, service account %q): %w",
			c.Subject, k.Namespace, k.ServiceAccount.Name, ErrClaims)
	}
	id := &Identity{
		Namespace:         k.Namespace,
		ServiceAccount:    k.ServiceAccount.Name,
		ServiceAccountUID: k.ServiceAccount.UID,
		Subject:           c.Subject,
		Expiry:            c.Expiry.Time(),
	}
	if k.Pod != nil {
		id.Pod, id.PodUID = k.Pod.Name, k.Pod.UID
	}
	if k.Node != nil {
		id.Node = k.Node.Name
	}
	return id, nil
}

// stamp formats a claim time for messages.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
