package kubelet

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "POD": "demo-0"}
	for in, want := range map[string]string{
		"plain":          "plain",
		"$(A)":           "1",
		"x-$(POD).peers": "x-demo-0.peers",
		"$(MISSING)":     "$(MISSING)",
		"$$(A)":          "$(A)",
		"cost $5":        "cost $5",
		"$(A":            "$(A",
		"$(A)$(POD)":     "1demo-0",
		"trailing $":     "trailing $",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBinaryForImage(t *testing.T) {
	m := DefaultImageMappings("/repo/bin")
	for image, want := range map[string]string{
		"ghcr.io/seqops/sequencer-node:v1":           "/repo/bin/node",
		"ghcr.io/seqops/sequencer-operator@sha256:1": "/repo/bin/manager",
		"busybox": "",
	} {
		got, ok := BinaryForImage(m, image)
		if got != want || ok != (want != "") {
			t.Errorf("BinaryForImage(%q) = %q, %v; want %q", image, got, ok, want)
		}
	}
}

func TestContainerArgv(t *testing.T) {
	vars := map[string]string{"ID": "n1"}
	for _, tc := range []struct {
		cmd, args, want []string
	}{
		{nil, []string{"run", "--id", "$(ID)"}, []string{"/b/node", "run", "--id", "n1"}},
		{[]string{"/node"}, []string{"run"}, []string{"/b/node", "run"}},
		{[]string{"/usr/local/bin/not-on-this-host-xyz", "run"}, nil, []string{"/b/node", "run"}},
		{[]string{"sh", "-c", "echo $(ID)"}, nil, []string{"/bin/sh", "-c", "echo n1"}},
	} {
		got, err := containerArgv(corev1.Container{Command: tc.cmd, Args: tc.args}, "/b/node", vars)
		if err != nil {
			t.Fatal(err)
		}
		if tc.want[0] == "/bin/sh" && strings.HasSuffix(got[0], "/sh") {
			got[0] = "/bin/sh"
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("containerArgv(%v, %v) = %v, want %v", tc.cmd, tc.args, got, tc.want)
		}
	}
}

type fakeObjects struct {
	cms     map[string]*corev1.ConfigMap
	secrets map[string]*corev1.Secret
}

func (f fakeObjects) configMap(ns, name string) (*corev1.ConfigMap, error) {
	if c, ok := f.cms[name]; ok {
		return c, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func (f fakeObjects) secret(ns, name string) (*corev1.Secret, error) {
	if s, ok := f.secrets[name]; ok {
		return s, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func TestBuildEnv(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "demo-1", Namespace: "ns", Labels: map[string]string{"app": "x"}}}
	src := fakeObjects{
		cms:     map[string]*corev1.ConfigMap{"cfg": {Data: map[string]string{"chain": "c1", "LEVEL": "debug"}}},
		secrets: map[string]*corev1.Secret{"sec": {Data: map[string][]byte{"token": []byte("t0k")}}},
	}
	optional := true
	c := &corev1.Container{
		EnvFrom: []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		Env: []corev1.EnvVar{
			{Name: "NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "token"}}},
			{Name: "CHAIN", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "chain"}}},
			{Name: "OPT", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k", Optional: &optional}}},
			{Name: "ADDR", Value: "$(NAME).peers:$(PORT)"},
		},
	}
	_, vars, err := buildEnv(pod, c, "10.0.0.7", []string{"PORT=7000"}, src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"PORT": "7000", "CFG_chain": "c1", "CFG_LEVEL": "debug", "NAME": "demo-1", "IP": "10.0.0.7", "APP": "x",
		"TOKEN": "t0k", "CHAIN": "c1", "ADDR": "demo-1.peers:7000"}
	if !reflect.DeepEqual(vars, want) {
		t.Errorf("env = %v, want %v", vars, want)
	}

	c.Env = append(c.Env, corev1.EnvVar{Name: "BAD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "missing"}}})
	_, _, err = buildEnv(pod, c, "10.0.0.7", nil, src)
	var ce *configError
	if !errors.As(err, &ce) || ce.reason != "CreateContainerConfigError" {
		t.Errorf("missing secret key: err = %v, want a CreateContainerConfigError", err)
	}
}

func TestHostNames(t *testing.T) {
	e := hostsEntry{namespace: "ns", hostname: "demo-0", subdomain: "peers", ip: "10.1.1.2"}
	got := hostNames(e, "ns", false)
	want := []string{"demo-0.peers.ns.svc.cluster.local", "demo-0.peers.ns.svc", "demo-0.peers.ns", "demo-0.peers"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("same namespace: %v, want %v", got, want)
	}
	if got := hostNames(e, "other", false); len(got) != 3 {
		t.Errorf("other namespace gets the short form: %v", got)
	}
	if got := hostNames(hostsEntry{hostname: "solo"}, "ns", true); !reflect.DeepEqual(got, []string{"solo"}) {
		t.Errorf("own entry without subdomain = %v", got)
	}
}

func TestCheckSupported(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}}}
	var ce *configError
	if err := checkSupported(pod); !errors.As(err, &ce) || ce.reason != "UnsupportedPodFeature" {
		t.Errorf("hostPath: %v", err)
	}
}
