// Command istio-xds-routes asks istiod, over plaintext xDS, what it would send a sidecar of one
// namespace, and prints one JSON line per push: the RDS route configurations (as protojson of
// envoy.config.route.v3.RouteConfiguration) and every cluster with its EDS endpoints.
//
//	istio-xds-routes --xds 127.0.0.1:15010 --namespace bookinfo [--once]
//
// It subscribes as Envoy does (CDS and LDS wildcard, then EDS for the EDS clusters and RDS for
// the route names the listeners' HTTP connection managers refer to), ACKs every response, and
// prints once a push has settled (no response for --settle). TCP routes live in listeners, not
// in RDS: each service listener's tcp_proxy is printed as a tcpRoute. With --once it prints the
// first complete snapshot and exits. It only talks to the given address; it never dials an
// endpoint.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	// Registers every Envoy and Istio filter type, so that protojson can print the typed
	// configs (fault injection, for one) inside a route configuration.
	_ "istio.io/istio/pkg/config/xds"
	"istio.io/istio/pkg/version"
)

const (
	typePrefix   = "type.googleapis.com/"
	listenerType = typePrefix + "envoy.config.listener.v3.Listener"
	clusterType  = typePrefix + "envoy.config.cluster.v3.Cluster"
	endpointType = typePrefix + "envoy.config.endpoint.v3.ClusterLoadAssignment"
	routeType    = typePrefix + "envoy.config.route.v3.RouteConfiguration"
)

type options struct {
	xds, namespace, name, ip, clusterID string
	proxyType, labels                   string
	once, verbose                       bool
	timeout, settle                     time.Duration
}

func parseOptions() options {
	var o options
	flag.StringVar(&o.xds, "xds", "", "istiod's plaintext xDS address, host:port (required)")
	flag.StringVar(&o.namespace, "namespace", "default", "namespace of the sidecar istiod generates for")
	flag.StringVar(&o.name, "name", "istio-xds-routes", "pod name in the node ID")
	flag.StringVar(&o.ip, "ip", "127.0.0.1", "IP in the node ID (an identity only; nothing dials it)")
	flag.StringVar(&o.clusterID, "cluster-id", "Kubernetes", "CLUSTER_ID metadata")
	flag.StringVar(&o.proxyType, "proxy-type", "sidecar", "sidecar, or router for an ingress gateway's proxy")
	flag.StringVar(&o.labels, "labels", "", "the proxy's labels, k=v,k=v (a gateway's select the Gateways it serves); default app=<name>")
	flag.BoolVar(&o.once, "once", false, "print the first complete snapshot and exit")
	flag.BoolVar(&o.verbose, "v", false, "log every response to stderr")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "with --once: give up after this long")
	flag.DurationVar(&o.settle, "settle", 50*time.Millisecond, "quiet time that ends a push")
	showVersion := flag.Bool("version", false, "print the Istio version this was built from")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Info.Version)
		os.Exit(0)
	}
	if o.xds == "" {
		fmt.Fprintln(os.Stderr, "istio-xds-routes: --xds is required")
		os.Exit(2)
	}
	if o.proxyType != "sidecar" && o.proxyType != "router" {
		fmt.Fprintln(os.Stderr, "istio-xds-routes: --proxy-type is sidecar or router")
		os.Exit(2)
	}
	return o
}

func main() {
	o := parseOptions()
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "istio-xds-routes: %v\n", err)
		os.Exit(1)
	}
}

func node(o options) *corev3.Node {
	meta, _ := structpb.NewStruct(map[string]any{
		"NAMESPACE":     o.namespace,
		"CLUSTER_ID":    o.clusterID,
		"ISTIO_VERSION": version.Info.Version,
		"NAME":          o.name,
		"LABELS":        proxyLabels(o),
	})
	return &corev3.Node{
		Id:       fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", o.proxyType, o.ip, o.name, o.namespace, o.namespace),
		Metadata: meta,
	}
}

