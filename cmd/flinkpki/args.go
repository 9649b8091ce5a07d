package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/issuer"
	"github.com/flinkpki/flinkpki/keystore"
)

var clusterName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// checkClusterName applies the contract's naming rule before any network
// call; the server checks it again.
func checkClusterName(name string) error {
	if !clusterName.MatchString(name) {
		return usagef("invalid cluster name %q: use 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit", name)
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

// holderFlag checks a holder name given as name (--holder, HOLDER) by the
// rule the server applies, before any network call: a name the server
// would refuse is a usage error, as a bad --cluster is, not a refusal the
// server audits.
func holderFlag(name, value string) error {
	if why := holderProblem(value); why != "" {
		return usagef("%s: %s", name, why)
	}
	return nil
}

// hostHolder checks the host name init takes as the holder name when no
// --holder is given.
func hostHolder(host string) error {
	if why := holderProblem(host); why != "" {
		return usagef("no --holder given, and the host name cannot be one: %s; pass --holder", why)
	}
	return nil
}

// holderProblem says why the server would refuse v as a holder name, or
// nothing when it would not.
func holderProblem(v string) string {
	if err := issuer.ValidateHolder(v); err != nil {
		return strings.TrimPrefix(err.Error(), issuer.ErrInvalidRequest.Error()+": ")
	}
	return ""
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

// intFlag is an integer flag with an allowed range, so a value that does not
// parse, or parses out of range, is one usage error naming the flag and the
// range instead of strconv's message.
type intFlag[T int | int32 | uint64] struct {
	v        *T
	min, max int64
}

// newIntFlag sets *v to def and returns the flag value that parses into it.
func newIntFlag[T int | int32 | uint64](v *T, def T, minimum, maximum int64) *intFlag[T] {
	*v = def
	return &intFlag[T]{v: v, min: minimum, max: maximum}
}

func (f *intFlag[T]) String() string { return strconv.FormatInt(int64(*f.v), 10) }
func (f *intFlag[T]) Type() string   { return "int" }
func (f *intFlag[T]) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < f.min || n > f.max {
		return fmt.Errorf("use a whole number from %d to %d", f.min, f.max)
	}
	*f.v = T(n)
	return nil
}
