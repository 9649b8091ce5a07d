// Package ca owns the certificate authorities of a Flink cluster: creating a
// root CA, loading it into a ready-to-sign Signer, and the lineage rules that
// decide when a CA may be prepared, activated and retired.
//
// Each cluster has two separate lineages, one per Purpose: the internal CA
// signs nothing but the cluster's JobManager/TaskManager mutual TLS, and the
// REST CA signs nothing but the REST proxy and its clients. Keeping them apart
// is what makes an internal leaf act as a shared secret for the cluster.
//
// The package is pure domain code. It holds no storage, transport or file
// types; time and randomness come in through Config, and every lifecycle
// decision is a pure function of the lineage, the live holders and "now", so
// tests can probe each threshold to the nanosecond.
package ca
