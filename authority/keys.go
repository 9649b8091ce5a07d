package authority

import (
	"context"
	"crypto"
	"io"

	"github.com/flinkpki/flinkpki/ca"
)

// KeySource supplies private keys generated on the server, for bake only.
type KeySource interface {
	Key(ctx context.Context, kt ca.KeyType) (crypto.Signer, error)
	// Touch tells the source an issuance is under way: a pool refills
	// only while nothing is being issued.
	Touch()
}

type onDemandKeys struct{ rand io.Reader }

func (onDemandKeys) Touch() {}

func (o onDemandKeys) Key(ctx context.Context, kt ca.KeyType) (crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return kt.GenerateKey(o.rand)
}
