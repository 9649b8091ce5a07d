package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/credentials"
	"github.com/flinkpki/flinkpki/flinkconf"
)

// confFlags are --flink-conf-src, --flink-conf-out and --flink-conf-set,
// which init and bake share: a copy of a Flink configuration directory
// with the file set's security.ssl.* keys, and its passwords, merged in.
type confFlags struct {
	src, out string
	set      []string
	extra    []flinkconf.KV  // set, parsed
	conf     *flinkconf.Conf // the source, read by read; nil without --flink-conf-src
}

func (c *confFlags) register(cmd *cobra.Command, setHint string) {
	fl := cmd.Flags()
	fl.StringVar(&c.src, "flink-conf-src", "", "Flink configuration directory to copy (with --flink-conf-out)")
	fl.StringVar(&c.out, "flink-conf-out", "", "where to write the merged Flink configuration (with --flink-conf-src)")
	fl.StringArrayVar(&c.set, "flink-conf-set", nil, "KEY=VALUE merged into the copy too (repeat; with --flink-conf-out): "+setHint)
}

// resolve checks the flags together, and with out (the --out of the file
// set), and makes --flink-conf-out absolute, as FLINK_CONF_DIR should be.
func (c *confFlags) resolve(out string) error {
	if (c.src == "") != (c.out == "") {
		return usagef("--flink-conf-src and --flink-conf-out go together: give both or neither")
	}
	if len(c.set) > 0 && c.out == "" {
		return usagef("--flink-conf-set needs --flink-conf-src and --flink-conf-out: it merges into the copy of the configuration")
	}
	extra, err := confSetFlag(c.set)
	if err != nil {
		return err
	}
	c.extra = extra
	if c.out != "" {
		abs, err := filepath.Abs(c.out)
		if err != nil {
			return fmt.Errorf("--flink-conf-out %s: %w", c.out, err)
		}
		c.out = abs
	}
	return c.checkApart(out)
}

// checkApart refuses a file set inside the configuration source, whose
// next copy would take in the private key and store passwords as plain
// files, and a source inside the file set's directory, where it would sit
// beside the key (its hidden ..data included) in every copy of the set.
func (c *confFlags) checkApart(out string) error {
	if c.src == "" {
		return nil
	}
	if in, err := flinkconf.Within(c.out, c.src); err == nil && in {
		return usagef("--flink-conf-out %s is or lies inside --flink-conf-src %s: the next copy would take in this one; pass a directory outside it, such as an emptyDir mount", c.out, c.src)
	}
	if out == "" {
		return nil
	}
	in, err := flinkconf.Within(out, c.src)
	if err != nil {
		return fmt.Errorf("compare --out %s with --flink-conf-src %s: %w", out, c.src, err)
	}
	if in {
		return usagef("--out %s is or lies inside --flink-conf-src %s: the next copy of the configuration would take in the private key and the store passwords; write the file set outside the source", out, c.src)
	}
	if in, err = flinkconf.Within(c.src, out); err != nil {
		return fmt.Errorf("compare --flink-conf-src %s with --out %s: %w", c.src, out, err)
	}
	if in {
		return usagef("--flink-conf-src %s lies inside --out %s, the file set's own directory: keep the Flink configuration outside the credentials", c.src, out)
	}
	return nil
}

// read reads the source and trial-merges the keys the file set will carry,
// before anything is asked of the server: a wrong --flink-conf-src spends
// no token use and leaves no file set.
func (c *confFlags) read(opts credentials.Options) error {
	if c.src == "" {
		return nil
	}
	conf, err := flinkconf.ReadConf(c.src, c.out)
	if err != nil {
		return err
	}
	preview, err := credentials.PreviewSSL(opts)
	if err != nil {
		return err
	}
	if err := conf.Check(slices.Concat(preview, c.extra)); err != nil {
		return fmt.Errorf("%w: %v", flinkconf.ErrConfDir, err)
	}
	c.conf = conf
	return nil
}

// writeWithConf writes the file set into dir and, with --flink-conf-src,
// the configuration copy. The copy is staged (written to temporary files)
// before the file set replaces the old one, and put in place after it: a
// copy that cannot be written (a full disk) then changes nothing, and Flink
// never finds new stores beside the old configuration's passwords for
// longer than a few renames. Keys the copy sets to other values than its
// source did are named on stderr.
func (a *app) writeWithConf(c *confFlags, set *credentials.FileSet, dir string) error {
	var staged *flinkconf.Staged
	if c.conf != nil {
		kvs := slices.Concat(set.SSL, c.extra)
		if o := c.conf.Overrides(kvs); len(o) > 0 {
			fmt.Fprintf(a.stderr, "note: the copy of the Flink configuration replaces what %s set: %s\n", c.src, strings.Join(o, "; "))
		}
		var err error
		if staged, err = c.conf.Stage(kvs); err != nil {
			return err
		}
	}
	if err := set.Write(dir); err != nil {
		if staged != nil {
			staged.Abort()
		}
		return err
	}
	if staged != nil {
		if err := staged.Commit(); err != nil {
			return fmt.Errorf("the file set is in %s, but the Flink configuration copy in %s was not completed: %w", dir, c.out, err)
		}
	}
	return nil
}

// confKeyPattern is a Flink configuration key: dotted words of letters,
// digits, '-' and '_'.
var confKeyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9][A-Za-z0-9_-]*)*$`)

// confSetFlag parses --flink-conf-set KEY=VALUE values. The security.ssl.*
// keys are flinkpki's own (with this pod's passwords) and cannot be set, nor
// can the switches that turn TLS off for one transport.
func confSetFlag(values []string) ([]flinkconf.KV, error) {
	var out []flinkconf.KV
	seen := map[string]bool{}
	for _, v := range values {
		k, val, ok := strings.Cut(v, "=")
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		switch {
		case !ok || !confKeyPattern.MatchString(k) || val == "" || strings.ContainsAny(val, "\r\n"):
			return nil, usagef("--flink-conf-set %q: want KEY=VALUE on one line, e.g. rest.bind-address=127.0.0.1", v)
		case strings.HasPrefix(k, "security.ssl."):
			return nil, usagef("--flink-conf-set %s: the security.ssl.* keys come from the file set, with this pod's own passwords; set the others in the FlinkDeployment", k)
		case slices.Contains(flinkconf.TransportSSLKeys, k):
			return nil, usagef("--flink-conf-set %s: the copy leaves Flink's per-transport TLS switches out, so that each is on (its default) with internal SSL; a value here could only turn one off", k)
		case seen[k]:
			return nil, usagef("--flink-conf-set %s is given twice", k)
		}
		seen[k] = true
		out = append(out, flinkconf.KV{Key: k, Value: val})
	}
	return out, nil
}
