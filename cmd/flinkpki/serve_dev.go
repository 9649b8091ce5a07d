package main

// What serve --dev adds: an administrator token in DIR/admin.token and a
// banner that says how to point the CLI at the server.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/internal/atomicfile"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/token"
)

// printDevBanner tells a developer the environment that points the CLI at
// this server. With --log-format json it is one JSON object like the log's,
// whatever --log-level says: a log shipper reading standard error must not
// meet plain text.
func printDevBanner(w io.Writer, o *serveOptions, addr string) {
	abs, _ := filepath.Abs(o.dataDir)
	env := fmt.Sprintf("FLINKPKI_SERVER=%s FLINKPKI_CA_FILE=%s FLINKPKI_TOKEN_FILE=%s", addr, filepath.Join(abs, "server-ca.crt"), filepath.Join(abs, "admin.token"))
	if o.logFormat == "json" {
		line, _ := json.Marshal(struct {
			Time   string `json:"time"`
			Level  string `json:"level"`
			Msg    string `json:"msg"`
			Export string `json:"export"`
		}{time.Now().Format(time.RFC3339Nano), "INFO", "flinkpki dev server on " + addr, env})
		fmt.Fprintf(w, "%s\n", line)
		return
	}
	fmt.Fprintf(w, "\nflinkpki dev server on %s. Point the CLI at it with:\n  export %s\n  %s cluster create orders\n\n", addr, env, invokedAs())
}

// invokedAs is how to run this binary again from the same directory: the
// path it was started by (bin/flinkpki under make run), or its bare name
// when it was found on the PATH.
func invokedAs() string {
	if len(os.Args) == 0 || os.Args[0] == "" {
		return "flinkpki"
	}
	return os.Args[0]
}

// refuseOutsideDev refuses to make a dev administrator token in a store
// that holds administrator tokens of its own beside the dev server's (made
// by admin bootstrap, or through such a token): a production store, or a
// copy of one, whose administrators never made a token that does not
// expire and sits in a file. The dev server's own tokens, and those made
// through them, are no reason.
func refuseOutsideDev(ctx context.Context, auth *authority.Authority) error {
	tokens, err := auth.AdminTokens(ctx)
	if err != nil {
		return err
	}
	byID := make(map[string]*store.AdminToken, len(tokens))
	for _, t := range tokens {
		byID[t.ID] = t.AdminToken
	}
	for _, t := range tokens {
		root := t.AdminToken
		if len(t.MadeWith) > 0 {
			root = byID[t.MadeWith[0]]
		}
		if root == nil || root.CreatedBy != devActor.String() {
			return fmt.Errorf("this store has administrator tokens that serve --dev did not make (%s, made by %s): serve --dev would add one that never expires, in a file; start the server without --dev and use those tokens, or give --dev a --data-dir of its own", t.ID, t.CreatedBy)
		}
	}
	return nil
}

// devActor makes the dev server's administrator token.
var devActor = authority.Actor{Kind: authority.ActorSystem, ID: "dev"}

// ensureDevAdminToken writes DIR/admin.token unless it already holds a
// token this store knows. The token does not expire, so none is made
// before the path is known to take it, and one whose file could not be
// written after all is revoked again: no start leaves a token nobody holds.
func ensureDevAdminToken(ctx context.Context, auth *authority.Authority, path string) error {
	// A start killed while it wrote the token left it beside the path.
	atomicfile.RemoveLeftovers(path)
	if raw, err := os.ReadFile(path); err == nil {
		if t, err := token.Parse(strings.TrimSpace(string(raw))); err == nil {
			if a, err := auth.Authenticate(ctx, t); err == nil && a.Kind == authority.ActorAdmin {
				return nil
			}
		}
	}
	if fi, err := os.Lstat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory: remove it, so that serve --dev can write its administrator token there", path)
	}
	if err := refuseOutsideDev(ctx, auth); err != nil {
		return err
	}
	if err := atomicfile.CheckDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("cannot write the administrator token %s: %w", path, err)
	}
	tok, rec, err := auth.CreateAdminToken(ctx, devActor, "dev", 0)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, []byte(tok), 0o600); err != nil {
		if _, rerr := auth.RevokeAdminToken(ctx, devActor, rec.ID, authority.RevokeAdminOptions{}); rerr != nil {
			return fmt.Errorf("cannot write the administrator token %s: %w; revoke token %s, which nobody holds, with flinkpki admin revoke-token", path, err, rec.ID)
		}
		return fmt.Errorf("cannot write the administrator token %s: %w (the token made for it is revoked again)", path, err)
	}
	return nil
}
