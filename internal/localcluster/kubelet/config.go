// Package kubelet is the process kubelet of the local cluster: a virtual-kubelet provider that runs each
// pod's containers as local processes, each pod in its own network namespace and each container in a
// private mount namespace with the pod's volumes bind-mounted at their mount paths.
package kubelet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// ImageMapping maps container images to local binaries: an image whose full reference matches Pattern
// runs Binary. In Pattern, * matches any run of characters (slashes included) and ? any one character,
// so "*sequencer-node*" matches "ghcr.io/seqops/sequencer-node:v1".
type ImageMapping struct {
	Pattern string `json:"pattern"`
	Binary  string `json:"binary"`
}

// DefaultImageMappings maps the project's two images to the binaries `make build` writes to binDir.
func DefaultImageMappings(binDir string) []ImageMapping {
	return []ImageMapping{
		{Pattern: "*sequencer-node*", Binary: filepath.Join(binDir, "node")},
		{Pattern: "*sequencer-operator*", Binary: filepath.Join(binDir, "manager")},
	}
}

// BinaryForImage returns the binary of the first mapping that matches image.
func BinaryForImage(mappings []ImageMapping, image string) (string, bool) {
	for _, m := range mappings {
		if globMatch(m.Pattern, image) {
			return m.Binary, true
		}
	}
	return "", false
}

func globMatch(pattern, s string) bool {
	var b strings.Builder
	b.WriteString("^")
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	return err == nil && re.MatchString(s)
}

// Config is everything the kubelet process needs; localcluster writes it as JSON and starts
// `localcluster kubelet --config <file>`.
type Config struct {
	NodeName   string `json:"nodeName"`
	Kubeconfig string `json:"kubeconfig"`
	// Dir holds pod records, logs, generated volume contents and hosts files.
	Dir string `json:"dir"`
	// VolumesDir holds the data of provisioned persistent volumes; it outlives pods.
	VolumesDir string `json:"volumesDir"`

	Bridge      string `json:"bridge"`
	PodCIDR     string `json:"podCIDR"`
	Gateway     string `json:"gateway"`
	NetnsPrefix string `json:"netnsPrefix"`

	// APIServerHostPort is where the API server listens on loopback; the kubelet forwards
	// Gateway:APIServerPort to it so that pods (which cannot reach the host's loopback) can use
	// in-cluster config.
	APIServerHostPort string `json:"apiServerHostPort"`
	APIServerPort     int    `json:"apiServerPort"`
	CACert            string `json:"caCert"`

	// ListenAddr is the kubelet API (logs, exec), on loopback, served with ServingCert/ServingKey.
	ListenAddr  string `json:"listenAddr"`
	ServingCert string `json:"servingCert"`
	ServingKey  string `json:"servingKey"`

	// Launcher is the binary whose hidden `launch` command enters a pod's namespaces and execs a
	// container; normally the localcluster binary itself.
	Launcher string         `json:"launcher"`
	Images   []ImageMapping `json:"images"`

	// RestartBackoffBase and RestartBackoffMax bound the crash-loop back-off. They are shorter than the
	// real kubelet's 10 s / 5 min so that tests that kill processes finish quickly.
	RestartBackoffBase Duration `json:"restartBackoffBase"`
	RestartBackoffMax  Duration `json:"restartBackoffMax"`
	// DieWithParent kills pod processes when the kubelet dies, so no orphan survives a crash.
	DieWithParent bool `json:"dieWithParent"`
}

// Duration is a time.Duration that reads and writes as a string ("1s") in JSON.
type Duration struct{ time.Duration }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// LoadConfig reads a Config written by WriteConfig.
func LoadConfig(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read kubelet config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("cannot decode kubelet config %s: %w", file, err)
	}
	if c.RestartBackoffBase.Duration == 0 {
		c.RestartBackoffBase.Duration = time.Second
	}
	if c.RestartBackoffMax.Duration == 0 {
		c.RestartBackoffMax.Duration = 30 * time.Second
	}
	return &c, nil
}

// WriteConfig writes c as JSON to file.
func WriteConfig(file string, c *Config) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode kubelet config: %w", err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		return fmt.Errorf("cannot write kubelet config: %w", err)
	}
	return nil
}
