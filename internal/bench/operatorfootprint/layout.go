package operatorfootprint

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
	"github.com/seqops/sequencer-operator/controllers"
)

// replicas is the size of every benchmark cluster.
const replicas = 3

// maxClusters bounds the clusters: each gets one third octet of the loopback block.
const maxClusters = 254

// layout names the benchmark's clusters and gives each pod a loopback address 127.<block>.<cluster+1>.<ordinal+1>.
// The operator finds a pod's node API by the host name of controllers.DefaultNodeURL; the manager's private
// /etc/hosts maps that name to the pod's address, where the fake node listens.
type layout struct {
	namespace string
	clusters  int
	block     int
}

func (l layout) clusterName(i int) string { return fmt.Sprintf("seq-%03d", i) }

func (l layout) podName(i, ordinal int) string { return l.clusterName(i) + "-" + strconv.Itoa(ordinal) }

func (l layout) podIP(i, ordinal int) string {
	return fmt.Sprintf("127.%d.%d.%d", l.block, i+1, ordinal+1)
}

// host is the host name the operator dials for a pod's node API.
func (l layout) host(i, ordinal int) string {
	c := &seqv1.SequencerCluster{ObjectMeta: metav1.ObjectMeta{Name: l.clusterName(i), Namespace: l.namespace}}
	u, err := url.Parse(controllers.DefaultNodeURL(c, l.podName(i, ordinal)))
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// peerDomain is the domain under which a cluster's pod host names live.
func (l layout) peerDomain(cluster string) string {
	i, ok := l.clusterIndex(cluster)
	if !ok {
		return ""
	}
	_, domain, _ := strings.Cut(l.host(i, 0), ".")
	return domain
}

func (l layout) clusterIndex(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "seq-")
	if !ok || len(rest) != 3 {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || i >= l.clusters {
		return 0, false
	}
	return i, true
}

// podIndex parses a pod name of the layout into its cluster and ordinal.
func (l layout) podIndex(pod string) (cluster, ordinal int, ok bool) {
	j := strings.LastIndexByte(pod, '-')
	if j < 0 {
		return 0, 0, false
	}
	cluster, ok = l.clusterIndex(pod[:j])
	ordinal, err := strconv.Atoi(pod[j+1:])
	if !ok || err != nil || ordinal < 0 || ordinal >= replicas || pod[j+1:] != strconv.Itoa(ordinal) {
		return 0, 0, false
	}
	return cluster, ordinal, true
}

func (l layout) ipOfPod(pod string) (string, bool) {
	i, ord, ok := l.podIndex(pod)
	if !ok {
		return "", false
	}
	return l.podIP(i, ord), true
}

// ipOfHost resolves a pod's node API host name the way the manager's /etc/hosts does.
func (l layout) ipOfHost(host string) (string, bool) {
	pod, _, _ := strings.Cut(host, ".")
	i, ord, ok := l.podIndex(pod)
	if !ok || l.host(i, ord) != host {
		return "", false
	}
	return l.podIP(i, ord), true
}

// hostsFile is base (the host's /etc/hosts) followed by one line per pod of the layout.
func (l layout) hostsFile(base string) string {
	var b strings.Builder
	b.WriteString(strings.TrimRight(base, "\n"))
	b.WriteString("\n# operator footprint benchmark: fake node APIs\n")
	for i := range l.clusters {
		for ord := range replicas {
			fmt.Fprintf(&b, "%s\t%s\n", l.podIP(i, ord), l.host(i, ord))
		}
	}
	return b.String()
}
