package chain

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/seqops/sequencer-operator/pkg/chain/chainpb"
)

// Signer signs blocks with the sequencer key shared by all cluster members.
type Signer struct {
	key ed25519.PrivateKey
	pub ed25519.PublicKey
}

// NewSigner returns a Signer for key. It panics if key is not an ed25519
// private key of the right length: keys come from LoadSigningKey, which
// checks them, so a bad key here is a programming error.
func NewSigner(key ed25519.PrivateKey) *Signer {
	if len(key) != ed25519.PrivateKeySize {
		panic(fmt.Sprintf("chain: NewSigner: ed25519 private key has %d bytes, want %d", len(key), ed25519.PrivateKeySize))
	}
	pub, _ := key.Public().(ed25519.PublicKey)
	return &Signer{key: key, pub: pub}
}

// PublicKey returns the signer's public key, the value that Sign writes into
// header.proposer.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.pub }

// Sign sets b.Header.Proposer to the signer's public key and b.Signature to
// the signature over BlockHash(b). Proposer is set first because it is part
// of the signed header. A nil header is created.
func (s *Signer) Sign(b *chainpb.Block) {
	if b == nil {
		return
	}
	if b.Header == nil {
		b.Header = &chainpb.Header{}
	}
	b.Header.Proposer = append([]byte(nil), s.pub...)
	b.Signature = ed25519.Sign(s.key, BlockHash(b))
}

// VerifyBlockSignature checks that b was signed by trusted: header.proposer
// must be trusted and the signature must verify over the block hash.
func VerifyBlockSignature(b *chainpb.Block, trusted ed25519.PublicKey) error {
	switch {
	case b == nil || b.Header == nil:
		return errors.New("block has no header")
	case len(trusted) != ed25519.PublicKeySize:
		return fmt.Errorf("trusted proposer key has %d bytes, want %d", len(trusted), ed25519.PublicKeySize)
	case !bytes.Equal(b.Header.Proposer, trusted):
		return fmt.Errorf("proposer %x is not the trusted sequencer key %x", b.Header.Proposer, []byte(trusted))
	case len(b.Signature) != ed25519.SignatureSize:
		return fmt.Errorf("signature has %d bytes, want %d", len(b.Signature), ed25519.SignatureSize)
	}
	hash := BlockHash(b)
	if hash == nil {
		return errors.New("header cannot be encoded")
	}
	if !ed25519.Verify(trusted, hash, b.Signature) {
		return errors.New("signature does not verify with the trusted sequencer key")
	}
	return nil
}

// GenerateKeyFile creates a new ed25519 key and writes it to path as a PKCS#8
// PEM file with mode 0600. It refuses to overwrite an existing file, because
// replacing the sequencer key would make every member reject new blocks. The
// file appears atomically (written aside, synced, then hard-linked into
// place), so a crash never leaves a half-written key at path.
func GenerateKeyFile(path string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cannot generate signing key for %s: %w", path, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("cannot encode signing key for %s: %w", path, err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})

	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("cannot create signing key file %s: %w", path, os.ErrExist)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("cannot create signing key file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // the link below keeps the content under path
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("cannot create signing key file %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("cannot write signing key file %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("cannot sync signing key file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("cannot write signing key file %s: %w", path, err)
	}
	// Link fails if path exists, closing the race with a concurrent writer.
	if err := os.Link(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("cannot create signing key file %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: make the new directory entry durable
		d.Close()
	}
	return pub, nil
}

// LoadSigningKey reads an ed25519 private key from a PKCS#8 PEM file, as
// written by GenerateKeyFile or `openssl genpkey -algorithm ed25519`. Every
// error names the file.
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read signing key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("cannot load signing key %s: no PEM block found", path)
	}
	if block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("cannot load signing key %s: PEM block is %q, want \"PRIVATE KEY\" (PKCS#8)", path, block.Type)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("cannot load signing key %s: %w", path, err)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("cannot load signing key %s: key is %T, want ed25519", path, parsed)
	}
	return key, nil
}
