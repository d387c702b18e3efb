package kubelet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// volumeSet materialises a pod's volumes as host directories under the pod's dir. Generated volumes
// (ConfigMap, Secret, projected, downward API) are rewritten by refresh so that updates reach running
// pods; persistent volumes are the provisioner's directories under the data dir.
type volumeSet struct {
	pod     *corev1.Pod
	dir     string // <pod dir>/volumes
	podIP   string
	caCert  []byte
	client  kubernetes.Interface
	objects objectSource
	paths   map[string]string // volume name -> host path
	tokens  map[string]time.Time
}

func newVolumeSet(pod *corev1.Pod, podDir, podIP string, caCert []byte, client kubernetes.Interface, objects objectSource) *volumeSet {
	return &volumeSet{pod: pod, dir: filepath.Join(podDir, "volumes"), podIP: podIP, caCert: caCert, client: client, objects: objects,
		paths: map[string]string{}, tokens: map[string]time.Time{}}
}

// checkSupported rejects volume types the process kubelet cannot provide, before anything starts.
func checkSupported(pod *corev1.Pod) error {
	for _, v := range pod.Spec.Volumes {
		s := v.VolumeSource
		if s.EmptyDir == nil && s.ConfigMap == nil && s.Secret == nil && s.Projected == nil && s.DownwardAPI == nil && s.PersistentVolumeClaim == nil {
			return configErrorf("UnsupportedPodFeature", "volume %q: only emptyDir, configMap, secret, projected, downwardAPI and persistentVolumeClaim volumes are supported by the local process kubelet", v.Name)
		}
	}
	return nil
}

// prepare creates every volume once; it fails with a configError while a referenced object or a
// claim's binding is missing, and the caller retries.
func (vs *volumeSet) prepare(ctx context.Context) error {
	for _, v := range vs.pod.Spec.Volumes {
		p, err := vs.prepareOne(ctx, v)
		if err != nil {
			return err
		}
		vs.paths[v.Name] = p
	}
	return nil
}

// refresh rewrites generated volumes; errors are ignored (the last good content stays).
func (vs *volumeSet) refresh(ctx context.Context) {
	for _, v := range vs.pod.Spec.Volumes {
		if v.EmptyDir != nil || v.PersistentVolumeClaim != nil {
			continue
		}
		_, _ = vs.prepareOne(ctx, v)
	}
}

func (vs *volumeSet) prepareOne(ctx context.Context, v corev1.Volume) (string, error) {
	dir := filepath.Join(vs.dir, v.Name)
	s := v.VolumeSource
	switch {
	case s.EmptyDir != nil:
		return dir, os.MkdirAll(dir, 0o777)
	case s.PersistentVolumeClaim != nil:
		return vs.claimPath(ctx, s.PersistentVolumeClaim.ClaimName)
	case s.ConfigMap != nil:
		files, err := vs.configMapFiles(s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional)
		if err != nil {
			return "", err
		}
		return dir, writeVolumeFiles(dir, files, mode(s.ConfigMap.DefaultMode, 0o644))
	case s.Secret != nil:
		files, err := vs.secretFiles(s.Secret.SecretName, s.Secret.Items, s.Secret.Optional)
		if err != nil {
			return "", err
		}
		return dir, writeVolumeFiles(dir, files, mode(s.Secret.DefaultMode, 0o644))
	case s.DownwardAPI != nil:
		files, err := vs.downwardFiles(s.DownwardAPI.Items)
		if err != nil {
			return "", err
		}
		return dir, writeVolumeFiles(dir, files, mode(s.DownwardAPI.DefaultMode, 0o644))
	case s.Projected != nil:
		files := map[string][]byte{}
		for _, src := range s.Projected.Sources {
			var part map[string][]byte
			var err error
			switch {
			case src.ConfigMap != nil:
				part, err = vs.configMapFiles(src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional)
			case src.Secret != nil:
				part, err = vs.secretFiles(src.Secret.Name, src.Secret.Items, src.Secret.Optional)
			case src.DownwardAPI != nil:
				part, err = vs.downwardFiles(src.DownwardAPI.Items)
			case src.ServiceAccountToken != nil:
				part, err = vs.tokenFile(ctx, dir, src.ServiceAccountToken)
			default:
				err = configErrorf("UnsupportedPodFeature", "volume %q: unsupported projected source", v.Name)
			}
			if err != nil {
				return "", err
			}
			for k, b := range part {
				files[k] = b
			}
		}
		return dir, writeVolumeFiles(dir, files, mode(s.Projected.DefaultMode, 0o644))
	}
	return "", configErrorf("UnsupportedPodFeature", "volume %q has an unsupported type", v.Name)
}