// proxyLabels: istiod picks the Gateways a router serves by its labels (a Gateway's selector).
func proxyLabels(o options) map[string]any {
	labels := map[string]any{}
	for _, pair := range strings.Split(o.labels, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(pair), "="); ok && k != "" {
			labels[k] = v
		}
	}
	if len(labels) == 0 {
		labels["app"] = o.name
	}
	return labels
}

func run(o options) error {
	conn, err := grpc.NewClient(o.xds, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	s := newSubscriber(stream, node(o))
	for _, t := range []string{clusterType, listenerType} {
		if err := s.subscribe(t, nil); err != nil {
			return err
		}
	}
	return s.loop(o, receive(stream))
}

type received struct {
	resp *discoveryv3.DiscoveryResponse
	err  error
}

func receive(stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient) <-chan received {
	out := make(chan received, 16)
	go func() {
		for {
			resp, err := stream.Recv()
			out <- received{resp, err}
			if err != nil {
				return
			}
		}
	}()
	return out
}

// subscriber holds what istiod sent, as Envoy would, and keeps the subscriptions in step.
type subscriber struct {
	stream    discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node      *corev3.Node
	nonce     map[string]string
	version   map[string]string
	names     map[string][]string // subscribed resource names of RDS and EDS
	pending   map[string]bool     // a subscription not yet answered
	seen      map[string]bool
	routes    map[string]*routev3.RouteConfiguration
	tcp       []tcpRoute // tcp_proxy filters of the listeners: TCP routes live there, not in RDS
	clusters  map[string]*clusterv3.Cluster
	endpoints map[string]*endpointv3.ClusterLoadAssignment // by EDS service name
}

func newSubscriber(stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, n *corev3.Node) *subscriber {
	return &subscriber{
		stream: stream, node: n,
		nonce: map[string]string{}, version: map[string]string{}, names: map[string][]string{},
		pending: map[string]bool{}, seen: map[string]bool{},
		routes: map[string]*routev3.RouteConfiguration{}, clusters: map[string]*clusterv3.Cluster{},
		endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
	}
}

// subscribe sends a request for typeURL: an ACK of the last response, with these names.
func (s *subscriber) subscribe(typeURL string, names []string) error {
	return s.stream.Send(&discoveryv3.DiscoveryRequest{
		Node: s.node, TypeUrl: typeURL, ResourceNames: names,
		VersionInfo: s.version[typeURL], ResponseNonce: s.nonce[typeURL],
	})
}

// resubscribe changes the names of a non-wildcard subscription when they changed.
func (s *subscriber) resubscribe(typeURL string, names []string) error {
	if s.seen[typeURL] || s.pending[typeURL] {
		if slices.Equal(s.names[typeURL], names) {
			return nil
		}
	}
	if len(names) == 0 && len(s.names[typeURL]) == 0 {
		return nil // nothing to ask for; an empty request would mean "everything" to some servers
	}
	s.names[typeURL] = names
	// Dropping every name gets no answer: only a request for some names does.
	s.pending[typeURL] = len(names) > 0
	return s.subscribe(typeURL, names)
}

func (s *subscriber) complete() bool {
	return s.seen[listenerType] && s.seen[clusterType] && !s.pending[routeType] && !s.pending[endpointType]
}

func (s *subscriber) loop(o options, responses <-chan received) error {
	var deadline <-chan time.Time
	if o.once {
		deadline = time.After(o.timeout)
	}
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	last := ""
	for {
		select {
		case r := <-responses:
			if r.err != nil {
				return fmt.Errorf("xDS stream from %s: %w", o.xds, r.err)
			}
			if o.verbose {
				fmt.Fprintf(os.Stderr, "received %s: %d resources, version %s\n",
					r.resp.GetTypeUrl(), len(r.resp.GetResources()), r.resp.GetVersionInfo())
			}
			if err := s.handle(r.resp); err != nil {
				return err
			}
			settle.Reset(o.settle)
		case <-settle.C:
			if !s.complete() {
				continue
			}
			line, err := s.snapshot()
			if err != nil {
				return err
			}
			if line != last {
				fmt.Println(line)
				last = line
			}
			if o.once {
				return nil
			}
		case <-deadline:
			return errors.New("no complete snapshot before --timeout")
		}
	}
}

func (s *subscriber) handle(resp *discoveryv3.DiscoveryResponse) error {
	t := resp.GetTypeUrl()
	s.nonce[t], s.version[t] = resp.GetNonce(), resp.GetVersionInfo()
	s.seen[t], s.pending[t] = true, false
	var err error
	switch t {
	case listenerType:
		err = s.onListeners(resp.GetResources())
	case clusterType:
		err = s.onClusters(resp.GetResources())
	case routeType:
		err = s.onRoutes(resp.GetResources())
	case endpointType:
		err = s.onEndpoints(resp.GetResources())
	}
	if err != nil {
		return err
	}
	// ACK (RDS and EDS keep their names); a changed subscription above already carried the nonce.
	return s.subscribe(t, s.names[t])
}

func (s *subscriber) onListeners(resources []*anypb.Any) error {
	names := map[string]bool{}
	s.tcp = nil
	for _, a := range resources {
		l := &listenerv3.Listener{}
		if err := a.UnmarshalTo(l); err != nil {
			return err
		}
		for _, chain := range l.GetFilterChains() {
			for _, f := range chain.GetFilters() {
				s.onFilter(l, f.GetTypedConfig(), names)
			}
		}
	}
	return s.resubscribe(routeType, sortedKeys(names))
}

// onFilter notes an HTTP connection manager's RDS name or a TCP proxy's clusters.
func (s *subscriber) onFilter(l *listenerv3.Listener, config *anypb.Any, names map[string]bool) {
	hcm, tcp := &hcmv3.HttpConnectionManager{}, &tcpv3.TcpProxy{}
	switch {
	case config.MessageIs(hcm) && config.UnmarshalTo(hcm) == nil:
		if name := hcm.GetRds().GetRouteConfigName(); name != "" {
			names[name] = true
		}
	case config.MessageIs(tcp) && config.UnmarshalTo(tcp) == nil:
		// virtualInbound and virtualOutbound only catch what no service listener takes.
		if !strings.HasPrefix(l.GetName(), "virtual") {
			s.tcp = append(s.tcp, newTCPRoute(l, tcp))
		}
	}
}

func (s *subscriber) onClusters(resources []*anypb.Any) error {
	s.clusters = map[string]*clusterv3.Cluster{}
	eds := map[string]bool{}
	for _, a := range resources {
		c := &clusterv3.Cluster{}
		if err := a.UnmarshalTo(c); err != nil {
			return err
		}
		s.clusters[c.GetName()] = c
		if c.GetType() == clusterv3.Cluster_EDS {
			eds[edsName(c)] = true
		}
	}
	return s.resubscribe(endpointType, sortedKeys(eds))
}

func (s *subscriber) onRoutes(resources []*anypb.Any) error {
	for _, a := range resources {
		r := &routev3.RouteConfiguration{}
		if err := a.UnmarshalTo(r); err != nil {
			return err
		}
		s.routes[r.GetName()] = r
	}
	keepOnly(s.routes, s.names[routeType])
	return nil
}

func (s *subscriber) onEndpoints(resources []*anypb.Any) error {
	for _, a := range resources {
		e := &endpointv3.ClusterLoadAssignment{}
		if err := a.UnmarshalTo(e); err != nil {
			return err
		}
		s.endpoints[e.GetClusterName()] = e
	}
	keepOnly(s.endpoints, s.names[endpointType])
	return nil
}

func edsName(c *clusterv3.Cluster) string {
	if name := c.GetEdsClusterConfig().GetServiceName(); name != "" {
		return name
	}
	return c.GetName()
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func keepOnly[V any](m map[string]V, names []string) {
	for k := range m {
		if !slices.Contains(names, k) {
			delete(m, k)
		}
	}
}
