package kubelet

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// objectSource gives env and volume resolution read access to ConfigMaps and Secrets.
type objectSource interface {
	configMap(namespace, name string) (*corev1.ConfigMap, error)
	secret(namespace, name string) (*corev1.Secret, error)
}

// configError is a pod problem the user must fix (missing key, unsupported field); it becomes a
// CreateContainerConfigError-style waiting reason rather than a kubelet failure.
type configError struct {
	reason string
	msg    string
}

func (e *configError) Error() string { return e.msg }

func configErrorf(reason, format string, args ...any) error {
	return &configError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// buildEnv resolves a container's environment the way the kubelet does: defaults, then envFrom, then
// env in order, each value expanded with $(VAR) against what is defined so far.
func buildEnv(pod *corev1.Pod, c *corev1.Container, podIP string, base []string, src objectSource) ([]string, map[string]string, error) {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	for _, kv := range base {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, err := src.configMap(pod.Namespace, from.ConfigMapRef.Name)
			if err != nil {
				if isOptional(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, nil, configErrorf("CreateContainerConfigError", "configmap %q not found: %v", from.ConfigMapRef.Name, err)
			}
			for k, v := range cm.Data {
				set(from.Prefix+k, v)
			}
		case from.SecretRef != nil:
			s, err := src.secret(pod.Namespace, from.SecretRef.Name)
			if err != nil {
				if isOptional(from.SecretRef.Optional) {
					continue
				}
				return nil, nil, configErrorf("CreateContainerConfigError", "secret %q not found: %v", from.SecretRef.Name, err)
			}
			for k, v := range s.Data {
				set(from.Prefix+k, string(v))
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, vars))
			continue
		}
		v, ok, err := resolveEnvSource(pod, e.ValueFrom, podIP, src)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			set(e.Name, v)
		}
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vars[k])
	}
	return env, vars, nil
}

func resolveEnvSource(pod *corev1.Pod, from *corev1.EnvVarSource, podIP string, src objectSource) (string, bool, error) {
	switch {
	case from.FieldRef != nil:
		v, err := fieldValue(pod, from.FieldRef.FieldPath, podIP)
		return v, err == nil, err
	case from.ResourceFieldRef != nil:
		// No resource accounting here: report 0 so that programs reading limits see "unlimited".
		return "0", true, nil
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		cm, err := src.configMap(pod.Namespace, ref.Name)
		if err != nil {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, configErrorf("CreateContainerConfigError", "configmap %q not found: %v", ref.Name, err)
		}
		if v, ok := cm.Data[ref.Key]; ok {
			return v, true, nil
		}
		if isOptional(ref.Optional) {
			return "", false, nil
		}
		return "", false, configErrorf("CreateContainerConfigError", "couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		s, err := src.secret(pod.Namespace, ref.Name)
		if err != nil {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, configErrorf("CreateContainerConfigError", "secret %q not found: %v", ref.Name, err)
		}
		if v, ok := s.Data[ref.Key]; ok {
			return string(v), true, nil
		}
		if isOptional(ref.Optional) {
			return "", false, nil
		}
		return "", false, configErrorf("CreateContainerConfigError", "couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
	}
	return "", false, configErrorf("UnsupportedPodFeature", "unsupported env valueFrom")
}

// fieldValue answers the downward-API field paths the kubelet supports.
func fieldValue(pod *corev1.Pod, path, podIP string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		return "127.0.0.1", nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels['": pod.Labels, "metadata.annotations['": pod.Annotations} {
		if strings.HasPrefix(path, prefix) && strings.HasSuffix(path, "']") {
			return m[strings.TrimSuffix(strings.TrimPrefix(path, prefix), "']")], nil
		}
	}
	return "", configErrorf("UnsupportedPodFeature", "unsupported downward API field %q", path)
}

func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	lines := make([]string, 0, len(keys))
	for _, k := range keys {
		lines = append(lines, k+"="+strconv.Quote(m[k]))
	}
	return strings.Join(lines, "\n")
}

// expand replaces $(VAR) with the value of VAR when defined, leaves unknown references as they are and
// turns $$ into $, like Kubernetes' expansion of env, command and args.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func isOptional(p *bool) bool { return p != nil && *p }
