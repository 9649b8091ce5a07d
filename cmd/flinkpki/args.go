package main

import (
	"fmt"
	"regexp"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/issuer"
	"github.com/flinkpki/flinkpki/keystore"
)

var clusterName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// checkClusterName applies the contract's naming rule before any network
// call; the server checks it again.
func checkClusterName(name string) error {
	if !clusterName.MatchString(name) {
		return fmt.Errorf("invalid cluster name %q: use 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// requireFlag is the usage error for a required flag left empty.
func requireFlag(name, value string) error {
	if value == "" {
		return usagef("--%s is required", name)
	}
	return nil
}

// clusterFlag checks --cluster: present (usage error) and well-formed.
func clusterFlag(value string) error {
	if err := requireFlag("cluster", value); err != nil {
		return err
	}
	return checkClusterName(value)
}

// roleFlag checks --role: present and one of the known roles.
func roleFlag(value string) (issuer.Role, error) {
	if err := requireFlag("role", value); err != nil {
		return "", err
	}
	r, err := issuer.ParseRole(value)
	if err != nil {
		return "", usageError{err}
	}
	return r, nil
}

// keyTypeFlag checks --key-type; empty means the default.
func keyTypeFlag(value string) (ca.KeyType, error) {
	k, err := ca.ParseKeyType(value)
	if err != nil {
		return "", usageError{err}
	}
	return k, nil
}

// formatFlag checks --format; empty means pkcs12.
func formatFlag(value string) (keystore.Format, error) {
	f, err := keystore.ParseFormat(value)
	if err != nil {
		return "", usageError{err}
	}
	return f, nil
}

// purposeFlag checks --purpose: internal (default) or rest.
func purposeFlag(value string, allowEmpty bool) (string, error) {
	switch value {
	case "internal", "rest":
		return value, nil
	case "":
		if allowEmpty {
			return "", nil
		}
		return "internal", nil
	}
	return "", usagef("unknown purpose %q: use internal or rest", value)
}
