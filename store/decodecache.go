package store

import (
	"bytes"
	"maps"
	"slices"
	"sync"
)

// maxDecoded bounds each decode cache. A hot record (the token a starting
// cluster's pods share, the cluster they enroll in) stays in it; when it is
// full an arbitrary entry makes room.
const maxDecoded = 1024

// decodeCache remembers the last decoded value of one bucket's records
// together with the exact bytes it was decoded from. A read whose stored
// bytes equal the remembered ones takes a copy of the value instead of
// decoding again, so it can never return anything but what decoding those
// bytes would: a change by another transaction, replica or process changes
// the bytes, and a write that is rolled back leaves bytes nobody reads.
// Every enrollment reads its token, its cluster and the administrator
// tokens its token was made through twice (to authorize, then to re-check
// inside the commit); this spares most of those decodes.
type decodeCache[T any] struct {
	clone func(*T) *T // a deep copy: callers may change what they get

	mu sync.Mutex
	m  map[string]decoded[T]
}

type decoded[T any] struct {
	raw []byte
	v   *T
}

func newDecodeCache[T any](clone func(*T) *T) *decodeCache[T] {
	return &decodeCache[T]{clone: clone, m: make(map[string]decoded[T])}
}

// lookup returns a copy of the value decoded from raw, if it is remembered.
func (c *decodeCache[T]) lookup(key string, raw []byte) (*T, bool) {
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if !ok || !bytes.Equal(e.raw, raw) {
		return nil, false
	}
	return c.clone(e.v), true
}

// remember records that raw decodes to v. raw must not change afterwards
// and v must not be shared with a caller.
func (c *decodeCache[T]) remember(key string, raw []byte, v *T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= maxDecoded {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[key] = decoded[T]{raw: raw, v: v}
}

// getCached reads and decodes one record through c.
func getCached[T any](t *Txn, c *decodeCache[T], bucket []byte, key string) (*T, error) {
	raw := t.tx.Get(bucket, []byte(key))
	if raw == nil {
		return nil, ErrNotFound
	}
	if v, ok := c.lookup(key, raw); ok {
		return v, nil
	}
	v := new(T)
	if err := decode(bucket, key, raw, v); err != nil {
		return nil, err
	}
	// raw belongs to the transaction; the cache keeps its own copy.
	c.remember(key, bytes.Clone(raw), c.clone(v))
	return v, nil
}

// putCached encodes and writes one record and remembers it in c.
func putCached[T any](t *Txn, c *decodeCache[T], bucket []byte, key string, v *T) error {
	raw, err := t.write(bucket, key, v)
	if err != nil {
		return err
	}
	c.remember(key, raw, c.clone(v))
	return nil
}

func cloneToken(t *Token) *Token {
	c := *t
	c.Hash = slices.Clone(t.Hash)
	c.MadeWith = slices.Clone(t.MadeWith)
	return &c
}

func cloneAdminToken(t *AdminToken) *AdminToken {
	c := *t
	c.Hash = slices.Clone(t.Hash)
	c.MadeWith = slices.Clone(t.MadeWith)
	return &c
}

func cloneCluster(cl *Cluster) *Cluster {
	c := *cl
	c.K8sBindings = slices.Clone(cl.K8sBindings)
	for i := range c.K8sBindings {
		c.K8sBindings[i].Roles = slices.Clone(c.K8sBindings[i].Roles)
	}
	c.Generations = maps.Clone(cl.Generations)
	return &c
}