func (vs *volumeSet) claimPath(ctx context.Context, claim string) (string, error) {
	pvc, err := vs.client.CoreV1().PersistentVolumeClaims(vs.pod.Namespace).Get(ctx, claim, metav1.GetOptions{})
	if err != nil {
		return "", configErrorf("ContainerCreating", "persistentvolumeclaim %q: %v", claim, err)
	}
	if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
		return "", configErrorf("ContainerCreating", "persistentvolumeclaim %q is not bound yet", claim)
	}
	pv, err := vs.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", configErrorf("ContainerCreating", "persistentvolume %q: %v", pvc.Spec.VolumeName, err)
	}
	var p string
	switch {
	case pv.Spec.HostPath != nil:
		p = pv.Spec.HostPath.Path
	case pv.Spec.Local != nil:
		p = pv.Spec.Local.Path
	default:
		return "", configErrorf("UnsupportedPodFeature", "persistentvolume %q is neither hostPath nor local", pv.Name)
	}
	if err := os.MkdirAll(p, 0o777); err != nil {
		return "", fmt.Errorf("cannot create volume dir %s: %w", p, err)
	}
	return p, nil
}

func (vs *volumeSet) configMapFiles(name string, items []corev1.KeyToPath, optional *bool) (map[string][]byte, error) {
	cm, err := vs.objects.configMap(vs.pod.Namespace, name)
	if err != nil {
		if isOptional(optional) {
			return nil, nil
		}
		return nil, configErrorf("CreateContainerConfigError", "configmap %q not found: %v", name, err)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return selectItems(data, items, "configmap "+name, optional)
}

func (vs *volumeSet) secretFiles(name string, items []corev1.KeyToPath, optional *bool) (map[string][]byte, error) {
	s, err := vs.objects.secret(vs.pod.Namespace, name)
	if err != nil {
		if isOptional(optional) {
			return nil, nil
		}
		return nil, configErrorf("CreateContainerConfigError", "secret %q not found: %v", name, err)
	}
	return selectItems(s.Data, items, "secret "+name, optional)
}

func selectItems(data map[string][]byte, items []corev1.KeyToPath, what string, optional *bool) (map[string][]byte, error) {
	if len(items) == 0 {
		return data, nil
	}
	out := map[string][]byte{}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if isOptional(optional) {
				continue
			}
			return nil, configErrorf("CreateContainerConfigError", "%s has no key %q", what, it.Key)
		}
		out[it.Path] = v
	}
	return out, nil
}

func (vs *volumeSet) downwardFiles(items []corev1.DownwardAPIVolumeFile) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, it := range items {
		if it.FieldRef == nil {
			out[it.Path] = []byte("0")
			continue
		}
		v, err := fieldValue(vs.pod, it.FieldRef.FieldPath, vs.podIP)
		if err != nil {
			return nil, err
		}
		out[it.Path] = []byte(v)
	}
	return out, nil
}

// tokenFile asks the API server for a bound service-account token (TokenRequest), like the kubelet's
// token manager, and renews it once 80 % of its lifetime has passed.
func (vs *volumeSet) tokenFile(ctx context.Context, dir string, src *corev1.ServiceAccountTokenProjection) (map[string][]byte, error) {
	key := dir + "/" + src.Path
	existing, readErr := os.ReadFile(filepath.Join(dir, src.Path))
	if renew, ok := vs.tokens[key]; ok && time.Now().Before(renew) && readErr == nil {
		return map[string][]byte{src.Path: existing}, nil
	}
	expiry := int64(3600)
	if src.ExpirationSeconds != nil {
		expiry = *src.ExpirationSeconds
	}
	var audiences []string
	if src.Audience != "" {
		audiences = []string{src.Audience}
	}
	sa := vs.pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	tr, err := vs.client.CoreV1().ServiceAccounts(vs.pod.Namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         audiences,
			ExpirationSeconds: &expiry,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: vs.pod.Name, UID: vs.pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, configErrorf("CreateContainerConfigError", "cannot request token for service account %s/%s: %v", vs.pod.Namespace, sa, err)
	}
	lifetime := time.Until(tr.Status.ExpirationTimestamp.Time)
	vs.tokens[key] = time.Now().Add(lifetime * 8 / 10)
	return map[string][]byte{src.Path: []byte(tr.Status.Token)}, nil
}

// writeVolumeFiles writes each file by rename so a reader never sees half a file; the volume directory
// itself stays the same inode, so the bind mount in a running container sees the new content.
func writeVolumeFiles(dir string, files map[string][]byte, perm os.FileMode) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create volume dir %s: %w", dir, err)
	}
	for name, data := range files {
		if strings.Contains(name, "..") || filepath.IsAbs(name) {
			return configErrorf("CreateContainerConfigError", "invalid volume file path %q", name)
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("cannot create %s: %w", filepath.Dir(p), err)
		}
		if old, err := os.ReadFile(p); err == nil && string(old) == string(data) {
			continue
		}
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, data, perm); err != nil {
			return fmt.Errorf("cannot write %s: %w", p, err)
		}
		if err := os.Rename(tmp, p); err != nil {
			return fmt.Errorf("cannot write %s: %w", p, err)
		}
	}
	return nil
}

func mode(m *int32, def os.FileMode) os.FileMode {
	if m == nil {
		return def
	}
	return os.FileMode(*m) & 0o777
}
