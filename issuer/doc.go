// Package issuer turns a request for credentials into a signed leaf: it
// checks the CSR a client sent, applies the profile of the holder's role, and
// signs through the CA's apiv1.CertificateAuthorityService.
//
// It is transport-free: the api package authenticates and authorises the
// request, this package decides what a leaf for that request looks like and
// refuses anything outside the profile.
package issuer
