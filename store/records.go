package store

import "time"

// Cluster is one Flink cluster and its CA policy.
type Cluster struct {
	Name         string        `json:"name"`
	KeyType      string        `json:"key_type"`
	CAValidity   time.Duration `json:"ca_validity"`
	LeafValidity time.Duration `json:"leaf_validity"`
	K8sBindings  []K8sBinding  `json:"k8s_bindings,omitempty"`
	AutoRotate   bool          `json:"auto_rotate"`
	Created      time.Time     `json:"created"`
	// Generations counts the CAs ever created per purpose, so a new CA's
	// generation never repeats one that was retired.
	Generations map[string]int `json:"generations"`
	// Epoch changes with every change of the cluster's CA lineages, so a
	// reader can tell a cached lineage is still current from this record
	// alone.
	Epoch int64 `json:"epoch"`
	// StepFence, while later than the current time, holds the issuances
	// of the lineage StepFencePurpose back: a rotation step whose commit
	// kept losing to them (on etcd each changes the holders the step
	// reads) sets it, and the step's own commit clears it. It lapses by
	// itself when the replica that set it stops first. An older flinkpki
	// ignores it.
	StepFence        time.Time `json:"step_fence,omitzero"`
	StepFencePurpose string    `json:"step_fence_purpose,omitempty"`
}

// K8sBinding allows pods running as ServiceAccount in Namespace to enroll,
// as the roles in Roles (sorted), or as any a pod may when it is empty.
type K8sBinding struct {
	Namespace      string   `json:"namespace"`
	ServiceAccount string   `json:"service_account"`
	Roles          []string `json:"roles,omitempty"`
}

// SameAccount reports whether b and o bind the same service account,
// whatever their roles: a service account binds one cluster, once.
func (b K8sBinding) SameAccount(o K8sBinding) bool {
	return b.Namespace == o.Namespace && b.ServiceAccount == o.ServiceAccount
}

// CA is one CA of a cluster's lineage. Key holds the PKCS#8 private key in
// memory only; the store seals it with the key-encryption key before it is
// written and opens it when read.
type CA struct {
	Cluster    string    `json:"cluster"`
	ID         string    `json:"id"`
	Purpose    string    `json:"purpose"`
	Generation int       `json:"generation"`
	State      string    `json:"state"`
	CertDER    []byte    `json:"cert"`
	Key        []byte    `json:"-"`
	SealedKey  []byte    `json:"sealed_key"`
	Created    time.Time `json:"created"`
	Activated  time.Time `json:"activated,omitzero"`
	Retiring   time.Time `json:"retiring,omitzero"`
}

// Holder is the latest issuance to one process (a pod) for one purpose.
type Holder struct {
	Cluster  string    `json:"cluster"`
	Purpose  string    `json:"purpose"`
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
	SignedBy string    `json:"signed_by"`
	Trusts   []string  `json:"trusts"`
	Issued   time.Time `json:"issued"`
	Actor    string    `json:"actor,omitempty"`
}

// Token is an enrollment token. Only the hash of its secret is stored.
type Token struct {
	ID       string    `json:"id"`
	Hash     []byte    `json:"hash"`
	Cluster  string    `json:"cluster"`
	Role     string    `json:"role"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	UsesLeft int       `json:"uses_left"`
	// ClusterCreated is the creation time of the cluster the token was
	// made for: a cluster deleted and created again under the same name is
	// another cluster, which the token must not open.
	ClusterCreated time.Time `json:"cluster_created,omitzero"`
	// MadeWith lists the administrator tokens the token was made through,
	// its maker last (empty for one made otherwise, or before flinkpki
	// recorded it): revoking any of them with the tokens made through it
	// revokes this one too.
	MadeWith []string `json:"made_with,omitempty"`
}

// AdminToken is an administrator token. Only the hash of its secret is stored.
type AdminToken struct {
	ID      string    `json:"id"`
	Hash    []byte    `json:"hash"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Expires is when the token stops authenticating; zero: never.
	Expires time.Time `json:"expires,omitzero"`
	// CreatedBy is the actor that made the token ("admin:ID" for one made
	// with another administrator token, "system:bootstrap", ...).
	CreatedBy string `json:"created_by,omitempty"`
	// MadeWith lists the administrator tokens this one was made through,
	// its maker last: revoking any of them with the tokens made through it
	// revokes this one.
	MadeWith []string `json:"made_with,omitempty"`
	// Revoked is when the token was revoked; zero while it is not. A
	// revoked token's record stays, without its hash, so that the tokens
	// made through it can be judged by it.
	Revoked time.Time `json:"revoked,omitzero"`
	// RevokedMade says the revocation took the tokens made through it too:
	// every token whose MadeWith names this one is refused.
	RevokedMade bool `json:"revoked_made,omitempty"`
	// RevokedMadeAt is when RevokedMade was set (a token revoked alone
	// first may be revoked with its made tokens later); zero in records
	// from before flinkpki recorded it, where Revoked tells.
	RevokedMadeAt time.Time `json:"revoked_made_at,omitzero"`
}

// AuditEntry is one link of the append-only, hash-chained audit trail.
type AuditEntry struct {
	Seq     uint64            `json:"seq"`
	Time    time.Time         `json:"time"`
	Actor   string            `json:"actor"`
	Cluster string            `json:"cluster,omitempty"`
	Action  string            `json:"action"`
	Outcome string            `json:"outcome"`
	Reason  string            `json:"reason,omitempty"`
	Details map[string]string `json:"details,omitempty"`
	Prev    string            `json:"prev"`
	Hash    string            `json:"hash"`
}
