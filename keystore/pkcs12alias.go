package keystore

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"hash"
	"unicode/utf16"
)

// The ASN.1 shapes of RFC 7292 that the alias edit needs. RawValue fields
// keep everything this file does not touch byte for byte.
type p12PFX struct {
	Version  int
	AuthSafe p12ContentInfo
	MacData  p12MacData `asn1:"optional"`
}

type p12ContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
}

type p12MacData struct {
	Mac        p12DigestInfo
	MacSalt    []byte
	Iterations int `asn1:"optional,default:1"`
}

type p12DigestInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Digest    []byte
}

type p12SafeBag struct {
	ID         asn1.ObjectIdentifier
	Value      asn1.RawValue  `asn1:"tag:0,explicit"`
	Attributes []p12Attribute `asn1:"set,optional"`
}

type p12Attribute struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue `asn1:"set"`
}

var (
	oidP12Data          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidP12KeyBag        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 1}
	oidP12ShroudedKey   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	oidP12FriendlyName  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 20}
	oidSHA1             = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	errNoUnencryptedKey = fmt.Errorf("%w: PKCS#12 file has no key bag outside encrypted content", ErrMalformed)
)

func unmarshalAll(b []byte, v any) error {
	rest, err := asn1.Unmarshal(b, v)
	if err != nil {
		return fmt.Errorf("%w: PKCS#12 structure: %v", ErrMalformed, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: PKCS#12 structure has trailing data", ErrMalformed)
	}
	return nil
}

func isKeyBag(b p12SafeBag) bool { return b.ID.Equal(oidP12ShroudedKey) || b.ID.Equal(oidP12KeyBag) }

// p12Walk calls fn with the bags of every unencrypted SafeContents of pfx.
// When fn reports a change, the SafeContents is re-encoded in place.
func p12Walk(pfx *p12PFX, fn func(bags []p12SafeBag) (bool, error)) (authSafe []byte, err error) {
	if err := unmarshalAll(pfx.AuthSafe.Content.Bytes, &authSafe); err != nil {
		return nil, err
	}
	var infos []p12ContentInfo
	if err := unmarshalAll(authSafe, &infos); err != nil {
		return nil, err
	}
	changed := false
	for i := range infos {
		if !infos[i].ContentType.Equal(oidP12Data) {
			continue
		}
		var contents []byte
		if err := unmarshalAll(infos[i].Content.Bytes, &contents); err != nil {
			return nil, err
		}
		var bags []p12SafeBag
		if err := unmarshalAll(contents, &bags); err != nil {
			return nil, err
		}
		mod, err := fn(bags)
		if err != nil || !mod {
			if err != nil {
				return nil, err
			}
			continue
		}
		if contents, err = asn1.Marshal(bags); err != nil {
			return nil, err
		}
		if infos[i].Content.Bytes, err = asn1.Marshal(contents); err != nil {
			return nil, err
		}
		infos[i].Content.FullBytes = nil
		changed = true
	}
	if !changed {
		return authSafe, nil
	}
	return asn1.Marshal(infos)
}

// setPKCS12KeyAlias adds a friendlyName attribute to the key bag of a
// go-pkcs12 keystore and recomputes the MAC with the same salt and
// iteration count.
func setPKCS12KeyAlias(der []byte, alias, password string) ([]byte, error) {
	var pfx p12PFX
	if err := unmarshalAll(der, &pfx); err != nil {
		return nil, err
	}
	name, err := friendlyNameAttribute(alias)
	if err != nil {
		return nil, err
	}
	found := 0
	authSafe, err := p12Walk(&pfx, func(bags []p12SafeBag) (bool, error) {
		mod := false
		for i := range bags {
			if isKeyBag(bags[i]) {
				bags[i].Attributes = append(bags[i].Attributes, name)
				found++
				mod = true
			}
		}
		return mod, nil
	})
	if err != nil {
		return nil, err
	}
	if found != 1 {
		return nil, errNoUnencryptedKey
	}
	if pfx.AuthSafe.Content.Bytes, err = asn1.Marshal(authSafe); err != nil {
		return nil, err
	}
	pfx.AuthSafe.Content.FullBytes = nil
	if pfx.MacData.Mac.Digest, err = pkcs12MAC(pfx.MacData, authSafe, password); err != nil {
		return nil, err
	}
	return asn1.Marshal(pfx)
}

// pkcs12KeyAlias returns the friendlyName of the keystore's key bag, or ""
// when it has none.
func pkcs12KeyAlias(der []byte) (string, error) {
	var pfx p12PFX
	if err := unmarshalAll(der, &pfx); err != nil {
		return "", err
	}
	alias := ""
	_, err := p12Walk(&pfx, func(bags []p12SafeBag) (bool, error) {
		for _, b := range bags {
			if !isKeyBag(b) {
				continue
			}
			for _, a := range b.Attributes {
				if a.ID.Equal(oidP12FriendlyName) {
					alias = decodeBMPAttribute(a.Value.Bytes)
				}
			}
		}
		return false, nil
	})
	return alias, err
}

func friendlyNameAttribute(alias string) (p12Attribute, error) {
	u := utf16.Encode([]rune(alias))
	bmp := make([]byte, 2*len(u))
	for i, c := range u {
		binary.BigEndian.PutUint16(bmp[2*i:], c)
	}
	inner, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagBMPString, Bytes: bmp})
	if err != nil {
		return p12Attribute{}, err
	}
	return p12Attribute{
		ID:    oidP12FriendlyName,
		Value: asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: inner},
	}, nil
}

