// Package deploy holds no code: it is the home of flinkpki's Kubernetes
// manifests (kubernetes/), the FlinkDeployment examples (examples/) and the
// tests that hold them to the API schemas and to the security
// recommendations, so a broken manifest fails `go test` instead of a rollout.
package deploy
