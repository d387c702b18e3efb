package kubelet

import (
	"context"
	"sort"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// watchServiceNames keeps the Service part of every pod's /etc/hosts in step with the EndpointSlices:
// <svc>.<ns> names the addresses of the Service's ready endpoints.
func watchServiceNames(ctx context.Context, client kubernetes.Interface, hosts *hostsTable) error {
	factory := informers.NewSharedInformerFactory(client, 30*time.Second)
	inf := factory.Discovery().V1().EndpointSlices()
	changed := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    poke,
		UpdateFunc: func(_, o any) { poke(o) },
		DeleteFunc: poke,
	}); err != nil {
		return err
	}
	lister := inf.Lister()
	factory.Start(ctx.Done())
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			slices, err := lister.List(labels.Everything())
			if err != nil {
				continue
			}
			hosts.setServices(serviceAddresses(slices))
		}
	}()
	return nil
}

func serviceAddresses(slices []*discoveryv1.EndpointSlice) map[string][]string {
	sets := map[string]map[string]bool{}
	for _, s := range slices {
		svc := s.Labels[discoveryv1.LabelServiceName]
		if svc == "" || s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		key := svc + "." + s.Namespace
		if sets[key] == nil {
			sets[key] = map[string]bool{}
		}
		for _, ep := range s.Endpoints {
			// Ready is nil for "unknown", which counts as ready; publishNotReadyAddresses Services
			// have every endpoint marked ready by the EndpointSlice controller.
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				sets[key][a] = true
			}
		}
	}
	out := map[string][]string{}
	for k, set := range sets {
		if len(set) == 0 {
			continue
		}
		ips := make([]string, 0, len(set))
		for ip := range set {
			ips = append(ips, ip)
		}
		sort.Strings(ips)
		out[k] = ips
	}
	return out
}