func decodeBMPAttribute(b []byte) string {
	var v asn1.RawValue
	if _, err := asn1.Unmarshal(b, &v); err != nil || v.Tag != asn1.TagBMPString || len(v.Bytes)%2 != 0 {
		return ""
	}
	u := make([]uint16, len(v.Bytes)/2)
	for i := range u {
		u[i] = binary.BigEndian.Uint16(v.Bytes[2*i:])
	}
	return string(utf16.Decode(u))
}

// bmpPassword encodes a password as PKCS#12 wants it: UTF-16BE with a
// terminating zero.
func bmpPassword(s string) []byte {
	u := utf16.Encode([]rune(s))
	out := make([]byte, 2*len(u)+2)
	for i, c := range u {
		binary.BigEndian.PutUint16(out[2*i:], c)
	}
	return out
}

func pkcs12MAC(md p12MacData, message []byte, password string) ([]byte, error) {
	var newHash func() hash.Hash
	switch alg := md.Mac.Algorithm.Algorithm; {
	case alg.Equal(oidSHA1):
		newHash = sha1.New
	case alg.Equal(oidSHA256):
		newHash = sha256.New
	default:
		return nil, fmt.Errorf("%w: PKCS#12 MAC algorithm %s is not supported", ErrMalformed, alg)
	}
	key := pkcs12KDF(newHash, md.MacSalt, bmpPassword(password), md.Iterations, 3, newHash().Size())
	m := hmac.New(newHash, key)
	m.Write(message)
	return m.Sum(nil), nil
}

// pkcs12KDF is the key derivation of RFC 7292, appendix B.2.
func pkcs12KDF(newHash func() hash.Hash, salt, password []byte, iterations int, id byte, size int) []byte {
	h := newHash()
	u, v := h.Size(), h.BlockSize()
	d := make([]byte, v)
	for i := range d {
		d[i] = id
	}
	fill := func(p []byte) []byte {
		if len(p) == 0 {
			return nil
		}
		out := make([]byte, v*((len(p)+v-1)/v))
		for i := range out {
			out[i] = p[i%len(p)]
		}
		return out
	}
	in := append(fill(salt), fill(password)...)
	var out []byte
	for len(out) < size {
		h.Reset()
		h.Write(d)
		h.Write(in)
		a := h.Sum(nil)
		for j := 1; j < iterations; j++ {
			h.Reset()
			h.Write(a)
			a = h.Sum(a[:0])
		}
		out = append(out, a...)
		if len(out) >= size {
			break
		}
		b := make([]byte, v)
		for i := range b {
			b[i] = a[i%u]
		}
		for j := 0; j < len(in); j += v {
			addOne(in[j:j+v], b)
		}
	}
	return out[:size]
}

// addOne sets block = (block + b + 1) mod 2^(8*len(block)).
func addOne(block, b []byte) {
	carry := 1
	for i := len(block) - 1; i >= 0; i-- {
		s := int(block[i]) + int(b[i]) + carry
		block[i] = byte(s)
		carry = s >> 8
	}
}
