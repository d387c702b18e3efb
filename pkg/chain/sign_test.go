package chain

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "signing.pem")
	pub, err := GenerateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v, %v", fi.Mode(), err)
	}
	key, err := LoadSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(NewSigner(key).PublicKey(), pub) {
		t.Fatal("loaded key does not match the generated public key")
	}
	before, _ := os.ReadFile(path)
	if _, err := GenerateKeyFile(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("GenerateKeyFile over an existing file = %v, want ErrExist", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("existing key file was modified")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}

	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	tests := []struct {
		name    string
		content []byte
	}{
		{"empty", nil},
		{"not PEM", []byte("hello")},
		{"wrong PEM type", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}})},
		{"bad DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})},
		{"not ed25519", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "key.pem")
			os.WriteFile(p, tt.content, 0o600)
			if _, err := LoadSigningKey(p); err == nil || !strings.Contains(err.Error(), p) {
				t.Fatalf("LoadSigningKey = %v, want an error naming %s", err, p)
			}
		})
	}
	missing := filepath.Join(dir, "missing.pem")
	if _, err := LoadSigningKey(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("LoadSigningKey(missing) = %v", err)
	}
}

func TestVerifyBlockSignature(t *testing.T) {
	b := sampleBlock(t)
	trusted := b.Header.Proposer
	if err := VerifyBlockSignature(b, trusted); err != nil {
		t.Fatal(err)
	}
	if err := VerifyBlockSignature(b, newSigner(t).PublicKey()); err == nil {
		t.Fatal("verified against another key")
	}
	if err := VerifyBlockSignature(b, nil); err == nil {
		t.Fatal("verified against no key")
	}
	if err := VerifyBlockSignature(nil, trusted); err == nil {
		t.Fatal("verified nil block")
	}
}
