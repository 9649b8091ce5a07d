package keystore

import (
	"encoding/asn1"
	"encoding/binary"
	"fmt"
)

const (
	jksMagic       = 0xfeedfeed
	jksDigestLen   = 20
	jksTagKey      = 1
	jksTagTrusted  = 2
	jksProtectOver = 40 // salt and check digest around an encrypted key
)

// jksScanner walks a JKS file without trusting any length field: each one
// is checked against the bytes that remain.
type jksScanner struct {
	data    []byte
	off     int
	version uint64
}

func (s *jksScanner) take(n uint64) ([]byte, error) {
	if n > uint64(len(s.data)-s.off) {
		return nil, fmt.Errorf("%w: JKS field of %d bytes runs past the end of the file", ErrMalformed, n)
	}
	b := s.data[s.off : s.off+int(n)]
	s.off += int(n)
	return b, nil
}

func (s *jksScanner) u16() (uint64, error) {
	b, err := s.take(2)
	if err != nil {
		return 0, err
	}
	return uint64(binary.BigEndian.Uint16(b)), nil
}

func (s *jksScanner) u32() (uint64, error) {
	b, err := s.take(4)
	if err != nil {
		return 0, err
	}
	return uint64(binary.BigEndian.Uint32(b)), nil
}

func (s *jksScanner) sized(lenBytes int) ([]byte, error) {
	var n uint64
	var err error
	if lenBytes == 2 {
		n, err = s.u16()
	} else {
		n, err = s.u32()
	}
	if err != nil {
		return nil, err
	}
	return s.take(n)
}

func (s *jksScanner) cert() error {
	if s.version == 2 {
		if _, err := s.sized(2); err != nil {
			return err
		}
	}
	_, err := s.sized(4)
	return err
}

func (s *jksScanner) entry() error {
	tag, err := s.u32()
	if err != nil {
		return err
	}
	if _, err := s.sized(2); err != nil { // alias
		return err
	}
	if _, err := s.take(8); err != nil { // creation time
		return err
	}
	switch tag {
	case jksTagTrusted:
		return s.cert()
	case jksTagKey:
		key, err := s.sized(4)
		if err != nil {
			return err
		}
		if err := checkProtectedKey(key); err != nil {
			return err
		}
		n, err := s.u32()
		if err != nil {
			return err
		}
		for i := uint64(0); i < n; i++ {
			if err := s.cert(); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w: JKS entry has unknown tag %d", ErrMalformed, tag)
}

// checkProtectedKey makes sure keystore-go's key protector can slice the
// encrypted key without going out of bounds.
func checkProtectedKey(b []byte) error {
	var info struct {
		Algo       asn1.RawValue
		PrivateKey []byte
	}
	rest, err := asn1.Unmarshal(b, &info)
	if err != nil || len(rest) != 0 || len(info.PrivateKey) < jksProtectOver {
		return fmt.Errorf("%w: JKS private key entry is not a protected key", ErrMalformed)
	}
	return nil
}

// scanJKS validates a JKS file's framing.
func scanJKS(data []byte) error {
	s := &jksScanner{data: data}
	magic, err := s.u32()
	if err != nil || magic != jksMagic {
		return fmt.Errorf("%w: not a JKS file (bad magic number)", ErrMalformed)
	}
	if s.version, err = s.u32(); err != nil || (s.version != 1 && s.version != 2) {
		return fmt.Errorf("%w: unsupported JKS version", ErrMalformed)
	}
	n, err := s.u32()
	if err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		if err := s.entry(); err != nil {
			return err
		}
	}
	if len(data)-s.off != jksDigestLen {
		return fmt.Errorf("%w: JKS file has %d bytes after its entries, want a %d-byte digest",
			ErrMalformed, len(data)-s.off, jksDigestLen)
	}
	return nil
}
